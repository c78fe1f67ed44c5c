// Network commands: network create / ls / inspect / rm / prune / connect / disconnect, laid out
// as docker 28 prints them.
import { parseKeyValues } from '../../common/flags';
import { filtersParam, UsageError } from '../client';
import { formatFlag, type CommandContext, type CommandSpec } from '../command';
import { FormatContext, goTimeString, renderRows } from '../format';
import { confirm, forEachName, inspectEach } from './common';
import { printInspect } from './images';

const enc = encodeURIComponent;

interface NetworkSummary {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  Created?: string;
  EnableIPv6?: boolean;
  Internal?: boolean;
  EnableIPv4?: boolean;
  Labels?: Record<string, string> | null;
}

/** Comma-joined k=v pairs, as docker's list formatters print label maps. */
export function joinLabels(labels: Record<string, string> | null | undefined): string {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
}

export class NetworkRow extends FormatContext {
  constructor(private readonly n: NetworkSummary, private readonly trunc: boolean) {
    super();
  }
  headers(): Record<string, string> {
    return { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv4: 'IPV4', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', CreatedAt: 'CREATED AT' };
  }
  get ID(): string {
    return this.trunc ? this.n.Id.slice(0, 12) : this.n.Id;
  }
  get Name(): string {
    return this.n.Name;
  }
  get Driver(): string {
    return this.n.Driver;
  }
  get Scope(): string {
    return this.n.Scope;
  }
  get IPv4(): string {
    return String(this.n.EnableIPv4 ?? true);
  }
  get IPv6(): string {
    return String(Boolean(this.n.EnableIPv6));
  }
  get Internal(): string {
    return String(Boolean(this.n.Internal));
  }
  get Labels(): string {
    return joinLabels(this.n.Labels);
  }
  Label(name: string): string {
    return this.n.Labels?.[name] ?? '';
  }
  get CreatedAt(): string {
    return this.n.Created ? goTimeFromRFC3339(this.n.Created) : '';
  }
}

/** Go's time.Time.String() of an RFC 3339 time, keeping its fraction of a second (trailing zeros cut). */
export function goTimeFromRFC3339(s: string): string {
  const base = goTimeString(new Date(s));
  const frac = /T\d\d:\d\d:\d\d\.(\d+)/.exec(s)?.[1]?.replace(/0+$/, '');
  return frac ? base.replace(/^(\S+ \d\d:\d\d:\d\d)/, `$1.${frac}`) : base;
}

/** Sorts the keys of the map-valued fields (Go maps marshal with sorted keys), in place. */
export function sortMapKeys(obj: unknown, paths: string[][]): unknown {
  for (const p of paths) {
    const walk = (o: unknown, i: number): void => {
      if (!o || typeof o !== 'object') return;
      if (Array.isArray(o)) {
        for (const x of o) walk(x, i);
        return;
      }
      const rec = o as Record<string, unknown>;
      const key = p[i];
      if (i === p.length - 1) {
        const m = rec[key];
        if (m && typeof m === 'object' && !Array.isArray(m)) {
          const sorted: Record<string, unknown> = {};
          for (const k of Object.keys(m).sort()) sorted[k] = (m as Record<string, unknown>)[k];
          rec[key] = sorted;
        }
        return;
      }
      walk(rec[key], i + 1);
    };
    walk(obj, 0);
  }
  return obj;
}

const NETWORK_MAPS = [['Labels'], ['Options'], ['Containers'], ['IPAM', 'Options'], ['IPAM', 'Config', 'AuxiliaryAddresses']];

/** Go's sortorder.NaturalLess: runs of digits compare as numbers. */
export function naturalLess(a: string, b: string): number {
  const re = /(\d+|\D+)/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

async function lsCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  const nets = (await ctx.client.json<NetworkSummary[]>('GET', '/networks', { query: { filters: filtersParam(v.filter as string[]) } })) ?? [];
  nets.sort((a, b) => naturalLess(a.Name, b.Name));
  const rows = nets.map((n) => new NetworkRow(n, !v['no-trunc']));
  let format = v.format as string | undefined;
  if (v.quiet) format = '{{.ID}}';
  else if (!format || format === 'table') format = 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}';
  ctx.out(renderRows(format, rows, () => new NetworkRow({ Id: '', Name: '', Driver: '', Scope: '' }, true).headers()));
  return 0;
}

