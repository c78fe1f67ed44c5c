// The glue between containers and the networking subsystem: what a container asks for at create
// (NetworkMode, NetworkingConfig, PortBindings, DNS options) becomes a NetworkService sandbox at
// start and is torn down at exit; inspect and list show the result in docker's shapes; and
// `docker network connect/disconnect` change a container's networks (ContainerNetworking).
//
// Which networks a container belongs to is kept next to its other files, in
// <data-root>/containers/<id>/networks.json (network name → endpoint request): it is written at
// create and by connect/disconnect, read at every start, and goes away with the container.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError, conflict, forbidden, invalidParameter, isKind } from '../common/errors';
import { writeFileAtomic, writeFileAtomicAsync, writeFileReplace } from '../common/fsutil';
import type { Logger } from '../common/logger';
import type { EventPublisher } from '../events';
import type { NetworkService } from '../network/service';
import type { ContainerNetworking, EndpointRequest, EndpointSettings, NetworkRecord, PortBindingRequest, SandboxInfo, SandboxRequest } from '../network/types';
import type { NamespaceMode } from '../runtime/spec';
import { writeRegeneratedFile } from './hostfiles';
import type { ContainerService } from './service';
import type { ContainerPaths, ContainerRecord, HostConfig } from './store';

/** The part of the networking service containers use (NetworkService implements it). */
export type SandboxService = Pick<NetworkService, 'setUpDeferred' | 'tearDown' | 'tearDownLater' | 'sandbox' | 'connectSandbox' | 'disconnectSandbox' | 'get' | 'reconcile'>;

/** Resolves a container reference (for --network container:<ref>); throws 404. */
export type PeerLookup = (ref: string) => ContainerRecord;

/** The create request's networking part, as the Engine API sends it. */
export interface NetworkingConfig {
  EndpointsConfig?: Record<string, { IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null; Aliases?: string[] | null; MacAddress?: string } | null> | null;
}

/** What the start path puts into the OCI spec, and what it waits for before the process runs. */
export interface StartNetworking {
  namespace: NamespaceMode;
  /**
   * Settles when the namespace's interfaces, routes and rules are in place (netavark runs while
   * the OCI runtime creates the container). The container must not start before it resolves; on
   * rejection the sandbox is already undone.
   */
  ready: Promise<void>;
  /** /etc/hosts and /etc/resolv.conf were written (from the sandbox, or the peer's). */
  hostFiles: boolean;
}

/** HostConfig.NetworkMode as stored: docker's "default" (and no value) is the default bridge. */
export function normalizeNetworkMode(mode: string | undefined): string {
  return !mode || mode === 'default' ? 'bridge' : mode;
}

function isContainerMode(mode: string): boolean {
  return mode.startsWith('container:');
}

function portKey(key: string): { port: number; protocol: 'tcp' | 'udp' } {
  const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/.exec(key);
  if (!m) throw invalidParameter(`invalid port specification: "${key}"`);
  const port = Number(m[1]);
  if (port < 1 || port > 65535) throw invalidParameter(`invalid containerPort: ${m[1]}`);
  if (m[2] === 'sctp') throw invalidParameter(`invalid port specification: "${key}": sctp is not supported by berth`);
  return { port, protocol: (m[2] ?? 'tcp') as 'tcp' | 'udp' };
}

/**
 * The published ports: HostConfig.PortBindings, plus a random host port for every exposed port
 * without a binding when PublishAllPorts is set (docker's -P). Throws 400 on a malformed spec.
 */
export function portRequests(hc: Partial<HostConfig>, exposed: Record<string, object> | undefined): PortBindingRequest[] {
  const out: PortBindingRequest[] = [];
  const bindings = (hc.PortBindings ?? {}) as Record<string, { HostIp?: string; HostPort?: string }[] | null>;
  if (typeof bindings !== 'object' || Array.isArray(bindings)) throw invalidParameter('PortBindings must be an object');
  for (const [key, list] of Object.entries(bindings)) {
    const { port, protocol } = portKey(key);
    for (const b of list ?? [{}]) {
      const hp = (b?.HostPort ?? '').trim();
      if (hp !== '' && !/^\d+$/.test(hp)) throw invalidParameter(`invalid hostPort: ${hp}${hp.includes('-') ? ' (host port ranges are not supported by berth)' : ''}`);
      const hostPort = hp === '' ? 0 : Number(hp);
      if (hostPort > 65535) throw invalidParameter(`invalid hostPort: ${hp}`);
      out.push({ containerPort: port, protocol, hostIP: b?.HostIp ?? '', hostPort });
    }
  }
  if (hc.PublishAllPorts) {
    for (const key of Object.keys(exposed ?? {})) {
      const { port, protocol } = portKey(key);
      if (!out.some((p) => p.containerPort === port && p.protocol === protocol)) out.push({ containerPort: port, protocol, hostIP: '', hostPort: 0 });
    }
  }
  return out;
}

