// System commands: version, info, system df, events.
import { DaemonError, CLIENT_API_VERSION, filtersParam, readJSONLines } from '../client';
import { formatFlag, type CommandContext, type CommandSpec } from '../command';
import { bytesSize, FormatContext, humanSize, renderRows, shortId, tabwrite, Template, timeAgo, ellipsis } from '../format';

const CLIENT_VERSION = '0.1.0';

function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

// The layout of docker's default version template, rendered through the same engine as --format.
const VERSION_TEMPLATE = `{{with .Client -}}
Client:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}
 Version:\t{{.Version}}
 API version:\t{{.APIVersion}}
 Go version:\t{{.GoVersion}}
 Git commit:\t{{.GitCommit}}
 Built:\t{{.BuildTime}}
 OS/Arch:\t{{.Os}}/{{.Arch}}
 Context:\t{{.Context}}
{{- end}}

{{- if .ServerOK}}{{with .Server}}

Server:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}
 {{- range $component := .Components}}
 {{$component.Name}}:
  {{- if eq $component.Name "Engine" }}
  Version:\t{{.Version}}
  API version:\t{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:\t{{index .Details "GoVersion"}}
  Git commit:\t{{index .Details "GitCommit"}}
  Built:\t{{index .Details "BuildTime"}}
  OS/Arch:\t{{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:\t{{index .Details "Experimental"}}
  {{- else }}
  Version:\t{{$component.Version}}
  {{- end}}
 {{- end}}
 {{- end}}{{- end}}
`;

async function versionCmd(ctx: CommandContext, format: string | undefined): Promise<number> {
  const client = {
    Platform: { Name: '' },
    Version: CLIENT_VERSION,
    APIVersion: CLIENT_API_VERSION,
    DefaultAPIVersion: CLIENT_API_VERSION,
    GoVersion: `node${process.versions.node}`,
    GitCommit: '',
    BuildTime: '',
    Os: 'linux',
    Arch: goArch(),
    Context: 'default',
  };
  let server: Record<string, unknown> | undefined;
  let serverErr: unknown;
  try {
    const v = await ctx.client.json<Record<string, unknown>>('GET', '/version');
    server = { ...v, APIVersion: v.ApiVersion, Platform: v.Platform ?? { Name: '' }, Components: v.Components ?? [] };
  } catch (e) {
    serverErr = e;
  }
  const data = { Client: client, Server: server ?? null, ServerOK: server !== undefined };
  if (format === 'json') ctx.out(JSON.stringify({ Client: client, Server: server ?? null }) + '\n');
  else if (format) ctx.out(new Template(format).execute(data) + '\n');
  else ctx.out(tabwrite(new Template(VERSION_TEMPLATE).execute(data), { minwidth: 20, padding: 1 }));
  if (serverErr) throw serverErr;
  return 0;
}