function ipv4ToInt(ip: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

/** Whether an address or CIDR lies inside a subnet (IPv4; other forms never match). */
function inSubnet(subnet: string, addr: string): boolean {
  const [net, bitsStr] = subnet.split('/');
  const [a] = addr.split('/');
  const n = ipv4ToInt(net);
  const x = ipv4ToInt(a);
  const bits = Number(bitsStr);
  if (n === undefined || x === undefined || !(bits >= 0 && bits <= 32)) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((n & mask) >>> 0) === ((x & mask) >>> 0);
}

interface IpamConfig { Subnet: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }

/** docker's consolidateIpam: each --ip-range, --gateway and --aux-address goes with the subnet it lies in. */
export function consolidateIpam(subnets: string[], ranges: string[], gateways: string[], aux: Record<string, string>): IpamConfig[] {
  if (subnets.length < ranges.length || subnets.length < gateways.length) throw new UsageError('every ip-range or gateway must have a corresponding subnet');
  const configs: IpamConfig[] = subnets.map((s) => ({ Subnet: s }));
  for (const r of ranges) {
    const c = configs.find((cfg) => inSubnet(cfg.Subnet, r));
    if (!c) throw new Error(`no matching subnet for range ${r}`);
    if (c.IPRange) throw new Error(`cannot configure multiple ranges (${r}, ${c.IPRange}) on the same subnet (${c.Subnet})`);
    c.IPRange = r;
  }
  for (const g of gateways) {
    const c = configs.find((cfg) => inSubnet(cfg.Subnet, g));
    if (!c) throw new Error(`no matching subnet for gateway ${g}`);
    if (c.Gateway) throw new Error(`cannot configure multiple gateways (${g}, ${c.Gateway}) for the same subnet (${c.Subnet})`);
    c.Gateway = g;
  }
  for (const [name, ip] of Object.entries(aux)) {
    const c = configs.find((cfg) => inSubnet(cfg.Subnet, ip));
    if (!c) throw new Error(`no matching subnet for aux-address ${ip}`);
    (c.AuxiliaryAddresses ??= {})[name] = ip;
  }
  return configs;
}

async function createCmd(ctx: CommandContext, v: Record<string, unknown>, name: string): Promise<number> {
  const ipam = consolidateIpam(v.subnet as string[], v['ip-range'] as string[], v.gateway as string[], parseKeyValues(v['aux-address'] as string[], 'aux-address'));
  const body = {
    Name: name,
    Driver: v.driver as string,
    Options: parseKeyValues(v.opt as string[], 'opt'),
    IPAM: { Driver: (v['ipam-driver'] as string) || 'default', Config: ipam, Options: parseKeyValues(v['ipam-opt'] as string[], 'ipam-opt') },
    Internal: Boolean(v.internal),
    EnableIPv6: v.ipv6 ? true : undefined,
    Attachable: Boolean(v.attachable),
    Ingress: Boolean(v.ingress),
    Scope: (v.scope as string) || undefined,
    Labels: parseKeyValues(v.label as string[]),
  };
  const r = await ctx.client.json<{ Id: string; Warning?: string }>('POST', '/networks/create', { body });
  if (r.Warning) ctx.err(`${r.Warning}\n`);
  ctx.out(`${r.Id}\n`);
  return 0;
}

function inspectCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  const format = v.format as string | undefined;
  const get = async (n: string): Promise<unknown> => sortMapKeys(await ctx.client.json('GET', `/networks/${enc(n)}`, { query: { verbose: v.verbose ? 'true' : undefined } }), NETWORK_MAPS);
  return inspectEach(ctx, names, get, (found) => {
    // A template sees docker's decoded struct, whose IPAM config fields come in Go's field order.
    if (format && format !== 'json') for (const n of found) orderIpamConfig(n);
    printInspect(ctx, found, format);
  });
}