function endpointRequests(nc: NetworkingConfig | undefined): Record<string, EndpointRequest> {
  const out: Record<string, EndpointRequest> = {};
  for (const [key, ec] of Object.entries(nc?.EndpointsConfig ?? {})) {
    // The CLI names the default network "default" when no --network is given.
    const name = normalizeNetworkMode(key);
    if (ec?.IPAMConfig?.IPv6Address) throw invalidParameter('IPv6 addresses are not supported by berth');
    const aliases = (ec?.Aliases ?? []).filter((a) => a !== '');
    out[name] = {
      ...(ec?.IPAMConfig?.IPv4Address ? { ipv4Address: ec.IPAMConfig.IPv4Address } : {}),
      ...(aliases.length > 0 ? { aliases } : {}),
      ...(ec?.MacAddress ? { macAddress: ec.MacAddress } : {}),
    };
  }
  return out;
}

function emptyEndpoint(networkID: string, req: EndpointRequest): EndpointSettings {
  return {
    IPAMConfig: req.ipv4Address ? { IPv4Address: req.ipv4Address } : null, Links: null, Aliases: req.aliases && req.aliases.length > 0 ? req.aliases : null,
    MacAddress: '', DriverOpts: null, GwPriority: 0, NetworkID: networkID, EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0,
    IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
  };
}

