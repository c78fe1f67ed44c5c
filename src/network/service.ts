// The networking service: network records (create, inspect, remove, prune), the predefined
// bridge/host/none networks, and the per-container sandbox (netns, endpoints with their IPAM
// addresses, published ports, hosts/resolv.conf) set up through netavark.
//
// Lifecycle contract with the containers service:
//   start:   info = await net.setUp(req)    → put info.netnsPath in the OCI spec, write
//                                             info.hosts / info.resolvConf, then start the container
//   stop:    await net.tearDown(containerID) (idempotent; also after the container died)
//   running: net.connectSandbox / disconnectSandbox for `docker network connect/disconnect`
//   inspect: net.sandbox(containerID)
//   daemon start: net.reconcile(idsOfRunningContainers) tears down what dead containers left.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { conflict, forbidden, hasCode, invalidParameter, notFound, notImplemented, unavailable } from '../common/errors';
import { vethJoin, vethLeave, type VethJoin } from '../native';
import { mkdirp } from '../common/fsutil';
import type { Logger } from '../common/logger';
import type { MetadataDB } from '../metadata/db';
import { DEFAULT_CLAIMS_DIR, HostClaims, hostRoutes } from './claims';
import { endpointSettings } from './format';
import { buildHosts, buildResolvConf } from './hostfiles';
import { BridgeIsolation } from './isolation';
import { chooseAddress, DEFAULT_ADDRESS_POOLS, pickSubnet, poolFromConfig, type AddressPool } from './ipam';
import { formatIP, formatSubnet, hostRange, overlaps, parseCIDR, type Subnet } from './ipnet';
import { AARDVARK_PATHS, findBinary, Netavark, NETAVARK_PATHS, type NvOptions, type NvStatus } from './netavark';
import { createNetns, isNetnsMounted, removeNetns } from './netns';
import { PortReservations } from './ports';
import { NetworkStore, type SandboxRecord } from './store';
import type { EndpointRecord, EndpointRequest, EndpointSettings, IPAMPool, NetworkRecord, SandboxInfo, SandboxRequest } from './types';

export const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';
const MTU_OPTION = 'com.docker.network.driver.mtu';
/** How long the default bridge's last `--rm` container keeps it up after exiting (tearDownLater). */
const LINGER_MS = 2000;
/** netavark's metric for the default routes it adds (constants::DEFAULT_METRIC). */
const NETAVARK_DEFAULT_METRIC = 100;
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const IFNAME = /^[a-zA-Z0-9_.-]{1,15}$/;

export interface NetworkServiceOptions {
  dataRoot: string;
  execRoot: string;
  log: Logger;
  /** dockerd's --bridge: the default bridge's interface name (default: the first free berthN). */
  bridge?: string;
  /** dockerd's --bip: the default bridge's gateway address and prefix, e.g. 10.213.7.1/24. */
  bip?: string;
  /** dockerd's default-address-pools. */
  defaultAddressPools?: AddressPool[];
  /** Where host-wide claims live (tests may isolate it). */
  claimsDir?: string;
  netavarkPath?: string;
  aardvarkPath?: string;
  /** Read instead of /etc/resolv.conf and /etc/hosts (tests). */
  resolvConfPath?: string;
  hostsPath?: string;
  /** dockerd's --iptables (daemon.json `iptables`): false adds no isolation rules. */
  iptables?: boolean;
  /** False: every join and leave goes through netavark (tests compare the two). */
  nativeJoins?: boolean;
}

export interface CreateNetworkRequest {
  Name?: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean | null;
  IPAM?: { Driver?: string; Config?: { Subnet?: string; Gateway?: string; IPRange?: string; AuxiliaryAddresses?: Record<string, string> }[] | null; Options?: Record<string, string> | null } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  ConfigOnly?: boolean;
  ConfigFrom?: { Network?: string } | null;
  Ingress?: boolean;
  Scope?: string;
}

/** Daemon-wide config (cfg.extra) → service options. */
export function optionsFromDaemonConfig(extra: Record<string, unknown>): Pick<NetworkServiceOptions, 'bridge' | 'bip' | 'defaultAddressPools' | 'iptables'> {
  const str = (k: string) => (typeof extra[k] === 'string' && extra[k] !== '' ? (extra[k] as string) : undefined);
  const pools = Array.isArray(extra['default-address-pools']) ? (extra['default-address-pools'] as AddressPool[]) : undefined;
  return { bridge: str('bridge'), bip: str('bip'), defaultAddressPools: pools, iptables: extra.iptables !== false };
}

function newID(): string {
  return randomBytes(32).toString('hex');
}

export class NetworkService {
  readonly store: NetworkStore;
  private readonly log: Logger;
  private readonly claims: HostClaims;
  private readonly netavark?: Netavark;
  private readonly ports = new PortReservations();
  /** The rules that keep this daemon's bridge networks from reaching each other (isolation.ts). */
  private readonly isolation: BridgeIsolation;
  private readonly netnsDir: string;
  private readonly pools: AddressPool[];
  /** netavark calls waiting and running (runNetavark), and the containers they are for. */
  private readonly nvQueue: { exclusive: boolean; start: () => void }[] = [];
  private readonly nvRunning = { exclusive: false, shared: 0 };
  private readonly nvSettingUp = new Set<string>();
  private readonly nvTearingDown = new Set<string>();
  /** Teardowns started by tearDownLater and not finished, by container ID. */
  private readonly teardowns = new Map<string, Promise<void>>();
  /** Teardowns waiting out LINGER_MS, and the function that starts each at once. */
  private readonly lingering = new Map<string, () => void>();
  private closed = false;