const IPAM_CONFIG_FIELDS = ['Subnet', 'IPRange', 'Gateway', 'AuxiliaryAddresses'];

function orderIpamConfig(n: unknown): void {
  const ipam = (n as { IPAM?: { Config?: Record<string, unknown>[] | null } }).IPAM;
  if (!ipam?.Config) return;
  ipam.Config = ipam.Config.map((c) => {
    const out: Record<string, unknown> = {};
    for (const k of IPAM_CONFIG_FIELDS) if (k in c) out[k] = c[k];
    for (const k of Object.keys(c)) if (!(k in out)) out[k] = c[k];
    return out;
  });
}

async function rmCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  const remove = async (n: string): Promise<void> => {
    await ctx.client.call('DELETE', `/networks/${enc(n)}`);
    ctx.out(`${n}\n`);
  };
  // -f: a network that is already gone is not an error.
  const status = await forEachName(ctx, names, remove, (e) => Boolean(v.force) && e.status === 404);
  // docker ends with a bare status error, whose message is "exit status 1".
  if (status) ctx.err('exit status 1\n');
  return status;
}

async function pruneCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  if (!v.force && !(await confirm(ctx, 'WARNING! This will remove all custom networks not used by at least one container.'))) return 0;
  const r = await ctx.client.json<{ NetworksDeleted?: string[] | null }>('POST', '/networks/prune', { query: { filters: filtersParam(v.filter as string[]) } });
  const deleted = r.NetworksDeleted ?? [];
  if (deleted.length) ctx.out(`Deleted Networks:\n${deleted.map((d) => `${d}\n`).join('')}\n`);
  return 0;
}

async function connectCmd(ctx: CommandContext, v: Record<string, unknown>, network: string, container: string): Promise<number> {
  const ipam: Record<string, string> = {};
  if (v.ip) ipam.IPv4Address = v.ip as string;
  if (v.ip6) ipam.IPv6Address = v.ip6 as string;
  const endpoint = {
    IPAMConfig: Object.keys(ipam).length ? ipam : undefined,
    Links: (v.link as string[]).length ? v.link : undefined,
    Aliases: (v.alias as string[]).length ? v.alias : undefined,
    DriverOpts: (v['driver-opt'] as string[]).length ? parseKeyValues(v['driver-opt'] as string[], 'driver-opt') : undefined,
  };
  await ctx.client.call('POST', `/networks/${enc(network)}/connect`, { body: { Container: container, EndpointConfig: endpoint } });
  return 0;
}

async function disconnectCmd(ctx: CommandContext, v: Record<string, unknown>, network: string, container: string): Promise<number> {
  await ctx.client.call('POST', `/networks/${enc(network)}/disconnect`, { body: { Container: container, Force: Boolean(v.force) } });
  return 0;
}