/** docker's message for a port another process (or container) holds, with its usual preamble. */
function dockerSetupError(err: unknown, rec: ContainerRecord): Error {
  if (err instanceof BerthError && /^Bind for .* failed: port is already allocated$/.test(err.message)) {
    return new BerthError(err.kind, `driver failed programming external connectivity on endpoint ${rec.name} (${rec.id.slice(0, 12)}): ${err.message}`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

export class ContainerNetworks {
  /** Where network connect/disconnect events go (dockerd's, for starts, stops and the API). */
  events?: EventPublisher;

  constructor(
    private readonly net: SandboxService,
    private readonly paths: ContainerPaths,
    private readonly log: Logger,
  ) {}

  /** Container → networks it was reported connected to: a stop may run twice (exit, then removal). */
  private readonly reported = new Map<string, Set<string>>();

  private emitNetwork(action: 'connect' | 'disconnect', networkID: string, name: string, containerID: string): void {
    if (!this.events || !networkID) return;
    const nets = this.reported.get(containerID) ?? new Set<string>();
    if (action === 'connect') {
      nets.add(networkID);
      this.reported.set(containerID, nets);
    } else {
      if (!nets.delete(networkID)) return;
      if (nets.size === 0) this.reported.delete(containerID);
    }
    try {
      this.events.publish('network', action, { ID: networkID, Attributes: { container: containerID, name, type: this.networkRef(networkID)?.driver ?? 'bridge' } });
    } catch (err) {
      this.log.warn('publishing network event failed', { action, error: (err as Error).message });
    }
  }

  private file(id: string): string {
    return path.join(this.paths.dir(id), 'networks.json');
  }

  /** The networks a container asked for (name → endpoint request). */
  endpoints(id: string): Record<string, EndpointRequest> {
    try {
      return JSON.parse(fs.readFileSync(this.file(id), 'utf8')) as Record<string, EndpointRequest>;
    } catch {
      return {};
    }
  }

  private saveEndpoints(id: string, eps: Record<string, EndpointRequest>): void {
    writeFileAtomic(this.file(id), JSON.stringify(eps));
  }

  /**
   * Checks a create request's networking (the networks exist, the ports parse, the mode makes
   * sense) and returns what to record; nothing is reserved until start.
   */
  validateCreate(hc: Partial<HostConfig>, nc: unknown, exposed: Record<string, object> | undefined): Record<string, EndpointRequest> {
    try {
      return this.checkCreate(hc, nc, exposed);
    } catch (err) {
      // A missing network is the request's fault; a 404 would make the CLI try to pull the image.
      if (isKind(err, 'NotFound')) throw invalidParameter((err as Error).message);
      throw err;
    }
  }

  private checkCreate(hc: Partial<HostConfig>, nc: unknown, exposed: Record<string, object> | undefined): Record<string, EndpointRequest> {
    const mode = normalizeNetworkMode(hc.NetworkMode);
    portRequests(hc, exposed);
    const eps = endpointRequests(nc as NetworkingConfig | undefined);
    if (isContainerMode(mode)) {
      if (mode === 'container:') throw invalidParameter('--network: invalid net mode: invalid container format container:<name|id>');
      if ((hc.PortBindings && Object.keys(hc.PortBindings as object).length > 0) || hc.PublishAllPorts) throw invalidParameter('conflicting options: port publishing and the container type network mode');
      if ((hc.Dns as string[] | undefined)?.length) throw invalidParameter('conflicting options: dns and the network mode');
      if ((hc.ExtraHosts as string[] | undefined)?.length) throw invalidParameter('conflicting options: custom host-to-IP mapping and the network mode');
      return {};
    }
    const primary = this.net.get(mode);
    if (primary.driver !== 'bridge') {
      if (Object.keys(eps).some((k) => this.net.get(k).id !== primary.id)) throw invalidParameter(`container cannot be connected to multiple networks with one of the networks in private (none) mode`);
      return {};
    }
    for (const [name, ep] of Object.entries(eps)) {
      const n = this.net.get(name);
      if (n.driver !== 'bridge') throw invalidParameter(`container cannot be connected to host and bridge networks at once (${n.name})`);
      if (ep.ipv4Address && n.isDefaultBridge) throw invalidParameter('user specified IP address is supported on user defined networks only');
      if (ep.aliases && n.isDefaultBridge) throw invalidParameter('network-scoped aliases are supported only for containers in user defined networks');
    }
    return eps;
  }

  /**
   * Records the endpoints of a new container (its directory exists). Durable like every later
   * change, but with the fsyncs on the thread pool: on a busy disk they blocked the event loop,
   * and with it every other request, for tens of milliseconds per create. Endpoints that say
   * nothing beyond the network mode (`docker run` without --network options: {"bridge":{}}) are
   * what endpoints() makes of a missing or empty file: losing them in a power loss changes
   * nothing, so they are replaced atomically without the fsyncs, which were most of a create's
   * wall time on a busy disk (4-20 ms here).
   */
  async recordCreate(id: string, eps: Record<string, EndpointRequest>, networkMode: string | undefined): Promise<void> {
    const mode = normalizeNetworkMode(networkMode);
    const implicit = Object.entries(eps).every(([name, ep]) => name === mode && !ep?.ipv4Address && !ep?.macAddress && !(ep?.aliases && ep.aliases.length > 0));
    if (implicit) writeFileReplace(this.file(id), JSON.stringify(eps));
    else await writeFileAtomicAsync(this.file(id), JSON.stringify(eps));
  }

  private sandboxRequest(rec: ContainerRecord): SandboxRequest {
    const hc = rec.hostConfig;
    return {
      containerID: rec.id,
      containerName: rec.name,
      hostname: rec.config.Hostname,
      ...(rec.config.Domainname ? { domainname: rec.config.Domainname } : {}),
      networkMode: normalizeNetworkMode(hc.NetworkMode),
      networks: this.endpoints(rec.id),
      ports: portRequests(hc, rec.config.ExposedPorts),
      dns: hc.Dns ?? [],
      dnsSearch: hc.DnsSearch ?? [],
      dnsOptions: hc.DnsOptions ?? [],
      extraHosts: hc.ExtraHosts ?? [],
    };
  }

  /**
   * Gives a starting container its network: a sandbox from the network service (a netns with
   * its interfaces, addresses, published ports and DNS entries) with its /etc/hosts and
   * /etc/resolv.conf (hostFiles; without them the caller writes loopback-only ones). Files are
   * written before the container exists, so atomic replacement is fine here. On failure nothing
   * is left.
   */
  async start(rec: ContainerRecord, peers: PeerLookup): Promise<StartNetworking> {
    const mode = normalizeNetworkMode(rec.hostConfig.NetworkMode);
    const hostsPath = this.paths.hostsPath(rec.id);
    const resolvPath = this.paths.resolvConfPath(rec.id);
    if (isContainerMode(mode)) {
      const peer = peers(mode.slice('container:'.length));
      if (peer.id === rec.id) throw invalidParameter('cannot join own network namespace');
      if ((peer.state.Status !== 'running' && peer.state.Status !== 'paused') || peer.state.Pid <= 0) throw conflict(`cannot join network namespace of a non running container: ${peer.id}`);
      // The peer's files, as docker shares them: same names, same resolver.
      for (const [from, to] of [[this.paths.hostsPath(peer.id), hostsPath], [this.paths.resolvConfPath(peer.id), resolvPath]]) {
        writeRegeneratedFile(to, fs.readFileSync(from));
      }
      return { namespace: { path: `/proc/${peer.state.Pid}/ns/net` }, ready: Promise.resolve(), hostFiles: true };
    }
    if (mode === 'none' || this.net.get(mode).driver === 'null') {
      // A private namespace: the OCI runtime creates it and brings lo up; nothing to tear down.
      return { namespace: 'private', ready: Promise.resolve(), hostFiles: false };
    }
    // A sandbox left by a crash between exit and clean-up would make setUp refuse.
    await this.net.tearDown(rec.id);
    let info: SandboxInfo;
    let plumbed: Promise<void>;
    try {
      const req = this.sandboxRequest(rec);
      req.extraHosts = [...this.withHostGateway(req.extraHosts), ...this.linkHosts(rec, peers)];
      ({ info, plumbed } = await this.net.setUpDeferred(req));
    } catch (err) {
      throw dockerSetupError(err, rec);
    }
    const ready = plumbed.catch((err: unknown) => {
      throw dockerSetupError(err, rec);
    });
    ready.catch(() => {});
    try {
      // Regenerated at every start from the sandbox: atomic, but no fsync needed.
      writeRegeneratedFile(hostsPath, info.hosts);
      writeRegeneratedFile(resolvPath, info.resolvConf);
    } catch (err) {
      await ready.catch(() => {});
      await this.stop(rec.id);
      throw err;
    }
    for (const [name, ep] of Object.entries(info.networks)) this.emitNetwork('connect', ep.NetworkID, name, rec.id);
    return { namespace: info.netnsPath === null ? 'host' : { path: info.netnsPath }, ready, hostFiles: true };
  }

  /**
   * `--add-host name:host-gateway` (docker's special value, as in host.docker.internal:host-gateway)
   * maps to the host's address on the default bridge, dockerd's default host-gateway-ip.
   */
  private withHostGateway(extraHosts: string[]): string[] {
    if (!extraHosts.some((h) => h.endsWith(':host-gateway') || h.endsWith('=host-gateway'))) return extraHosts;
    const gw = this.networkRef('bridge')?.pools[0]?.gateway;
    if (!gw) throw invalidParameter('unable to derive the IP value for host-gateway');
    return extraHosts.map((h) => h.replace(/([:=])host-gateway$/, `$1${gw}`));
  }

  /**
   * Legacy links (HostConfig.Links, "name:alias", as `--link` and compose's links: send them):
   * /etc/hosts entries for the alias, the name and the short ID of the target's address on a
   * network both containers are on, as docker writes them on the default bridge (on user
   * networks dockerd's DNS answers the alias for the linking container; the entry gives the
   * same answer). A target that is gone or not running is skipped.
   */
  private linkHosts(rec: ContainerRecord, peers: PeerLookup): string[] {
    const links = (rec.hostConfig as { Links?: string[] | null }).Links ?? [];
    if (links.length === 0) return [];
    const refs = [...Object.keys(this.endpoints(rec.id)), normalizeNetworkMode(rec.hostConfig.NetworkMode)];
    const mine = new Set(refs.map((k) => this.networkRef(k)?.id).filter((x): x is string => !!x));
    const out: string[] = [];
    for (const link of links) {
      const [rawName, rawAlias] = link.split(':');
      const name = rawName.replace(/^\//, '');
      const alias = rawAlias ? rawAlias.slice(rawAlias.lastIndexOf('/') + 1) : name;
      let target: ContainerRecord;
      try {
        target = peers(name);
      } catch {
        continue;
      }
      const eps = Object.values(this.net.sandbox(target.id)?.networks ?? {});
      const ip = eps.find((ep) => mine.has(ep.NetworkID))?.IPAddress;
      if (!ip) continue;
      for (const n of new Set([alias, target.name, target.id.slice(0, 12)])) out.push(`${n}:${ip}`);
    }
    return out;
  }

  /**
   * Undoes start (idempotent; also for containers that never got a sandbox). With background,
   * returns at once and the network service finishes the teardown on its own (tearDownLater).
   */
  async stop(id: string, opts: { background?: boolean } = {}): Promise<void> {
    const joined = this.events ? Object.entries(this.net.sandbox(id)?.networks ?? {}) : [];
    if (opts.background) {
      this.net.tearDownLater(id);
      for (const [name, ep] of joined) this.emitNetwork('disconnect', ep.NetworkID, name, id);
      return;
    }
    try {
      await this.net.tearDown(id);
    } catch (err) {
      this.log.warn('tearing down container networking failed', { id, error: (err as Error).message });
    }
    for (const [name, ep] of joined) this.emitNetwork('disconnect', ep.NetworkID, name, id);
  }

  /** After a daemon restart: sandboxes of containers that no longer run are torn down. */
  reconcile(runningIDs: string[]): Promise<void> {
    return this.net.reconcile(new Set(runningIDs));
  }

  private networkRef(ref: string): NetworkRecord | undefined {
    try {
      return this.net.get(ref);
    } catch (err) {
      if (isKind(err, 'NotFound')) return undefined;
      throw err;
    }
  }

  /** docker's NetworkSettings for inspect. */
  settings(rec: ContainerRecord): Record<string, unknown> {
    const info = this.net.sandbox(rec.id);
    const mode = normalizeNetworkMode(rec.hostConfig.NetworkMode);
    let networks: Record<string, EndpointSettings> = {};
    let ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
    if (info) {
      networks = info.networks;
      ports = { ...info.ports };
      for (const k of Object.keys(rec.config.ExposedPorts ?? {})) {
        const key = k.includes('/') ? k : `${k}/tcp`;
        if (!(key in ports)) ports[key] = null;
      }
    } else if (!isContainerMode(mode)) {
      // Not running: the networks it will join, without addresses, as docker shows them.
      const eps = this.endpoints(rec.id);
      const primary = this.networkRef(mode);
      if (primary) networks[primary.name] = emptyEndpoint(primary.id, eps[primary.name] ?? eps[primary.id] ?? {});
      for (const [name, ep] of Object.entries(eps)) {
        const n = this.networkRef(name);
        if (n && !(n.name in networks)) networks[n.name] = emptyEndpoint(n.id, ep);
      }
    }
    const bridge = networks.bridge && info?.mode === 'bridge' ? networks.bridge : undefined;
    const sandboxKey = info?.netnsPath ?? '';
    return {
      Bridge: '',
      SandboxID: info ? createHash('sha256').update(`sandbox:${rec.id}`).digest('hex') : '',
      SandboxKey: sandboxKey,
      Ports: ports,
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      // The default bridge's endpoint, at the top level, for clients of old API versions.
      EndpointID: bridge?.EndpointID ?? '',
      Gateway: bridge?.Gateway ?? '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: bridge?.IPAddress ?? '',
      IPPrefixLen: bridge?.IPPrefixLen ?? 0,
      IPv6Gateway: '',
      MacAddress: bridge?.MacAddress ?? '',
      Networks: networks,
    };
  }

  /** GET /containers/json: Ports and NetworkSettings.Networks. */
  summary(rec: ContainerRecord): { Ports: object[]; Networks: Record<string, EndpointSettings> } {
    const s = this.settings(rec);
    const out: object[] = [];
    for (const [key, list] of Object.entries(s.Ports as Record<string, { HostIp: string; HostPort: string }[] | null>)) {
      const [port, type] = key.split('/');
      if (!list || list.length === 0) out.push({ PrivatePort: Number(port), Type: type });
      else for (const b of list) out.push({ IP: b.HostIp, PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: type });
    }
    return { Ports: out, Networks: s.Networks as Record<string, EndpointSettings> };
  }

  /**
   * The container's /etc/hosts and /etc/resolv.conf after a connect or disconnect. They are
   * bind-mounted into the running container, so they are rewritten in place (a rename would
   * leave the container looking at the old file).
   */
  refreshFiles(id: string): void {
    const info = this.net.sandbox(id);
    if (!info) return;
    fs.writeFileSync(this.paths.hostsPath(id), info.hosts);
    fs.writeFileSync(this.paths.resolvConfPath(id), info.resolvConf);
  }

  /** docker network connect, for a container that runs (running) or not. */
  async connect(rec: ContainerRecord, running: boolean, n: NetworkRecord, req: EndpointRequest): Promise<void> {
    const mode = normalizeNetworkMode(rec.hostConfig.NetworkMode);
    if (n.driver !== 'bridge') throw forbidden('container cannot be disconnected from host network or connected to host network');
    if (isContainerMode(mode) || this.networkRef(mode)?.driver !== 'bridge') {
      throw forbidden('container sharing network namespace with another container or host cannot be connected to any other network');
    }
    if (req.ipv4Address && n.isDefaultBridge) throw invalidParameter('user specified IP address is supported on user defined networks only');
    if (req.aliases && n.isDefaultBridge) throw invalidParameter('network-scoped aliases are supported only for containers in user defined networks');
    const eps = this.endpoints(rec.id);
    if (running && this.net.sandbox(rec.id)?.networks[n.name] !== undefined) throw forbidden(`endpoint with name ${rec.name} already exists in network ${n.name}`);
    // Like docker, connecting a stopped container to a network whose endpoint it already has is a
    // no-op. Its primary network without a recorded endpoint (never configured, or dropped by a
    // disconnect) takes the new request: docker-compose disconnects and reconnects a created
    // container's network to set its aliases.
    if (!running && Object.keys(eps).some((k) => this.networkRef(k)?.id === n.id)) return;
    if (running) {
      await this.net.connectSandbox(rec.id, n.id, req);
      this.refreshFiles(rec.id);
      this.emitNetwork('connect', n.id, n.name, rec.id);
    }
    this.saveEndpoints(rec.id, { ...eps, [n.name]: req });
  }

  /** docker network disconnect. */
  async disconnect(rec: ContainerRecord, running: boolean, n: NetworkRecord): Promise<void> {
    const mode = normalizeNetworkMode(rec.hostConfig.NetworkMode);
    if (n.driver !== 'bridge') throw forbidden('container cannot be disconnected from host network or connected to host network');
    const eps = this.endpoints(rec.id);
    const key = Object.keys(eps).find((k) => this.networkRef(k)?.id === n.id);
    const isPrimary = this.networkRef(mode)?.id === n.id;
    if (running) {
      if (!this.net.sandbox(rec.id)?.networks[n.name]) throw forbidden(`container ${rec.id} is not connected to network ${n.name}`);
      await this.net.disconnectSandbox(rec.id, n.id);
      this.refreshFiles(rec.id);
      this.emitNetwork('disconnect', n.id, n.name, rec.id);
    } else if (key === undefined && !isPrimary) {
      throw forbidden(`container ${rec.id} is not connected to network ${n.name}`);
    }
    if (key !== undefined) {
      const next = { ...eps };
      delete next[key];
      this.saveEndpoints(rec.id, next);
    }
  }
}

/** The /networks routes' view of containers: connect, disconnect, names. */
export interface ContainerRegistry {
  /** Resolves a reference (ID, name, prefix); throws 404. */
  record(ref: string): ContainerRecord;
  /** Runs fn holding the container's lock, with whether it runs now. */
  withContainer<T>(ref: string, fn: (rec: ContainerRecord, running: boolean) => Promise<T>): Promise<T>;
}

/** The registry over the container service: its lookup and its per-container lock. */
export function containerRegistry(svc: Pick<ContainerService, 'get' | 'record'>): ContainerRegistry {
  return {
    record: (ref) => svc.record(ref),
    withContainer: (ref, fn) => {
      const l = svc.get(ref);
      return l.lock(() => fn(l.rec, l.rec.state.Status === 'running' || l.rec.state.Status === 'paused'));
    },
  };
}

export class ContainerNetworkingBackend implements ContainerNetworking {
  constructor(
    private readonly containers: ContainerRegistry,
    private readonly networks: ContainerNetworks,
  ) {}

  async connectContainer(containerRef: string, network: NetworkRecord, req: EndpointRequest): Promise<void> {
    await this.containers.withContainer(containerRef, (rec, running) => this.networks.connect(rec, running, network, req));
  }

  async disconnectContainer(containerRef: string, network: NetworkRecord, force: boolean): Promise<void> {
    void force;
    await this.containers.withContainer(containerRef, (rec, running) => this.networks.disconnect(rec, running, network));
  }

  containerName(containerID: string): string | undefined {
    try {
      return this.containers.record(containerID).name;
    } catch (err) {
      if (isKind(err, 'NotFound')) return undefined;
      throw err;
    }
  }
}