  constructor(meta: MetadataDB, private readonly opts: NetworkServiceOptions) {
    this.log = opts.log;
    this.store = new NetworkStore(meta);
    this.claims = new HostClaims(opts.claimsDir ?? DEFAULT_CLAIMS_DIR, opts.dataRoot);
    this.pools = opts.defaultAddressPools && opts.defaultAddressPools.length > 0 ? opts.defaultAddressPools : DEFAULT_ADDRESS_POOLS;
    const nv = opts.netavarkPath ?? findBinary(NETAVARK_PATHS);
    const netavarkDir = path.join(opts.execRoot, 'netavark');
    this.netnsDir = path.join(opts.execRoot, 'netns');
    mkdirp(netavarkDir, 0o700);
    mkdirp(this.netnsDir, 0o700);
    const bridges = (): string[] => this.store.listNetworks().filter((n) => n.driver === 'bridge' && n.bridge !== '').map((n) => n.bridge);
    this.isolation = new BridgeIsolation(opts.dataRoot, bridges, this.log, opts.iptables !== false);
    if (nv) this.netavark = new Netavark(nv, opts.aardvarkPath ?? findBinary(AARDVARK_PATHS), netavarkDir);
    else this.log.warn('netavark not found: containers can use only host and none networking');
  }

  /**
   * Creates the predefined networks on first start, re-claims this data root's bridges and subnets,
   * and re-holds the published ports of sandboxes that survived a daemon restart. Sandboxes whose
   * netns is gone (the host rebooted) are dropped: the kernel state they described is gone too.
   */
  async init(): Promise<void> {
    this.ensurePredefined();
    for (const n of this.store.listNetworks()) {
      if (n.driver !== 'bridge') continue;
      if (!this.claims.claimBridge(n.bridge, n.id)) this.log.warn('bridge name is claimed by another berthd on this host', { network: n.name, bridge: n.bridge });
      for (const p of n.pools) {
        const s = parseCIDR(p.subnet)!;
        if (!this.claims.claimSubnet(s, n.id)) this.log.warn('subnet is claimed by another berthd on this host', { network: n.name, subnet: p.subnet });
      }
    }
    for (const sb of this.store.listSandboxes()) {
      if (sb.mode !== 'host' && !isNetnsMounted(sb.netnsPath)) {
        this.log.info('dropping network state of a sandbox whose namespace is gone', { container: sb.containerID });
        this.store.deleteSandbox(sb.containerID);
        fs.rmSync(sb.netnsPath, { force: true });
        continue;
      }
      const problems = await this.ports.restore(sb.containerID, sb.ports);
      for (const p of problems) this.log.warn('could not re-reserve a published port', { container: sb.containerID, port: p });
    }
    // Reconcile the isolation rules with the networks: a daemon killed between a network's
    // record and its rules (either way) is consistent again from here on.
    await this.isolation.sync();
  }

  /**
   * Resolves when the isolation rules reflect every network created or removed so far (create,
   * remove and prune start the update; the API waits for it before answering).
   */
  isolationSettled(): Promise<void> {
    return this.isolation.settled();
  }

  /** Releases the held port sockets. Kernel state (bridges, rules, netns) stays for running containers. */
  close(): void {
    // Call settled() first. Teardowns still running finish on their own or, if the process ends
    // first, at the next start (reconcile); lingering ones are left to that too.
    this.closed = true;
    for (const go of [...this.lingering.values()]) go();
    this.ports.closeAll();
  }

  // ---- networks -------------------------------------------------------------------------------

  list(): NetworkRecord[] {
    return this.store.listNetworks();
  }

  /** docker's lookup order: full ID, exact name, then a unique ID prefix. */
  get(ref: string): NetworkRecord {
    const all = this.store.listNetworks();
    const byID = all.find((n) => n.id === ref);
    if (byID) return byID;
    const byName = all.find((n) => n.name === ref);
    if (byName) return byName;
    const prefixed = ref.length > 0 ? all.filter((n) => n.id.startsWith(ref)) : [];
    if (prefixed.length === 1) return prefixed[0];
    if (prefixed.length > 1) throw invalidParameter(`network ${ref} is ambiguous (${prefixed.length} matches found based on ID prefix)`);
    throw notFound(`network ${ref} not found`);
  }

  /** The network's endpoints, without those of containers already gone whose teardown is under way. */
  endpoints(networkID: string): EndpointRecord[] {
    return this.store.endpointsOfNetwork(networkID).filter((e) => !this.teardowns.has(e.containerID));
  }