export function networkCommands(): CommandSpec[] {
  return [
    {
      paths: [['network', 'create']],
      usage: '[OPTIONS] NETWORK',
      description: 'Create a network',
      flags: [
        { name: 'attachable', type: 'bool', description: 'Enable manual container attachment' },
        { name: 'aux-address', type: 'list', typeName: 'map', description: 'Auxiliary IPv4 or IPv6 addresses used by Network driver' },
        { name: 'config-from', type: 'string', description: 'The network from which to copy the configuration', hidden: true },
        { name: 'driver', short: 'd', type: 'string', default: 'bridge', description: 'Driver to manage the Network' },
        { name: 'gateway', type: 'list', typeName: 'strings', description: 'IPv4 or IPv6 Gateway for the master subnet' },
        { name: 'ingress', type: 'bool', description: 'Create swarm routing-mesh network', hidden: true },
        { name: 'internal', type: 'bool', description: 'Restrict external access to the network' },
        { name: 'ip-range', type: 'list', typeName: 'strings', description: 'Allocate container ip from a sub-range' },
        { name: 'ipam-driver', type: 'string', description: 'IP Address Management Driver (default "default")' },
        { name: 'ipam-opt', type: 'list', typeName: 'map', description: 'Set IPAM driver specific options' },
        { name: 'ipv6', type: 'bool', description: 'Enable or disable IPv6 networking' },
        { name: 'label', type: 'list', description: 'Set metadata on a network' },
        { name: 'opt', short: 'o', type: 'list', typeName: 'map', description: 'Set driver specific options' },
        { name: 'scope', type: 'string', description: "Control the network's scope" },
        { name: 'subnet', type: 'list', typeName: 'strings', description: 'Subnet in CIDR format that represents a network segment' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => createCmd(ctx, f.values, f.args[0]),
    },
    {
      paths: [['network', 'ls'], ['network', 'list']],
      usage: '[OPTIONS]',
      description: 'List networks',
      flags: [
        { name: 'filter', short: 'f', type: 'list', typeName: 'filter', description: 'Provide filter values (e.g. "driver=bridge")' },
        formatFlag(true, false),
        { name: 'no-trunc', type: 'bool', description: 'Do not truncate the output' },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Only display network IDs' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => lsCmd(ctx, f.values),
    },
    {
      paths: [['network', 'inspect']],
      usage: '[OPTIONS] NETWORK [NETWORK...]',
      description: 'Display detailed information on one or more networks',
      flags: [formatFlag(false), { name: 'verbose', short: 'v', type: 'bool', description: 'Verbose output for diagnostics' }],
      args: { min: 1 },
      run: (ctx, f) => inspectCmd(ctx, f.values, f.args),
    },
    {
      paths: [['network', 'rm'], ['network', 'remove']],
      usage: 'NETWORK [NETWORK...]',
      description: 'Remove one or more networks',
      flags: [{ name: 'force', short: 'f', type: 'bool', description: 'Do not error if the network does not exist' }],
      args: { min: 1 },
      run: (ctx, f) => rmCmd(ctx, f.values, f.args),
    },
    {
      paths: [['network', 'prune']],
      usage: '[OPTIONS]',
      description: 'Remove all unused networks',
      flags: [
        { name: 'filter', type: 'list', typeName: 'filter', description: 'Provide filter values (e.g. "until=<timestamp>")' },
        { name: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => pruneCmd(ctx, f.values),
    },
    {
      paths: [['network', 'connect']],
      usage: '[OPTIONS] NETWORK CONTAINER',
      description: 'Connect a container to a network',
      flags: [
        { name: 'alias', type: 'list', typeName: 'strings', description: 'Add network-scoped alias for the container' },
        { name: 'driver-opt', type: 'list', typeName: 'strings', description: 'driver options for the network' },
        { name: 'gw-priority', type: 'int', description: 'Highest gw-priority provides the default gateway. Accepts positive and negative values.' },
        { name: 'ip', type: 'string', description: 'IPv4 address (e.g., "172.30.100.104")' },
        { name: 'ip6', type: 'string', description: 'IPv6 address (e.g., "2001:db8::33")' },
        { name: 'link', type: 'list', description: 'Add link to another container' },
        { name: 'link-local-ip', type: 'list', typeName: 'strings', description: 'Add a link-local address for the container' },
      ],
      args: { exact: 2 },
      run: (ctx, f) => connectCmd(ctx, f.values, f.args[0], f.args[1]),
    },
    {
      paths: [['network', 'disconnect']],
      usage: '[OPTIONS] NETWORK CONTAINER',
      description: 'Disconnect a container from a network',
      flags: [{ name: 'force', short: 'f', type: 'bool', description: 'Force the container to disconnect from a network' }],
      args: { exact: 2 },
      run: (ctx, f) => disconnectCmd(ctx, f.values, f.args[0], f.args[1]),
    },
  ];
}