function infoText(info: Record<string, unknown>, debug: boolean): string {
  const L: string[] = [];
  const s = (v: unknown): string => (v === undefined || v === null ? '' : String(v));
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
  L.push(` Containers: ${s(info.Containers)}`, `  Running: ${s(info.ContainersRunning)}`, `  Paused: ${s(info.ContainersPaused)}`, `  Stopped: ${s(info.ContainersStopped)}`);
  L.push(` Images: ${s(info.Images)}`, ` Server Version: ${s(info.ServerVersion)}`, ` Storage Driver: ${s(info.Driver)}`);
  for (const pair of (info.DriverStatus as [string, string][] | null) ?? []) L.push(`  ${pair[0]}: ${pair[1]}`);
  L.push(` Logging Driver: ${s(info.LoggingDriver)}`, ` Cgroup Driver: ${s(info.CgroupDriver)}`, ` Cgroup Version: ${s(info.CgroupVersion)}`);
  const plugins = (info.Plugins ?? {}) as Record<string, unknown>;
  L.push(' Plugins:', `  Volume: ${list(plugins.Volume).join(' ')}`, `  Network: ${list(plugins.Network).join(' ')}`);
  if (list(plugins.Authorization).length) L.push(`  Authorization: ${list(plugins.Authorization).join(' ')}`);
  L.push(`  Log: ${list(plugins.Log).join(' ')}`);
  L.push(` Swarm: ${s((info.Swarm as Record<string, unknown> | undefined)?.LocalNodeState ?? 'inactive')}`);
  L.push(` Runtimes: ${Object.keys((info.Runtimes ?? {}) as object).sort().join(' ')}`, ` Default Runtime: ${s(info.DefaultRuntime)}`);
  L.push(` Init Binary: ${s(info.InitBinary)}`);
  const commit = (k: string): string => s((info[k] as { ID?: string } | undefined)?.ID);
  L.push(` containerd version: ${commit('ContainerdCommit')}`, ` runc version: ${commit('RuncCommit')}`, ` init version: ${commit('InitCommit')}`);
  const secopts = list(info.SecurityOptions);
  if (secopts.length) {
    L.push(' Security Options:');
    for (const o of secopts) {
      const kv = Object.fromEntries(o.split(',').map((p) => p.split('=') as [string, string]));
      L.push(`  ${kv.name ?? o}`);
      for (const [k, v] of Object.entries(kv)) if (k !== 'name') L.push(`   ${k[0].toUpperCase()}${k.slice(1)}: ${v}`);
    }
  }
  L.push(` Kernel Version: ${s(info.KernelVersion)}`, ` Operating System: ${s(info.OperatingSystem)}`, ` OSType: ${s(info.OSType)}`, ` Architecture: ${s(info.Architecture)}`);
  L.push(` CPUs: ${s(info.NCPU)}`, ` Total Memory: ${bytesSize(Number(info.MemTotal ?? 0))}`, ` Name: ${s(info.Name)}`, ` ID: ${s(info.ID)}`);
  L.push(` Docker Root Dir: ${s(info.DockerRootDir)}`, ` Debug Mode: ${Boolean(info.Debug)}`);
  if (info.Debug) {
    L.push(`  File Descriptors: ${s(info.NFd)}`, `  Goroutines: ${s(info.NGoroutines)}`, `  System Time: ${s(info.SystemTime)}`, `  EventsListeners: ${s(info.NEventsListener)}`);
  }
  if (info.HttpProxy) L.push(` HTTP Proxy: ${s(info.HttpProxy)}`);
  if (info.HttpsProxy) L.push(` HTTPS Proxy: ${s(info.HttpsProxy)}`);
  if (info.NoProxy) L.push(` No Proxy: ${s(info.NoProxy)}`);
  const labels = list(info.Labels);
  if (labels.length) L.push(' Labels:', ...labels.map((l) => `  ${l}`));
  L.push(` Experimental: ${Boolean(info.ExperimentalBuild)}`);
  const reg = (info.RegistryConfig ?? {}) as Record<string, unknown>;
  const insecure = [
    ...Object.values((reg.IndexConfigs ?? {}) as Record<string, { Name: string; Secure: boolean }>).filter((c) => !c.Secure).map((c) => c.Name),
    ...list(reg.InsecureRegistryCIDRs),
  ];
  if (insecure.length) L.push(' Insecure Registries:', ...insecure.map((r) => `  ${r}`));
  const mirrors = list(reg.Mirrors);
  if (mirrors.length) L.push(' Registry Mirrors:', ...mirrors.map((m) => `  ${m}`));
  L.push(` Live Restore Enabled: ${Boolean(info.LiveRestoreEnabled)}`);
  void debug;
  return L.join('\n') + '\n';
}

async function infoCmd(ctx: CommandContext, format: string | undefined, debug: boolean): Promise<number> {
  const clientInfo = { Version: CLIENT_VERSION, Context: 'default', Debug: debug, Plugins: [], Warnings: null };
  if (format) {
    const info = await ctx.client.json<Record<string, unknown>>('GET', '/info');
    const data = { ...info, ClientInfo: clientInfo, ServerErrors: null };
    ctx.out((format === 'json' ? JSON.stringify(data) : new Template(format).execute(data)) + '\n');
    return 0;
  }
  ctx.out(`Client:\n Version:    ${CLIENT_VERSION}\n Context:    default\n Debug Mode: ${debug}\n\nServer:\n`);
  let info: Record<string, unknown>;
  try {
    info = await ctx.client.json<Record<string, unknown>>('GET', '/info');
  } catch (e) {
    if (e instanceof DaemonError) throw e;
    ctx.out(`ERROR: ${(e as Error).message}\nerrors pretty printing info\n`);
    return 1;
  }
  ctx.out(infoText(info, debug) + '\n');
  for (const w of (info.Warnings as string[] | null) ?? []) ctx.err(`${w}\n`);
  return 0;
}