  create(req: CreateNetworkRequest): NetworkRecord {
    const name = req.Name ?? '';
    if (name === '') throw invalidParameter('network name must not be empty');
    if (!NETWORK_NAME.test(name)) throw invalidParameter(`invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const driver = req.Driver || 'bridge';
    if (driver === 'host' || driver === 'null') throw forbidden(`only one instance of "${driver}" network is allowed`);
    if (driver !== 'bridge') throw notFound(`plugin "${driver}" not found`);
    if (req.ConfigOnly || (req.ConfigFrom && req.ConfigFrom.Network)) throw notImplemented('config-only networks are not supported by berth');
    if (req.Ingress) throw invalidParameter('ingress networks need swarm mode, which berth does not have');
    if (req.Scope && req.Scope !== 'local') throw invalidParameter(`scope ${req.Scope} is not supported: berth networks are local`);
    if (req.EnableIPv6) throw invalidParameter('IPv6 networks are not supported by berth');
    if (req.IPAM?.Driver && req.IPAM.Driver !== 'default') throw notFound(`plugin "${req.IPAM.Driver}" not found`);
    if (this.store.listNetworks().some((n) => n.name === name)) throw conflict(`network with name ${name} already exists`);

    const options = { ...(req.Options ?? {}) };
    const id = newID();
    const bridge = options[BRIDGE_NAME_OPTION] ?? `br-${id.slice(0, 12)}`;
    if (!IFNAME.test(bridge)) throw invalidParameter(`invalid bridge name ${JSON.stringify(bridge)}: at most 15 of [a-zA-Z0-9_.-]`);
    if (this.store.listNetworks().some((n) => n.bridge === bridge)) throw conflict(`bridge name ${bridge} is already used by another network`);
    if (options[MTU_OPTION] !== undefined && !/^\d+$/.test(options[MTU_OPTION])) throw invalidParameter(`invalid MTU ${JSON.stringify(options[MTU_OPTION])}`);

    const configs = req.IPAM?.Config ?? [];
    if (configs.length > 1) throw invalidParameter('berth supports one IPv4 subnet per network');
    const taken = this.takenSubnets();
    let pool: IPAMPool;
    let subnet: Subnet;
    if (configs.length === 1) {
      const p = poolFromConfig(configs[0]);
      if (taken.berth.some((t) => overlaps(t, p.net))) throw forbidden('invalid pool request: Pool overlaps with other one on this address space');
      if (taken.foreign.some((t) => overlaps(t, p.net))) throw forbidden(`invalid pool request: ${p.subnet} overlaps with a network of the host or of another berthd`);
      subnet = p.net;
      pool = { subnet: p.subnet, gateway: p.gateway, ipRange: p.ipRange };
    } else {
      subnet = pickSubnet(this.pools, [...taken.berth, ...taken.foreign], (s) => this.claims.claimSubnet(s, id));
      pool = { subnet: formatSubnet(subnet), gateway: formatIP(hostRange(subnet).first), ipRange: '' };
    }
    // Claim host-wide before recording; undo the claims if anything after fails.
    if (!this.claims.claimSubnet(subnet, id)) throw forbidden(`invalid pool request: ${pool.subnet} is in use by another berthd on this host`);
    if (!this.claims.claimBridge(bridge, id) || (options[BRIDGE_NAME_OPTION] && fs.existsSync(`/sys/class/net/${bridge}`))) {
      this.claims.releaseSubnet(subnet, id);
      throw conflict(`bridge name ${bridge} is in use on this host`);
    }
    const rec: NetworkRecord = {
      id, name, driver: 'bridge', created: new Date().toISOString(), internal: !!req.Internal, attachable: !!req.Attachable,
      predefined: false, isDefaultBridge: false, options, labels: { ...(req.Labels ?? {}) }, ipamOptions: { ...(req.IPAM?.Options ?? {}) },
      pools: [pool], bridge,
    };
    try {
      this.store.insertNetwork(rec);
    } catch (err) {
      this.claims.releaseSubnet(subnet, id);
      this.claims.releaseBridge(bridge, id);
      if (String(err).includes('UNIQUE')) throw conflict(`network with name ${name} already exists`);
      throw err;
    }
    this.log.info('network created', { name, id, subnet: pool.subnet, bridge });
    void this.isolation.sync();
    return rec;
  }

  remove(ref: string): void {
    const n = this.get(ref);
    if (n.predefined) throw forbidden(`${n.name} is a pre-defined network and cannot be removed`);
    const eps = this.store.endpointsOfNetwork(n.id);
    if (eps.length > 0) {
      throw forbidden(`error while removing network: network ${n.name} id ${n.id} has active endpoints`);
    }
    this.store.deleteNetwork(n.id);
    this.releaseNetworkClaims(n);
    void this.isolation.sync();
    this.log.info('network removed', { name: n.name, id: n.id });
  }

  /** Removes the unused user-defined networks that `match` accepts; returns their names. */
  prune(match: (n: NetworkRecord) => boolean): string[] {
    const out: string[] = [];
    for (const n of this.store.listNetworks()) {
      if (n.predefined || !match(n) || this.store.endpointsOfNetwork(n.id).length > 0) continue;
      this.store.deleteNetwork(n.id);
      this.releaseNetworkClaims(n);
      out.push(n.name);
    }
    if (out.length > 0) void this.isolation.sync();
    return out;
  }

  private releaseNetworkClaims(n: NetworkRecord): void {
    for (const p of n.pools) this.claims.releaseSubnet(parseCIDR(p.subnet)!, n.id);
    this.claims.releaseBridge(n.bridge, n.id);
  }

  private takenSubnets(): { berth: Subnet[]; foreign: Subnet[] } {
    const berth = this.store.listNetworks().flatMap((n) => n.pools.map((p) => parseCIDR(p.subnet)!));
    return { berth, foreign: [...hostRoutes(), ...this.claims.foreignSubnets()] };
  }

  private ensurePredefined(): void {
    const all = this.store.listNetworks();
    const now = new Date().toISOString();
    const base = { created: now, internal: false, attachable: false, predefined: true, isDefaultBridge: false, options: {}, labels: {}, ipamOptions: {}, pools: [], bridge: '' };
    if (!all.some((n) => n.name === 'host')) this.store.insertNetwork({ ...base, id: newID(), name: 'host', driver: 'host' });
    if (!all.some((n) => n.name === 'none')) this.store.insertNetwork({ ...base, id: newID(), name: 'none', driver: 'null' });

    const existing = all.find((n) => n.name === 'bridge');
    const wantBridge = this.opts.bridge;
    let bip: { subnet: Subnet; gateway: number } | undefined;
    if (this.opts.bip) {
      const c = parseCIDR(this.opts.bip);
      if (!c || c.addr === c.base) throw invalidParameter(`invalid bip ${JSON.stringify(this.opts.bip)}: want the bridge's address with a prefix, e.g. 172.17.0.1/16`);
      bip = { subnet: { base: c.base, prefix: c.prefix }, gateway: c.addr };
    }
    if (existing) {
      const same = (!wantBridge || existing.bridge === wantBridge) && (!bip || (existing.pools[0]?.subnet === formatSubnet(bip.subnet) && existing.pools[0]?.gateway === formatIP(bip.gateway)));
      if (same) return;
      if (this.store.endpointsOfNetwork(existing.id).length > 0) {
        this.log.warn('bridge/bip changed but containers still use the default bridge; keeping its old settings until they stop', { bridge: existing.bridge });
        return;
      }
      this.store.deleteNetwork(existing.id);
      this.releaseNetworkClaims(existing);
    }
    const id = existing?.id ?? newID();
    let bridge = wantBridge;
    if (!bridge) {
      // docker0's counterpart: berth0, or the next name no other berthd on this host holds.
      for (let i = 0; !bridge; i++) if (this.claims.claimBridge(`berth${i}`, id)) bridge = `berth${i}`;
    } else if (!this.claims.claimBridge(bridge, id)) {
      throw conflict(`bridge ${bridge} is in use by another berthd on this host`);
    }
    let subnet: Subnet;
    let gateway: number;
    if (bip) {
      if (!this.claims.claimSubnet(bip.subnet, id)) throw conflict(`bip ${this.opts.bip} overlaps a subnet another berthd on this host uses`);
      subnet = bip.subnet;
      gateway = bip.gateway;
    } else {
      subnet = pickSubnet(this.pools, [...this.takenSubnets().berth, ...this.takenSubnets().foreign], (s) => this.claims.claimSubnet(s, id));
      gateway = hostRange(subnet).first;
    }
    this.store.insertNetwork({
      ...base, id, name: 'bridge', driver: 'bridge', isDefaultBridge: true, bridge,
      pools: [{ subnet: formatSubnet(subnet), gateway: formatIP(gateway), ipRange: '' }],
      options: {
        'com.docker.network.bridge.default_bridge': 'true',
        'com.docker.network.bridge.enable_icc': 'true',
        'com.docker.network.bridge.enable_ip_masquerade': 'true',
        'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
        [BRIDGE_NAME_OPTION]: bridge,
        [MTU_OPTION]: '1500',
      },
    });
  }

  // ---- sandboxes --------------------------------------------------------------------------------

  /**
   * Runs a netavark call. Exclusive calls run alone, in order (netavark races with itself when
   * two runs create or remove the same bridge, chains or DNS entries). Shared calls may overlap
   * each other: a container joining or leaving a network whose bridge and rules exist before and
   * after, with nothing published and no DNS, where netavark only makes or deletes its veth
   * (kernel-named) and reads the rules. Queue order is kept, so a shared call never overtakes an
   * exclusive one.
   */
  private runNetavark<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.nvQueue.push({
        exclusive,
        start: () => {
          if (exclusive) this.nvRunning.exclusive = true;
          else this.nvRunning.shared++;
          fn().then(resolve, reject).finally(() => {
            if (exclusive) this.nvRunning.exclusive = false;
            else this.nvRunning.shared--;
            this.pumpNetavark();
          });
        },
      });
      this.pumpNetavark();
    });
  }

  private pumpNetavark(): void {
    while (this.nvQueue.length > 0 && !this.nvRunning.exclusive) {
      const next = this.nvQueue[0];
      if (next.exclusive && this.nvRunning.shared > 0) return;
      this.nvQueue.shift();
      next.start();
    }
  }

  /**
   * True when the network's bridge and rules are there and stay while a container joins or leaves
   * it: another endpoint on it is plumbed (not being set up or torn down), so netavark neither
   * creates nor removes the bridge. Only the default bridge qualifies (user networks have DNS,
   * whose entries netavark rewrites).
   */
  private networkStaysUp(networkID: string, containerID: string): boolean {
    const n = this.store.getNetwork(networkID);
    if (!n || !n.isDefaultBridge || !fs.existsSync(`/sys/class/net/${n.bridge}`)) return false;
    return this.store.endpointsOfNetwork(networkID).some((e) => e.containerID !== containerID && !this.nvSettingUp.has(e.containerID) && !this.nvTearingDown.has(e.containerID));
  }

  private requireNetavark(): Netavark {
    if (!this.netavark) throw unavailable('bridge networking is unavailable: netavark is not installed');
    return this.netavark;
  }

  private resolveMode(mode: string): { kind: 'host' | 'none' | 'bridge'; primary?: NetworkRecord } {
    if (mode === '' || mode === 'default' || mode === 'bridge') return { kind: 'bridge', primary: this.get('bridge') };
    if (mode === 'host') return { kind: 'host' };
    if (mode === 'none') return { kind: 'none' };
    if (mode.startsWith('container:')) throw invalidParameter('container network mode is handled by the containers service (join the other container\'s netns)');
    const n = this.get(mode);
    if (n.driver === 'host') return { kind: 'host' };
    if (n.driver === 'null') return { kind: 'none' };
    return { kind: 'bridge', primary: n };
  }

  /**
   * Sets up networking for a starting container: a netns with one interface per network (eth0 on
   * the NetworkMode network), addresses from IPAM, published ports, DNS entries. All or nothing:
   * on failure everything made so far is undone.
   */
  async setUp(req: SandboxRequest): Promise<SandboxInfo> {
    const { plumbed } = await this.setUpDeferred(req);
    await plumbed;
    // Read again: the MAC addresses come from netavark.
    return this.sandbox(req.containerID)!;
  }

  /**
   * setUp in two steps, so that a container start can overlap netavark with the OCI runtime's
   * create: `info` comes once the netns exists and addresses and ports are allocated (everything
   * hosts, resolv.conf and the spec need); `plumbed` settles when netavark has made the
   * interfaces, routes and rules. The container must not run before `plumbed` resolves. When it
   * rejects, the sandbox is already undone (ports, addresses, netns).
   */
  async setUpDeferred(req: SandboxRequest): Promise<{ info: SandboxInfo; plumbed: Promise<void> }> {
    if (this.store.getSandbox(req.containerID)) throw conflict(`network sandbox for container ${req.containerID} already exists`);
    const mode = this.resolveMode(req.networkMode);
    if (mode.kind === 'host') {
      if (req.ports.length > 0) this.log.info('published ports are discarded when using host network mode', { container: req.containerID });
      this.store.insertSandbox({ containerID: req.containerID, netnsPath: '', mode: 'host', request: req, ports: [] });
      return { info: this.sandbox(req.containerID)!, plumbed: Promise.resolve() };
    }
    const netnsPath = path.join(this.netnsDir, req.containerID);
    await createNetns(netnsPath);
    const networks: NetworkRecord[] = [];
    if (mode.kind === 'bridge') {
      networks.push(mode.primary!);
      for (const ref of Object.keys(req.networks)) {
        const n = this.get(ref);
        if (n.driver !== 'bridge') throw invalidParameter(`container cannot be connected to host and bridge networks at once (${n.name})`);
        if (!networks.some((x) => x.id === n.id)) networks.push(n);
      }
    }
    const reqFor = (n: NetworkRecord): EndpointRequest => req.networks[n.name] ?? req.networks[n.id] ?? Object.entries(req.networks).find(([k]) => n.id.startsWith(k))?.[1] ?? {};
    // A fixed address or host port may still be held by a container whose teardown runs
    // (lingering ones hold neither: they are on the default bridge and publish nothing).
    if (req.ports.length > 0 || networks.some((n) => reqFor(n).ipv4Address)) await this.settled(false);
    const allocate = (): void => this.store.db.transaction(() => {
      this.store.insertSandbox({ containerID: req.containerID, netnsPath, mode: mode.kind === 'none' ? 'none' : 'bridge', request: req, ports: [] });
      networks.forEach((n, i) => this.allocateEndpoint(n, req, reqFor(n), `eth${i}`));
    })();
    try {
      try {
        allocate();
      } catch (err) {
        // A pool that looks full may only be waiting for teardowns to give addresses back.
        if (this.teardowns.size === 0) throw err;
        await this.settled();
        allocate();
      }
    } catch (err) {
      await removeNetns(netnsPath);
      throw err;
    }
    const undo = async (): Promise<void> => {
      this.ports.release(req.containerID);
      this.store.deleteSandbox(req.containerID);
      await removeNetns(netnsPath);
    };
    let nv: Netavark;
    try {
      if (mode.kind === 'bridge' && req.ports.length > 0) {
        const ports = await this.ports.reserve(req.containerID, req.ports);
        this.store.db.prepare('UPDATE network_sandboxes SET ports = ? WHERE container_id = ?').run(JSON.stringify(ports), req.containerID);
      }
      nv = this.requireNetavark();
    } catch (err) {
      await undo();
      throw err;
    }
    const sb = this.store.getSandbox(req.containerID)!;
    const eps = this.store.endpointsOfContainer(req.containerID);
    const nvOpts = this.netavarkOptions(sb, eps, true);
    const shared = mode.kind === 'bridge' && sb.ports.length === 0 && eps.every((e) => this.networkStaysUp(e.networkID, req.containerID));
    this.nvSettingUp.add(req.containerID);
    // A network created a moment ago may still be waiting for its isolation rules (no spawn here:
    // usually an already settled promise).
    const join = shared ? this.nativeJoin(sb, eps) : undefined;
    const setup = async (): Promise<Record<string, NvStatus>> => {
      if (join) {
        try {
          return await this.runNetavark(false, () => this.joinNatively(join));
        } catch (err) {
          // The bridge went away after all: netavark makes it again, with its rules.
          if (!(hasCode(err, 'ENODEV') && (err as NodeJS.ErrnoException).syscall === 'get bridge interface')) throw err;
        }
        return this.runNetavark(true, () => nv.setup(netnsPath, nvOpts));
      }
      return this.runNetavark(!shared, () => nv.setup(netnsPath, nvOpts));
    };
    const plumbed = this.isolation.settled().then(setup).finally(() => this.nvSettingUp.delete(req.containerID)).then(
      (status) => {
        // The MAC was chosen at allocation; record netavark's only if it differs.
        for (const e of this.store.endpointsOfContainer(req.containerID)) {
          const mac = status[e.networkID]?.interfaces?.[e.ifname]?.mac_address;
          if (mac && mac.toLowerCase() !== e.mac.toLowerCase()) this.store.setEndpointMac(e.networkID, e.containerID, mac);
        }
      },
      async (err: unknown) => {
        await undo();
        throw err;
      },
    );
    // The caller may fail (and stop waiting) before netavark is done; the rejection is theirs to see.
    plumbed.catch(() => {});
    return { info: this.sandbox(req.containerID)!, plumbed };
  }

  /**
   * A shared join (see networkStaysUp) that berth can make itself, with netavark's netlink
   * requests and none of its firewall work: one endpoint, on the default bridge (no DNS, not
   * internal), nothing published. There netavark's iptables driver only checks (about 17
   * `iptables` processes per start) that the network's NAT and forward rules and the global
   * port-forward chains exist, which they do while another container is plumbed: the rules are
   * per network, made by the join that made the bridge and removed by the leave that removes it,
   * and both of those still go through netavark.
   */
  private nativeJoin(sb: SandboxRecord, eps: EndpointRecord[]): (VethJoin & { networkID: string }) | undefined {
    if (this.opts.nativeJoins === false || sb.ports.length > 0 || eps.length !== 1) return undefined;
    const e = eps[0];
    const n = this.store.getNetwork(e.networkID);
    if (!n || !n.isDefaultBridge || n.internal || !e.mac) return undefined;
    const mtu = n.options[MTU_OPTION] && n.options[MTU_OPTION] !== '1500' ? Number(n.options[MTU_OPTION]) : 0;
    return { networkID: n.id, netns: sb.netnsPath, bridge: n.bridge, ifname: e.ifname, mac: e.mac, ip: e.ip, prefixLen: e.prefixLen, gateway: e.gateway, mtu, metric: NETAVARK_DEFAULT_METRIC };
  }

  /** vethJoin, answering as netavark's setup would (its status block, for the MAC). */
  private async joinNatively(j: VethJoin & { networkID: string }): Promise<Record<string, NvStatus>> {
    const mac = await vethJoin(j);
    return { [j.networkID]: { interfaces: { [j.ifname]: { mac_address: mac } } } };
  }

  private allocateEndpoint(n: NetworkRecord, sreq: SandboxRequest, ereq: EndpointRequest, ifname: string): EndpointRecord {
    const pool = n.pools[0];
    if (!pool) throw invalidParameter(`network ${n.name} has no address pool`);
    if (ereq.ipv4Address) {
      if (n.isDefaultBridge) throw invalidParameter('user specified IP address is supported on user defined networks only');
    }
    const ip = chooseAddress(pool, this.store.usedIPs(n.id), ereq.ipv4Address || undefined, n.name);
    const aliases = [...new Set((ereq.aliases ?? []).filter((a) => a !== ''))];
    // docker's DNSNames: the name, the aliases and the short ID; none on the default bridge,
    // where docker has no embedded DNS.
    const dnsNames = n.isDefaultBridge ? [] : [...new Set([sreq.containerName, ...aliases, sreq.containerID.slice(0, 12)].filter(Boolean))];
    const e: EndpointRecord = {
      networkID: n.id, containerID: sreq.containerID, endpointID: newID(), ip, prefixLen: parseCIDR(pool.subnet)!.prefix, gateway: pool.gateway,
      // Chosen here, not left to netavark, so that no second write is needed after it ran.
      mac: ereq.macAddress || macFromIP(ip), ifname, aliases, dnsNames, requestedIP: ereq.ipv4Address ?? '', requestedMac: ereq.macAddress ?? '',
    };
    this.store.insertEndpoint(e);
    return e;
  }

  /** netavark's input for the given endpoints of a sandbox (setup and teardown must match). */
  private netavarkOptions(sb: SandboxRecord, eps: EndpointRecord[], withPorts: boolean): NvOptions {
    const o: NvOptions = { container_id: sb.containerID, container_name: sb.request.containerName, networks: {}, network_info: {} };
    for (const e of eps) {
      const n = this.store.getNetwork(e.networkID);
      if (!n) continue;
      const pool = n.pools[0];
      // The network ID is netavark's "name": its iptables chains are named after a hash of it,
      // so two daemons' networks called "bridge" or "app" never share chains.
      o.network_info[n.id] = {
        name: n.id, id: n.id, driver: 'bridge', network_interface: n.bridge,
        subnets: [{ subnet: pool.subnet, gateway: pool.gateway, ...(pool.ipRange ? { lease_range: rangeOf(pool.ipRange) } : {}) }],
        ipv6_enabled: false, internal: n.internal, dns_enabled: !n.isDefaultBridge,
        options: n.options[MTU_OPTION] && n.options[MTU_OPTION] !== '1500' ? { mtu: n.options[MTU_OPTION] } : undefined,
        ipam_options: { driver: 'host-local' },
      };
      o.networks[n.id] = {
        interface_name: e.ifname, static_ips: [e.ip],
        aliases: e.dnsNames.filter((x) => x !== sb.request.containerName),
        ...(e.mac || e.requestedMac ? { static_mac: e.mac || e.requestedMac } : {}),
      };
    }
    if (withPorts && sb.ports.length > 0) {
      o.port_mappings = sb.ports.map((p) => ({ host_ip: p.hostIP, container_port: p.containerPort, host_port: p.hostPort, range: 1, protocol: p.protocol }));
    }
    if (sb.request.dns.length > 0) o.dns_servers = sb.request.dns;
    return o;
  }

  /** Undoes setUp: interfaces, rules, DNS entries, ports, addresses, netns. Safe to call twice. */
  async tearDown(containerID: string): Promise<void> {
    this.lingering.get(containerID)?.();
    const pending = this.teardowns.get(containerID);
    if (pending) await pending;
    await this.tearDownNow(containerID);
  }

  /**
   * tearDown without waiting for it, for a `--rm` container whose removal a client is waiting on
   * (netavark's teardown is most of an exit's cost). Until it is done the sandbox record stays
   * (so a daemon killed meanwhile tears it down at its next start), its addresses and ports stay
   * taken, and its endpoints are not listed; whatever could collide with it waits for it: a
   * new sandbox of the same container or with published ports, an address pool that seems full,
   * and removing a network (settled()).
   *
   * The last container to leave the default bridge makes netavark remove the bridge and its
   * rules, and the next one to come makes them all again: in a `docker run --rm` loop that was
   * most of the time. So that teardown lingers a moment (LINGER_MS) first: a container joining
   * meanwhile finds the bridge up, and the teardown then leaves it up. Only the default bridge
   * (no DNS entries to go stale) and only without published ports (nothing for others to wait on).
   */
  tearDownLater(containerID: string): void {
    if (this.teardowns.has(containerID)) return;
    const sb = this.store.getSandbox(containerID);
    const eps = sb ? this.store.endpointsOfContainer(containerID) : [];
    const linger = sb?.mode === 'bridge' && sb.ports.length === 0 && eps.length > 0
      && eps.every((e) => this.store.getNetwork(e.networkID)?.isDefaultBridge === true)
      && !eps.every((e) => this.networkStaysUp(e.networkID, containerID));
    let begin = Promise.resolve();
    if (linger) {
      begin = new Promise<void>((resolve) => {
        const go = (): void => {
          clearTimeout(timer);
          this.lingering.delete(containerID);
          resolve();
        };
        const timer = setTimeout(go, LINGER_MS);
        timer.unref();
        this.lingering.set(containerID, go);
      });
    }
    const p: Promise<void> = begin.then(() => (this.closed ? undefined : this.tearDownNow(containerID)))
      .catch((err: unknown) => this.log.warn('tearing down container networking failed', { container: containerID, error: (err as Error).message }))
      .finally(() => {
        if (this.teardowns.get(containerID) === p) this.teardowns.delete(containerID);
      });
    this.teardowns.set(containerID, p);
  }

  /**
   * Resolves when the teardowns started by tearDownLater have finished; lingering ones are started
   * at once, unless `expedite` is false (then they are not waited for either).
   */
  async settled(expedite = true): Promise<void> {
    for (;;) {
      if (expedite) for (const go of [...this.lingering.values()]) go();
      const waiting = [...this.teardowns].filter(([id]) => expedite || !this.lingering.has(id)).map(([, p]) => p);
      if (waiting.length === 0) return;
      await Promise.all(waiting);
    }
  }

  private async tearDownNow(containerID: string): Promise<void> {
    const sb = this.store.getSandbox(containerID);
    if (!sb) return;
    const eps = this.store.endpointsOfContainer(containerID);
    if (sb.mode === 'bridge' && eps.length > 0 && this.netavark && isNetnsMounted(sb.netnsPath)) {
      const nv = this.netavark;
      const shared = sb.ports.length === 0 && eps.every((e) => this.networkStaysUp(e.networkID, containerID));
      this.nvTearingDown.add(containerID);
      // A shared leave of the default bridge: netavark would only delete the veth (the bridge
      // and the network's rules stay; nothing published), which berth does itself.
      const leave = shared ? this.nativeJoin(sb, eps) : undefined;
      try {
        if (leave) {
          await this.runNetavark(false, () => vethLeave(leave.netns, leave.ifname).catch((err: unknown) => {
            if (!hasCode(err, 'ENODEV')) throw err;
          }));
        } else {
          await this.runNetavark(!shared, () => nv.teardown(sb.netnsPath, this.netavarkOptions(sb, eps, true)));
        }
      } catch (err) {
        // Keep going: the address, ports and netns must be released whatever netavark says.
        this.log.warn('netavark teardown reported errors', { container: containerID, error: (err as Error).message });
      } finally {
        this.nvTearingDown.delete(containerID);
      }
    }
    this.ports.release(containerID);
    this.store.deleteSandbox(containerID);
    if (sb.netnsPath) await removeNetns(sb.netnsPath);
    if (sb.mode === 'bridge') await this.removeEmptyPortChains(eps.map((e) => e.networkID));
  }

  /**
   * netavark 1.4 leaves a network's NETAVARK-DN-<hash> nat chain behind, empty, when the last
   * container with published ports leaves: it creates the chain but never marks it for removal.
   * Once the bridge is gone (the network was torn down completely), delete the chain. The hash
   * is netavark's: the first 13 hex digits of SHA-512 of the network's netavark name (our ID).
   */
  private async removeEmptyPortChains(networkIDs: string[]): Promise<void> {
    for (const id of networkIDs) {
      const n = this.store.getNetwork(id);
      if (!n || fs.existsSync(`/sys/class/net/${n.bridge}`)) continue;
      const chain = `NETAVARK-DN-${createHash('sha512').update(id).digest('hex').toUpperCase().slice(0, 13)}`;
      // -X refuses a chain that still has rules or references, which is exactly the guard we want.
      await new Promise<void>((resolve) => execFile('iptables', ['-t', 'nat', '-X', chain], () => resolve()));
    }
  }

  /** Tears down the sandboxes of containers that are not running any more (after a daemon restart). */
  async reconcile(running: Set<string>): Promise<void> {
    for (const sb of this.store.listSandboxes()) {
      if (!running.has(sb.containerID)) await this.tearDown(sb.containerID);
    }
  }

  /** Connects a running container's sandbox to one more network (docker network connect). */
  async connectSandbox(containerID: string, networkRef: string, ereq: EndpointRequest): Promise<EndpointSettings> {
    const sb = this.store.getSandbox(containerID);
    if (!sb) throw conflict(`container ${containerID} has no network sandbox (is it running?)`);
    const n = this.get(networkRef);
    if (sb.mode !== 'bridge' || n.driver !== 'bridge') throw forbidden(`container cannot be disconnected from host network or connected to host network`);
    const eps = this.store.endpointsOfContainer(containerID);
    if (eps.some((e) => e.networkID === n.id)) throw forbidden(`endpoint with name ${sb.request.containerName} already exists in network ${n.name}`);
    const used = new Set(eps.map((e) => e.ifname));
    let i = 0;
    while (used.has(`eth${i}`)) i++;
    const ifname = `eth${i}`;
    const e = this.store.db.transaction(() => {
      const rec = this.allocateEndpoint(n, sb.request, ereq, ifname);
      this.store.updateSandboxRequest(containerID, { ...sb.request, networks: { ...sb.request.networks, [n.name]: ereq } });
      return rec;
    })();
    try {
      const nv = this.requireNetavark();
      const status = await this.runNetavark(true, () => nv.setup(sb.netnsPath, this.netavarkOptions(sb, [e], false)));
      const mac = status[n.id]?.interfaces?.[ifname]?.mac_address;
      if (mac) this.store.setEndpointMac(n.id, containerID, mac);
    } catch (err) {
      this.store.db.transaction(() => {
        this.store.deleteEndpoint(n.id, containerID);
        this.store.updateSandboxRequest(containerID, sb.request);
      })();
      throw err;
    }
    return endpointSettings(n, this.store.endpointsOfContainer(containerID).find((x) => x.networkID === n.id)!);
  }

  /** Disconnects a running container from one network (docker network disconnect). */
  async disconnectSandbox(containerID: string, networkRef: string): Promise<void> {
    const sb = this.store.getSandbox(containerID);
    if (!sb) throw conflict(`container ${containerID} has no network sandbox (is it running?)`);
    const n = this.get(networkRef);
    const e = this.store.endpointsOfContainer(containerID).find((x) => x.networkID === n.id);
    if (!e) throw forbidden(`container ${containerID} is not connected to network ${n.name}`);
    if (this.netavark && isNetnsMounted(sb.netnsPath)) {
      const nv = this.netavark;
      try {
        await this.runNetavark(true, () => nv.teardown(sb.netnsPath, this.netavarkOptions(sb, [e], true)));
      } catch (err) {
        this.log.warn('netavark teardown reported errors', { container: containerID, network: n.name, error: (err as Error).message });
      }
    }
    await this.removeEmptyPortChains([n.id]);
    const networks = { ...sb.request.networks };
    delete networks[n.name];
    delete networks[n.id];
    this.store.db.transaction(() => {
      this.store.deleteEndpoint(n.id, containerID);
      this.store.updateSandboxRequest(containerID, { ...sb.request, networks });
    })();
  }

  /** The container's networking as inspect shows it, and its hosts/resolv.conf contents. */
  sandbox(containerID: string): SandboxInfo | undefined {
    const sb = this.store.getSandbox(containerID);
    if (!sb) return undefined;
    const r = sb.request;
    const eps = this.store.endpointsOfContainer(containerID);
    const networks: Record<string, EndpointSettings> = {};
    let resolver: string | undefined;
    for (const e of eps) {
      const n = this.store.getNetwork(e.networkID);
      if (!n) continue;
      networks[n.name] = endpointSettings(n, e);
      // The first DNS-enabled network's resolver; aardvark answers for all of a container's
      // networks on each of them, since the entries are per network but the server is shared.
      if (!resolver && !n.isDefaultBridge) resolver = e.gateway;
    }
    if (sb.mode === 'host') networks.host = hostOrNoneEndpoint(this.get('host'));
    if (sb.mode === 'none') networks.none = hostOrNoneEndpoint(this.get('none'));
    const ports: SandboxInfo['ports'] = {};
    for (const p of r.ports) ports[`${p.containerPort}/${p.protocol}`] = [];
    for (const p of sb.ports) ports[`${p.containerPort}/${p.protocol}`]!.push({ HostIp: p.hostIP || '0.0.0.0', HostPort: String(p.hostPort) });
    const hostResolv = readOr(this.opts.resolvConfPath ?? '/etc/resolv.conf');
    const dns = { dns: r.dns, dnsSearch: r.dnsSearch, dnsOptions: r.dnsOptions };
    return {
      containerID,
      netnsPath: sb.mode === 'host' ? null : sb.netnsPath,
      mode: sb.mode,
      networks,
      ports: sb.mode === 'bridge' ? ports : {},
      hosts: sb.mode === 'host'
        ? buildHosts({ base: readOr(this.opts.hostsPath ?? '/etc/hosts'), extraHosts: r.extraHosts, ips: [], hostname: r.hostname })
        : buildHosts({ extraHosts: r.extraHosts, ips: eps.map((e) => e.ip), hostname: r.hostname, domainname: r.domainname }),
      resolvConf: buildResolvConf(hostResolv, { ...dns, internalResolver: resolver, hostMode: sb.mode === 'host' }),
    };
  }

  /** Container IDs with a sandbox (for the containers service's restore). */
  sandboxIDs(): string[] {
    return this.store.listSandboxes().map((s) => s.containerID);
  }
}

/** docker's classic container MAC: 02:42 and the four bytes of the IPv4 address. */
function macFromIP(ip: string): string {
  return ['02', '42', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

function rangeOf(cidr: string): { start_ip: string; end_ip: string } {
  const r = parseCIDR(cidr)!;
  const { first, last } = hostRange(r);
  return { start_ip: formatIP(first), end_ip: formatIP(last) };
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function hostOrNoneEndpoint(n: NetworkRecord): EndpointSettings {
  return {
    IPAMConfig: null, Links: null, Aliases: null, MacAddress: '', DriverOpts: null, GwPriority: 0, NetworkID: n.id, EndpointID: '',
    Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
  };
}