class DfRow extends FormatContext {
  constructor(readonly Type: string, readonly TotalCount: string, readonly Active: string, readonly Size: string, readonly Reclaimable: string) {
    super();
  }
  headers(): Record<string, string> {
    return { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' };
  }
}

const hs = (n: number): string => humanSize(n, 4);
const reclaim = (r: number, total: number): string => (total > 0 ? `${hs(r)} (${Math.trunc((r * 100) / total)}%)` : hs(r));

interface DfImage { Id: string; RepoTags?: string[] | null; Created: number; Size: number; SharedSize: number; Containers: number }
interface DfContainer { Id: string; Image: string; Command: string; Created: number; State: string; Status: string; Names: string[]; SizeRw?: number; Mounts?: unknown[] }
interface DfVolume { Name: string; UsageData?: { Size: number; RefCount: number } | null }
interface DfCache { ID: string; Type: string; Size: number; CreatedAt: string; LastUsedAt?: string | null; UsageCount: number; InUse: boolean; Shared: boolean }

async function dfCmd(ctx: CommandContext, verbose: boolean, format: string | undefined): Promise<number> {
  const du = await ctx.client.json<{ LayersSize?: number; Images?: DfImage[] | null; Containers?: DfContainer[] | null; Volumes?: DfVolume[] | null; BuildCache?: DfCache[] | null }>('GET', '/system/df');
  const images = du.Images ?? [];
  const containers = du.Containers ?? [];
  const volumes = du.Volumes ?? [];
  const cache = du.BuildCache ?? [];
  if (!verbose) {
    const imgSize = du.LayersSize ?? 0;
    const imgUsed = images.filter((i) => i.Containers > 0).reduce((a, i) => a + (i.Size - Math.max(0, i.SharedSize)), 0);
    const cActive = containers.filter((c) => c.State === 'running' || c.State === 'paused');
    const cSize = containers.reduce((a, c) => a + (c.SizeRw ?? 0), 0);
    const cRecl = containers.filter((c) => !cActive.includes(c)).reduce((a, c) => a + (c.SizeRw ?? 0), 0);
    const vSize = volumes.reduce((a, v) => a + Math.max(0, v.UsageData?.Size ?? 0), 0);
    const vRecl = volumes.filter((v) => (v.UsageData?.RefCount ?? 0) === 0).reduce((a, v) => a + Math.max(0, v.UsageData?.Size ?? 0), 0);
    const bSize = cache.filter((b) => !b.Shared).reduce((a, b) => a + b.Size, 0);
    const bRecl = cache.filter((b) => !b.Shared && !b.InUse).reduce((a, b) => a + b.Size, 0);
    const rows = [
      new DfRow('Images', String(images.length), String(images.filter((i) => i.Containers > 0).length), hs(imgSize), reclaim(Math.max(0, imgSize - imgUsed), imgSize)),
      new DfRow('Containers', String(containers.length), String(cActive.length), hs(cSize), reclaim(cRecl, cSize)),
      new DfRow('Local Volumes', String(volumes.length), String(volumes.filter((v) => (v.UsageData?.RefCount ?? 0) > 0).length), hs(vSize), reclaim(vRecl, vSize)),
      new DfRow('Build Cache', String(cache.length), String(cache.filter((b) => b.InUse).length), hs(bSize), reclaim(bRecl, bSize)),
    ];
    ctx.out(renderRows(format && format !== 'table' ? format : 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}', rows));
    return 0;
  }
  const now = Date.now();
  let out = 'Images space usage:\n\n';
  let t = 'REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n';
  for (const i of images) {
    const tags = i.RepoTags && i.RepoTags.length ? i.RepoTags : ['<none>:<none>'];
    for (const rt of tags) {
      const c = rt.lastIndexOf(':');
      t += `${rt.slice(0, c)}\t${rt.slice(c + 1)}\t${shortId(i.Id)}\t${timeAgo(i.Created * 1000, now)}\t${hs(i.Size)}\t${hs(Math.max(0, i.SharedSize))}\t${hs(i.Size - Math.max(0, i.SharedSize))}\t${i.Containers}\n`;
    }
  }
  out += tabwrite(t) + '\nContainers space usage:\n\n';
  t = 'CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES\n';
  for (const c of containers) {
    t += `${shortId(c.Id)}\t${c.Image}\t${JSON.stringify(ellipsis(c.Command, 20))}\t${(c.Mounts ?? []).length}\t${hs(c.SizeRw ?? 0)}\t${timeAgo(c.Created * 1000, now)}\t${c.Status}\t${(c.Names ?? []).map((n) => n.replace(/^\//, '')).join(',')}\n`;
  }
  out += tabwrite(t) + '\nLocal Volumes space usage:\n\n';
  t = 'VOLUME NAME\tLINKS\tSIZE\n';
  for (const v of volumes) t += `${v.Name}\t${v.UsageData?.RefCount ?? 0}\t${hs(Math.max(0, v.UsageData?.Size ?? 0))}\n`;
  out += tabwrite(t) + `\nBuild cache usage: ${hs(cache.reduce((a, b) => a + b.Size, 0))}\n\n`;
  t = 'CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n';
  for (const b of cache) {
    t += `${b.ID.slice(0, 12)}\t${b.Type}\t${hs(b.Size)}\t${timeAgo(Date.parse(b.CreatedAt), now)}\t${b.LastUsedAt ? timeAgo(Date.parse(b.LastUsedAt), now) : ''}\t${b.UsageCount}\t${b.Shared}\n`;
  }
  ctx.out(out + tabwrite(t));
  return 0;
}

async function eventsCmd(ctx: CommandContext, since: string | undefined, until: string | undefined, filters: string[], format: string | undefined): Promise<number> {
  const res = await ctx.client.request('GET', '/events', { query: { since, until, filters: filtersParam(filters) } });
  const tmpl = format && format !== 'json' ? new Template(format) : undefined;
  await readJSONLines(res, (ev) => {
    if (format === 'json') return ctx.out(JSON.stringify(ev) + '\n');
    if (tmpl) return ctx.out(tmpl.execute(ev) + '\n');
    const nano = Number(ev.timeNano ?? Number(ev.time ?? 0) * 1e9);
    const ts = new Date(Math.floor(nano / 1e6)).toISOString().replace(/\.\d+Z$/, '') + '.' + String(nano % 1e9).padStart(9, '0');
    const actor = (ev.Actor ?? {}) as { ID?: string; Attributes?: Record<string, string> };
    const attrs = Object.entries(actor.Attributes ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`);
    ctx.out(`${ts}Z ${String(ev.Type)} ${String(ev.Action)} ${actor.ID ?? ''}${attrs.length ? ` (${attrs.join(', ')})` : ''}\n`);
  });
  return 0;
}

export function systemCommands(): CommandSpec[] {
  return [
    {
      paths: [['version']],
      usage: '[OPTIONS]',
      description: 'Show the berth version information',
      flags: [formatFlag(false)],
      args: { exact: 0 },
      run: (ctx, f) => versionCmd(ctx, f.values.format as string | undefined),
    },
    {
      paths: [['system', 'info'], ['info']],
      usage: '[OPTIONS]',
      description: 'Display system-wide information',
      flags: [formatFlag(false)],
      args: { exact: 0 },
      run: (ctx, f) => infoCmd(ctx, f.values.format as string | undefined, false),
    },
    {
      paths: [['system', 'df']],
      usage: '[OPTIONS]',
      description: 'Show berth disk usage',
      flags: [{ name: 'format', type: 'string', description: formatFlag().description }, { name: 'verbose', short: 'v', type: 'bool', description: 'Show detailed information on space usage' }],
      args: { exact: 0 },
      run: (ctx, f) => dfCmd(ctx, f.values.verbose as boolean, f.values.format as string | undefined),
    },
    {
      paths: [['system', 'events'], ['events']],
      usage: '[OPTIONS]',
      description: 'Get real time events from the server',
      flags: [
        { name: 'filter', short: 'f', type: 'list', typeName: 'filter', description: 'Filter output based on conditions provided' },
        formatFlag(false, false),
        { name: 'since', type: 'string', description: 'Show all events created since timestamp' },
        { name: 'until', type: 'string', description: 'Stream events until this timestamp' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => eventsCmd(ctx, f.values.since as string | undefined, f.values.until as string | undefined, f.values.filter as string[], f.values.format as string | undefined),
    },
  ];
}
