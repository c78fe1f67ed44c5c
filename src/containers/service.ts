// The container service: the backend of /containers/* and /exec/*. It owns the lifecycle
// (create, start, stop, kill, pause, restart policies, removal), keeps each container's record in
// the ContainerStore, gets its root filesystem from the snapshotter and runs it through the OCI
// runtime layer (conmon + crun/runc). Containers outlive berthd: at start-up every record is
// matched with what the runtime finds (recover), and exits that happened meanwhile are applied.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BerthError, conflict, invalidParameter, isKind, notFound, systemError } from '../common/errors';
import { contentSize, mkdirp } from '../common/fsutil';
import type { Logger } from '../common/logger';
import type { ImageService } from '../images/service';
import type { Snapshotter } from '../snapshots/types';
import { initLayerKey } from '../snapshots/overlay';
import { mountAll, unmountAll, unmountAllAsync } from '../snapshots/mount';
import type { ConmonRuntime, ExitStatus } from '../runtime/runtime';
import { hostNofileLimit } from '../runtime/runtime';
import { cgroupPids } from '../runtime/cgroups';
import type { AttachStream } from '../runtime/attach';
import { ALL_CAPABILITIES, computeCapabilities, generateExecProcess, generateSpec, SpecError, type OciMount, type OciProcess } from '../runtime/spec';
import { seccompForContainer, type OciSeccomp } from '../security/seccomp';
import type { IdentityMapping } from '../security/userns';
import { appArmorProfileFor, DEFAULT_APPARMOR_PROFILE, ensureDefaultProfileLoaded } from '../security/apparmor';
import type { StatsTarget } from '../stats/stream';
import type { RuntimeConfig } from '../daemon/config';
import { checkAction, transition, type ContainerState } from './state';
import { ZERO_TIME, type ContainerConfig, type ContainerPaths, type ContainerRecord, type ContainerStore, type HostConfig, type RestartPolicy } from './store';
import { generateName, normalizeName } from './names';
import { resolveUser } from './rootfs';
import { writeHostFiles, writeRegeneratedFile } from './hostfiles';
import { boundingCapabilities, hostDevices, capLastCap } from './host';
import { rfc3339Nano } from './format';
import { parseSecurityOpts, validateResources } from './options';
import { oomKillCount } from './oom';
import type { ContainerMounts, MountPoint } from './mounts';
import { HealthMonitor } from '../health/monitor';
import { execProbes } from '../health/exec';
import { ProbeLauncher, type ProbeRun } from '../runtime/probe';
import { SECCOMP_BPF_ANNOTATION, SeccompBpfCache } from '../runtime/seccomp-cache';
import { mergeHealthConfig, validateHealthConfig } from '../health/config';
import { applyLiveResources, mergeUpdate, type UpdateRequest } from './update';
import { cgroupParentOf, devicesOf, dropUnsupported, groupAddGids, rlimitsOf, specResourcesOf, sysctlsOf, validateLimits } from './limits';
import { normalizeNetworkMode, type ContainerNetworks, type StartNetworking } from './networking';
import { DEFAULT_LOG_DRIVER, resolveLogConfig, type LogConfig } from '../logs/config';
import { LogRotation } from '../logs/rotate';

/** Where the init binary is bind-mounted in containers started with --init. */
export const INIT_PATH = '/sbin/docker-init';
export const DEFAULT_INIT_BINARY = '/usr/bin/catatonit';
const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** The read-only "init" layer under each container's writable layer holds these mount points, so
 * that they never show up in `docker diff` or a commit. */
const INIT_LAYER_FILES = ['/etc/hostname', '/etc/hosts', '/etc/resolv.conf', INIT_PATH, '/.dockerenv'];
const INIT_LAYER_DIRS = ['/proc', '/sys', '/dev', '/dev/pts', '/dev/shm', '/etc'];
const RESTART_BACKOFF_START_MS = 100;
const RESTART_BACKOFF_MAX_MS = 60_000;
const RESTART_RESET_AFTER_MS = 10_000;

export interface ContainerServiceOptions {
  paths: ContainerPaths;
  store: ContainerStore;
  images: ImageService;
  snapshotter: Snapshotter;
  runtime: ConmonRuntime;
  runtimes: Record<string, RuntimeConfig>;
  defaultRuntime: string;
  /** Parent cgroup of all containers (daemon's --cgroup-parent), default "berth". */
  cgroupParent: string;
  initBinary?: string;
  log: Logger;
  /** Where container events go (the daemon's EventsService). */
  events?: ContainerEventSink;
  /** Volumes, binds and tmpfs mounts (src/containers/mounts.ts); without it, only host binds. */
  mounts?: ContainerMounts;
  /** Container networking (sandboxes through the network service); without it, loopback only. */
  network?: ContainerNetworks;
  /** --userns-remap: containers get a user namespace with this mapping (unless --userns=host). */
  userns?: IdentityMapping;
  /** AppArmor where the host has it: the default profile's directory (it is reloaded if unloaded). */
  appArmor?: { profileDir: string };
  /** The daemon's log driver and options (--log-driver, --log-opt); default json-file. */
  logDefaults?: LogConfig;
}

/** The part of the events service the container service publishes to. */
export interface ContainerEventSink {
  container(action: string, id: string, attrs: Record<string, string>): unknown;
}

export interface CreateRequest extends Partial<ContainerConfig> {
  HostConfig?: Partial<HostConfig>;
  NetworkingConfig?: unknown;
}

type Waiter = (r: { StatusCode: number; Error: null | { Message: string } }) => void;

/** One attach client waiting for, or connected to, the container's stdio. */
export interface AttachClient {
  /** Called with the conmon attach stream once the container runs (at once if it does). */
  connect(io: AttachStream): void;
  /** The container exited before this client got connected. */
  abandon(): void;
}

/** In-memory companion of a record: locks, waiters, timers. */
class Live {
  /** Serialises operations on one container. */
  private chain: Promise<unknown> = Promise.resolve();
  nextExitWaiters: Waiter[] = [];
  notRunningWaiters: Waiter[] = [];
  removedWaiters: Waiter[] = [];
  pendingAttach = new Set<AttachClient>();
  restartTimer?: NodeJS.Timeout;
  restartDelay = 0;
  /** Bumped on every start, so that a stale exit notification is ignored. */
  generation = 0;
  private currentExit?: Promise<ExitStatus>;
  /** The current run's process is gone (its exit may not be recorded yet). */
  exitSeen = false;
  /** Resolves when the current run exits (for logs -f). */
  get exited(): Promise<ExitStatus> | undefined {
    return this.currentExit;
  }
  set exited(p: Promise<ExitStatus> | undefined) {
    this.currentExit = p;
    this.exitSeen = false;
    p?.then(() => {
      if (this.currentExit === p) this.exitSeen = true;
    }, () => {});
  }
  removing = false;
  execs = new Set<string>();

  constructor(public rec: ContainerRecord) {}

  lock<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }
}

export interface ExecRecord {
  id: string;
  containerId: string;
  cmd: string[];
  tty: boolean;
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  env: string[];
  user: string;
  workingDir: string;
  privileged: boolean;
  detachKeys: string;
  running: boolean;
  started: boolean;
  exitCode: number | null;
  pid: number;
  exited?: Promise<ExitStatus>;
  /** Settles once the runtime has the process (or failed to start it). */
  ready?: Promise<unknown>;
}

/** Milliseconds since `t0` (performance.now()), for the phase timings in debug logs. */
function msSince(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

function nowISO(): string {
  return rfc3339Nano(new Date());
}

function isActive(s: ContainerState): boolean {
  return s === 'running' || s === 'paused' || s === 'restarting';
}

/** Replaces or appends KEY=value entries (docker's ReplaceOrAppendEnvValues). */
export function mergeEnv(base: string[], overrides: string[]): string[] {
  const out = [...base];
  const key = (e: string): string => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  for (const e of overrides) {
    const i = out.findIndex((x) => key(x) === key(e));
    if (!e.includes('=')) {
      // "KEY" alone removes it (docker's behaviour for an unset value).
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}

export function validateRestartPolicy(p: Partial<RestartPolicy> | undefined, autoRemove: boolean): RestartPolicy {
  const name = (p?.Name ?? '') as RestartPolicy['Name'];
  const max = p?.MaximumRetryCount ?? 0;
  if (!['', 'no', 'always', 'unless-stopped', 'on-failure'].includes(name)) {
    throw invalidParameter(`invalid restart policy: unknown policy '${name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  }
  if (max < 0) throw invalidParameter('invalid restart policy: maximum retry count cannot be negative');
  if (max > 0 && name !== 'on-failure') throw invalidParameter(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  if (autoRemove && name !== '' && name !== 'no') throw invalidParameter(`can't create 'AutoRemove' container with restart policy`);
  return { Name: name === '' ? 'no' : name, MaximumRetryCount: max };
}

export class ContainerService {
  private readonly live = new Map<string, Live>();
  private readonly execs = new Map<string, ExecRecord>();
  private readonly o: ContainerServiceOptions;
  private closed = false;
  /** Runs the containers' health checks (State.Health). */
  readonly health: HealthMonitor;
  /** Runs the probes' execs (the runtime directly, from a sealed copy). */
  private readonly probes: ProbeLauncher;
  /** Seccomp programs crun compiled, reused for later containers with the same profile. */
  private readonly seccompBpf = new SeccompBpfCache();
  /** Rotates the logs of running containers (src/logs/rotate.ts). */
  readonly logRotation: LogRotation;

  constructor(o: ContainerServiceOptions) {
    this.o = o;
    this.logRotation = new LogRotation(o.log);
    this.health = new HealthMonitor({
      host: {
        subject: (id) => this.live.get(id)?.rec,
        persist: (ids) => this.o.store.saveStates(ids.flatMap((id) => this.live.get(id)?.rec ?? [])),
        event: (id, action) => {
          const l = this.live.get(id);
          if (l) this.emit(l.rec, action);
        },
      },
      probes: execProbes(this),
      log: o.log,
    });
    this.probes = new ProbeLauncher({ log: o.log, binaries: o.runtime.binaries });
    mkdirp(path.join(o.paths.dataRoot, 'containers'), 0o700);
    mkdirp(o.paths.execRoot, 0o700);
  }

  get log(): Logger {
    return this.o.log;
  }

  // ---- lookup ----

  /** By full ID, name (with or without "/"), or unique ID prefix, as dockerd resolves them. */
  get(ref: string): Live {
    const byId = this.live.get(ref);
    if (byId) return byId;
    const name = ref.replace(/^\//, '');
    for (const l of this.live.values()) if (l.rec.name === name) return l;
    if (/^[a-f0-9]+$/.test(ref)) {
      const hits = [...this.live.values()].filter((l) => l.rec.id.startsWith(ref));
      if (hits.length === 1) return hits[0];
      if (hits.length > 1) throw invalidParameter(`multiple IDs found with provided prefix: ${ref}`);
    }
    throw notFound(`No such container: ${ref}`);
  }

  record(ref: string): ContainerRecord {
    return this.get(ref).rec;
  }

  all(): ContainerRecord[] {
    return [...this.live.values()].map((l) => l.rec).sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
  }

  /** For the image service: which containers use an image. */
  containersUsing(imageId: string): { id: string; running: boolean }[] {
    return [...this.live.values()].filter((l) => l.rec.imageId === imageId).map((l) => ({ id: l.rec.id, running: isActive(l.rec.state.Status) }));
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    let running = 0;
    let paused = 0;
    for (const l of this.live.values()) {
      if (l.rec.state.Status === 'paused') paused++;
      else if (l.rec.state.Status === 'running' || l.rec.state.Status === 'restarting') running++;
    }
    const total = this.live.size;
    return { total, running, paused, stopped: total - running - paused };
  }

  /**
   * Waits while an exit is seen but not yet recorded (the runtime delete, unmounts and network
   * teardown take a while), so that inspect and attach never show a finished process as running:
   * dockerd records an exit under the container lock its inspect takes. Bounded, in case the
   * exit handling fails.
   */
  async settled(ref: string): Promise<void> {
    const l = this.get(ref);
    if (!l.exitSeen || !isActive(l.rec.state.Status)) return;
    await new Promise<void>((resolve) => {
      l.nextExitWaiters.push(() => resolve());
      setTimeout(resolve, 10_000).unref();
    });
  }

  exitPromise(ref: string): Promise<unknown> | undefined {
    const l = this.get(ref);
    const exited = l.exited;
    if (!isActive(l.rec.state.Status) || !exited) return undefined;
    // Settles once the exit is recorded, not when the process goes: `docker logs -f x && docker rm x`
    // must not find x still running (dockerd closes the log under the lock that records the exit).
    return new Promise((resolve) => {
      l.nextExitWaiters.push(() => resolve(undefined));
      // Exit handling that fails, or a daemon closing, never calls the waiters.
      void exited.then(() => setTimeout(resolve, 30_000).unref(), () => resolve(undefined));
    });
  }

  private save(l: Live): void {
    this.o.store.saveState(l.rec);
  }

  /**
   * Publishes a container event with dockerd's attributes: the container's labels, then the
   * action's own attributes, then image and name (which win over labels of the same key).
   */
  private emit(rec: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    if (!this.o.events) return;
    const attrs: Record<string, string> = { ...(rec.config.Labels ?? {}), ...extra };
    if (rec.config.Image) attrs.image = rec.config.Image;
    attrs.name = rec.name;
    try {
      this.o.events.container(action, rec.id, attrs);
    } catch (err) {
      this.log.warn('publishing container event failed', { id: rec.id, action, error: (err as Error).message });
    }
  }

  /**
   * HostConfig.UsernsMode: "" (the daemon's choice: remapped under --userns-remap) or "host"; and
   * dockerd's refusals of a remapped container that would share the host's namespaces.
   */
  private validateUserns(hc: Partial<HostConfig>): void {
    const mode = hc.UsernsMode ?? '';
    if (typeof mode !== 'string' || (mode !== '' && mode !== 'host')) throw invalidParameter(`--userns: invalid USER mode: ${JSON.stringify(mode)}`);
    if (!this.o.userns || mode === 'host') return;
    if (hc.Privileged === true) throw invalidParameter('privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode');
    if (hc.NetworkMode === 'host') throw invalidParameter("cannot share the host's network namespace when user namespaces are enabled");
    if (hc.PidMode === 'host') throw invalidParameter('cannot share the host PID namespace when user namespaces are enabled');
  }

  /** The mapping a container's processes run under: the daemon's, unless it asked for --userns=host. */
  private usernsOf(rec: ContainerRecord): IdentityMapping | undefined {
    return rec.hostConfig.UsernsMode === 'host' ? undefined : this.o.userns;
  }

  /**
   * Storage holds host IDs under --userns-remap (every container's, --userns=host ones too):
   * tars made from it (commit, export, cp, build steps) carry container IDs instead.
   */
  tarOwnerMap(): ((uid: number, gid: number) => { uid: number; gid: number }) | undefined {
    const map = this.o.userns;
    return map ? (uid, gid) => map.toContainer(uid, gid) : undefined;
  }

  /** The daemon's ID mapping (undefined without --userns-remap). */
  idMapping(): IdentityMapping | undefined {
    return this.o.userns;
  }

  /** The AppArmor profile a container runs under (undefined where the host has no AppArmor, as inspect's ""). */
  appArmorProfile(rec: ContainerRecord, security = parseSecurityOpts(rec.hostConfig.SecurityOpt as string[] | undefined)): string | undefined {
    return appArmorProfileFor({ requested: security.apparmor, privileged: rec.hostConfig.Privileged, supported: this.o.appArmor !== undefined });
  }

  /** appArmorProfile, with the default profile loaded again if something unloaded it. */
  private appArmorOf(rec: ContainerRecord, security: ReturnType<typeof parseSecurityOpts>): string | undefined {
    const profile = this.appArmorProfile(rec, security);
    if (profile === DEFAULT_APPARMOR_PROFILE) ensureDefaultProfileLoaded(this.o.appArmor!.profileDir);
    return profile;
  }

  /** The seccomp filter a container runs under (none when privileged or unconfined). */
  private seccompOf(hc: HostConfig, security = parseSecurityOpts(hc.SecurityOpt as string[] | undefined)): OciSeccomp | undefined {
    const caps = computeCapabilities({ privileged: hc.Privileged, capAdd: hc.CapAdd ?? [], capDrop: hc.CapDrop ?? [], capLastCap: capLastCap() });
    return seccompForContainer({ value: security.seccomp, caps, privileged: hc.Privileged });
  }

  /** Where a running container's stats are read, by full ID; undefined while it does not run or is gone. */
  statsTarget(id: string): StatsTarget | undefined {
    const l = this.live.get(id);
    if (!l) return undefined;
    const s = l.rec.state.Status;
    if ((s !== 'running' && s !== 'paused') || l.rec.state.Pid <= 0) return undefined;
    // Network figures come from the container's own network namespace, through its init pid.
    const mode = l.rec.hostConfig.NetworkMode;
    const ownNetns = mode !== 'none' && mode !== 'host' && !mode.startsWith('container:');
    return { cgroupsPath: this.cgroupsPath(l.rec.id), pid: ownNetns ? l.rec.state.Pid : 0 };
  }

  private cgroupsPath(id: string): string {
    // A container's own --cgroup-parent wins over the daemon's.
    return `/${cgroupParentOf(this.live.get(id)?.rec.hostConfig, this.o.cgroupParent)}/${id}`;
  }

  // ---- create ----

  async create(name: string | null, req: CreateRequest): Promise<{ Id: string; Warnings: string[] }> {
    // Where a create's time goes, for the debug log.
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    if (!req || typeof req !== 'object') throw invalidParameter('config cannot be empty in order to create a container');
    if (!req.Image) throw invalidParameter('No image specified');
    let wanted = name ? normalizeName(name) : '';
    const { record: image, config: imageConfig } = await this.o.images.resolve(req.Image);
    const ic = imageConfig.config ?? {};
    const hc = req.HostConfig ?? {};

    const restartPolicy = validateRestartPolicy(hc.RestartPolicy, hc.AutoRemove === true);
    const runtimeName = hc.Runtime || this.o.defaultRuntime;
    if (!this.o.runtimes[runtimeName]) throw invalidParameter(`unknown or invalid runtime name: ${runtimeName}`);
    if (hc.ShmSize !== undefined && hc.ShmSize !== null && hc.ShmSize < 0) throw invalidParameter('SHM size can not be less than 0');
    if (!this.o.mounts) for (const b of hc.Binds ?? []) parseBind(b);
    if (req.StopSignal) parseSignal(req.StopSignal);
    validateHealthConfig(req.Healthcheck);
    if (hc.Init && !fs.existsSync(this.o.initBinary ?? DEFAULT_INIT_BINARY)) {
      throw invalidParameter(`init binary ${this.o.initBinary ?? DEFAULT_INIT_BINARY} not found on the host`);
    }
    const capLast = capLastCap();
    try {
      // Validates capability names now rather than at start.
      generateExecProcess({ args: ['x'], capAdd: hc.CapAdd ?? [], capDrop: hc.CapDrop ?? [], capLastCap: capLast });
    } catch (err) {
      if (err instanceof SpecError) throw invalidParameter(err.message);
      throw err;
    }
    if (hc.SecurityOpt !== undefined && hc.SecurityOpt !== null && !Array.isArray(hc.SecurityOpt)) throw invalidParameter('SecurityOpt must be a list of strings');
    const security = parseSecurityOpts(hc.SecurityOpt as string[] | undefined);
    // A seccomp profile that cannot be used is the request's fault: refused now, not at start.
    this.seccompOf({ Privileged: hc.Privileged === true, CapAdd: hc.CapAdd ?? null, CapDrop: hc.CapDrop ?? null } as HostConfig, security);
    this.validateUserns(hc);
    const resources = { ...hc };
    validateResources(resources);
    const warnings = [...validateLimits(resources, hostNofileLimit()), ...dropUnsupported(resources)];
    const endpoints = this.o.network?.validateCreate(hc, req.NetworkingConfig, req.ExposedPorts ?? ic.ExposedPorts) ?? {};
    const logConfig = resolveLogConfig(hc.LogConfig, this.o.logDefaults ?? { Type: DEFAULT_LOG_DRIVER, Config: {} });

    // docker's merge of the request with the image's defaults.
    const userEntrypoint = req.Entrypoint ?? null;
    let entrypoint: string[] | null = userEntrypoint;
    let cmd: string[] | null = req.Cmd && req.Cmd.length > 0 ? req.Cmd : null;
    if (!userEntrypoint || userEntrypoint.length === 0) {
      if (!cmd) cmd = ic.Cmd ?? null;
      if (userEntrypoint === null) entrypoint = ic.Entrypoint ?? null;
    }
    if (entrypoint && entrypoint.length === 1 && entrypoint[0] === '') entrypoint = null;
    const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
    if (argv.length === 0) throw invalidParameter('no command specified');
    const workingDir = req.WorkingDir || ic.WorkingDir || '';
    if (workingDir && !workingDir.startsWith('/')) throw invalidParameter(`the working directory '${workingDir}' is invalid, it needs to be an absolute path`);

    const id = randomBytes(32).toString('hex');
    const config: ContainerConfig = {
      ...req,
      Hostname: req.Hostname || ic.Hostname || id.slice(0, 12),
      Domainname: req.Domainname || ic.Domainname || '',
      User: req.User || ic.User || '',
      AttachStdin: req.AttachStdin === true,
      AttachStdout: req.AttachStdout === true,
      AttachStderr: req.AttachStderr === true,
      ExposedPorts: req.ExposedPorts ?? ic.ExposedPorts,
      Tty: req.Tty === true,
      OpenStdin: req.OpenStdin === true,
      StdinOnce: req.StdinOnce === true,
      Env: mergeEnv(ic.Env ?? [], req.Env ?? []),
      Cmd: cmd,
      Image: req.Image,
      Volumes: req.Volumes ?? ic.Volumes ?? null,
      WorkingDir: workingDir,
      Entrypoint: entrypoint,
      OnBuild: null,
      Labels: { ...(ic.Labels ?? {}), ...(req.Labels ?? {}) },
      StopSignal: req.StopSignal || ic.StopSignal || undefined,
      Healthcheck: mergeHealthConfig(req.Healthcheck, ic.Healthcheck),
      ...(!req.Shell && ic.Shell ? { Shell: ic.Shell } : {}),
    };
    delete (config as Record<string, unknown>).HostConfig;
    delete (config as Record<string, unknown>).NetworkingConfig;
    if (config.StopSignal === undefined) delete config.StopSignal;
    if (config.Healthcheck === undefined) delete config.Healthcheck;
    const hostConfig: HostConfig = {
      ...resources,
      Binds: hc.Binds ?? null,
      AutoRemove: hc.AutoRemove === true,
      RestartPolicy: restartPolicy,
      Init: hc.Init ?? null,
      ShmSize: hc.ShmSize || 64 * 1024 * 1024,
      Runtime: runtimeName,
      Privileged: hc.Privileged === true,
      CapAdd: hc.CapAdd ?? null,
      CapDrop: hc.CapDrop ?? null,
      ReadonlyRootfs: hc.ReadonlyRootfs === true,
      NetworkMode: this.o.network ? normalizeNetworkMode(hc.NetworkMode) : hc.NetworkMode || 'none',
      Dns: hc.Dns ?? [],
      DnsOptions: hc.DnsOptions ?? [],
      DnsSearch: hc.DnsSearch ?? [],
      ExtraHosts: hc.ExtraHosts ?? null,
      ConsoleSize: hc.ConsoleSize ?? [0, 0],
      // The driver and options in effect (src/logs): clients such as docker-py only read logs back
      // from containers whose driver they know to be readable (json-file by default).
      LogConfig: logConfig,
    };
    const rec: ContainerRecord = {
      id,
      name: wanted,
      created: nowISO(),
      imageId: image.id,
      config,
      hostConfig,
      state: { Status: 'created', Pid: 0, ExitCode: 0, Error: '', OOMKilled: false, StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME, ManuallyStopped: false },
      restartCount: 0,
      path: argv[0],
      args: argv.slice(1),
    };

    // Storage first, the record last: a record always has its layer and its networks.json.
    phases.checked = msSince(t0);
    mkdirp(this.o.paths.dir(id), 0o700);
    // networks.json goes to disk (durably: fsyncs on the thread pool) while this thread makes the
    // layers; the record waits for both.
    const endpointsWritten = this.o.network?.recordCreate(id, endpoints, hostConfig.NetworkMode);
    endpointsWritten?.catch(() => {});
    try {
      this.prepareLayers(id, this.o.images.topChainID(image));
      phases.layers = msSince(t0);
      // Volumes are created (and the request's mounts validated against the host) with the record.
      this.o.mounts?.create(id, { Binds: hc.Binds, Mounts: hc.Mounts as never, Tmpfs: hc.Tmpfs as never, VolumesFrom: hc.VolumesFrom as never, Volumes: Object.keys({ ...(ic.Volumes ?? {}), ...(req.Volumes ?? {}) }) }, (ref) => this.get(ref).rec.id);
      phases.mounts = msSince(t0);
      await endpointsWritten;
      phases.network = msSince(t0);
      for (let attempt = 0; ; attempt++) {
        if (!wanted) rec.name = generateName(attempt);
        if (this.o.store.insert(rec)) break;
        if (wanted) {
          const other = this.o.store.idByName(wanted);
          throw conflict(`Conflict. The container name "/${wanted}" is already in use by container "${other}". You have to remove (or rename) that container to be able to reuse that name.`);
        }
        if (attempt > 20) throw systemError('could not generate a unique container name');
      }
      wanted = rec.name;
    } catch (err) {
      // The write must be over before its directory goes.
      await endpointsWritten?.catch(() => {});
      this.removeLayers(id);
      this.o.mounts?.forget(id, { removeAnonymous: true });
      fs.rmSync(this.o.paths.dir(id), { recursive: true, force: true });
      throw err;
    }
    this.live.set(id, new Live(rec));
    phases.record = msSince(t0);
    this.log.debug('container created', { id, name: rec.name, ms: phases });
    this.emit(rec, 'create');
    return { Id: id, Warnings: warnings };
  }

  /** The container's writable layer, on the image's init layer (initLayer). */
  private prepareLayers(id: string, parent: string | undefined): void {
    this.o.snapshotter.prepare(id, this.initLayer(parent));
  }

  /**
   * The init layer under an image's containers: docker's empty mount points (/etc/hosts, /proc,
   * ...), so that diff and commit do not show them. Its content depends on nothing but the layer
   * below, so it is made once per image top layer (`init-<chain ID>`) and shared by that image's
   * containers; per container it was a dozen new directories and files on every create, and on
   * a busy ext4 making inodes is most of what a create costs. The image's removal removes it
   * (ImageService.collectStorage); containers made before keep their own `<id>-init`.
   */
  private initLayer(parent: string | undefined): string {
    const key = initLayerKey(parent);
    if (this.o.snapshotter.tryStat(key)?.kind === 'committed') return key;
    const tmp = `${key}-tmp`;
    // Left by a daemon killed between prepare and commit.
    try { this.o.snapshotter.remove(tmp); } catch {}
    const mounts = this.o.snapshotter.prepare(tmp, parent);
    try {
      const dir = writableDirOf(mounts);
      for (const d of INIT_LAYER_DIRS) mkdirp(path.join(dir, d), 0o755);
      for (const f of INIT_LAYER_FILES) {
        const p = path.join(dir, f);
        mkdirp(path.dirname(p), 0o755);
        fs.writeFileSync(p, '', { mode: f === INIT_PATH ? 0o755 : 0o644 });
      }
      this.o.snapshotter.commit(key, tmp);
    } catch (err) {
      try { this.o.snapshotter.remove(tmp); } catch {}
      throw err;
    }
    return key;
  }

  /** background: the files go on the thread pool after the records (see Snapshotter.remove). */
  private removeLayers(id: string, opts: { background?: boolean } = {}): void {
    for (const key of [id, `${id}-init`, `${id}-init-tmp`]) {
      try {
        this.o.snapshotter.remove(key, opts);
      } catch (err) {
        if (!isKind(err, 'NotFound')) throw err;
      }
    }
  }

  // ---- start ----

  async start(ref: string, opts: { checkpoint?: string } = {}): Promise<void> {
    void opts;
    const l = this.get(ref);
    await l.lock(async () => {
      checkAction('start', l.rec.state.Status, l.rec);
      if (l.restartTimer) {
        clearTimeout(l.restartTimer);
        l.restartTimer = undefined;
      }
      l.rec.restartCount = 0;
      l.rec.state.ManuallyStopped = false;
      try {
        await this.startLocked(l);
      } catch (err) {
        // As dockerd: a --rm container that cannot start is removed (clients wait for that).
        if (l.rec.hostConfig.AutoRemove) setImmediate(() => void this.remove(l.rec.id, { force: true }).catch(() => {}));
        throw err;
      }
    });
  }

  /** Mounts, writes the bundle, creates and starts the container in the runtime. Caller holds the lock. */
  private async startLocked(l: Live): Promise<void> {
    const { rec } = l;
    const { paths } = this.o;
    const id = rec.id;
    const bundle = paths.bundle(id);
    const rootfs = paths.rootfs(id);
    const rt = this.o.runtimes[rec.hostConfig.Runtime] ?? this.o.runtimes[this.o.defaultRuntime];
    const cgroupsPath = this.cgroupsPath(id);
    let created = false;
    let net: StartNetworking | undefined;
    // Where a start's time goes, for the debug log (bench/containers.ts measures the whole).
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    try {
      mkdirp(rootfs, 0o755);
      unmountAll(rootfs);
      // A --rm container's writable layer is thrown away with it: volatile spares the sync of
      // the whole file system that unmounting an overlay otherwise costs.
      mountAll(this.o.snapshotter.mounts(id), rootfs, {
        volatile: rec.hostConfig.AutoRemove === true,
        onDiscard: (upper) => this.log.warn('discarded a volatile writable layer mounted before a reboot', { id, upper }),
      });
      const hostname = rec.config.Hostname;
      phases.mount = msSince(t0);
      // The network sandbox (and the hosts/resolv.conf that go with it) before the spec names its netns.
      net = this.o.network ? await this.o.network.start(rec, (ref) => this.record(ref)) : undefined;
      // Loopback-only hosts and resolv.conf where the network wrote none (no sandbox): writing
      // them first and replacing them made two files more per start.
      writeHostFiles(
        { hostname: paths.hostnamePath(id), hosts: paths.hostsPath(id), resolvConf: paths.resolvConfPath(id) },
        { hostname, extraHosts: rec.hostConfig.ExtraHosts ?? [], dns: rec.hostConfig.Dns ?? [], dnsSearch: rec.hostConfig.DnsSearch ?? [], dnsOptions: rec.hostConfig.DnsOptions ?? [] },
        { hostnameOnly: net?.hostFiles === true },
      );
      phases.network = msSince(t0);
      if (this.o.userns) {
        // Root inside may edit its /etc/hosts, resolv.conf and hostname (docker lets it).
        const rootPair = this.o.userns.rootPair();
        for (const f of [paths.hostnamePath(id), paths.hostsPath(id), paths.resolvConfPath(id)]) fs.chownSync(f, rootPair.uid, rootPair.gid);
      }
      const userns = this.usernsOf(rec);
      const user = resolveUser(rootfs, rec.config.User);
      const security = parseSecurityOpts(rec.hostConfig.SecurityOpt as string[] | undefined);
      const spec = generateSpec({
        args: rec.hostConfig.Init ? [INIT_PATH, '--', rec.path, ...rec.args] : [rec.path, ...rec.args],
        env: this.containerEnv(rec, user.home),
        cwd: rec.config.WorkingDir || '/',
        user: { uid: user.uid, gid: user.gid, additionalGids: [...new Set([...user.additionalGids, ...groupAddGids(rootfs, rec.hostConfig)])] },
        hostname,
        domainname: rec.config.Domainname || undefined,
        tty: rec.config.Tty,
        consoleSize: rec.hostConfig.ConsoleSize && rec.hostConfig.ConsoleSize[0] > 0 ? { height: rec.hostConfig.ConsoleSize[0], width: rec.hostConfig.ConsoleSize[1] } : undefined,
        rootfs,
        readonlyRootfs: rec.hostConfig.ReadonlyRootfs,
        mounts: this.mountsFor(rec),
        // As dockerd: the runtime gets HostConfig.Annotations (docker run --annotation), never
        // the labels — crun acts on run.oci.* annotations, and labels are only metadata.
        annotations: (rec.hostConfig.Annotations as Record<string, string> | null | undefined) ?? undefined,
        hostNofile: hostNofileLimit(),
        cgroupsPath,
        capAdd: rec.hostConfig.CapAdd ?? [],
        capDrop: rec.hostConfig.CapDrop ?? [],
        privileged: rec.hostConfig.Privileged,
        hostDevices: rec.hostConfig.Privileged ? hostDevices() : undefined,
        devices: devicesOf(rec.hostConfig),
        rlimits: rlimitsOf(rec.hostConfig),
        sysctl: sysctlsOf(rec.hostConfig),
        shmSize: rec.hostConfig.ShmSize,
        capLastCap: capLastCap(),
        noNewPrivileges: security.noNewPrivileges,
        seccomp: this.seccompOf(rec.hostConfig, security),
        userns: userns ? { uidMappings: userns.uids, gidMappings: userns.gids } : undefined,
        apparmorProfile: this.appArmorOf(rec, security),
        resources: specResourcesOf(rec.hostConfig),
        ...(net ? { namespaces: { network: net.namespace } } : {}),
      });
      if (rec.hostConfig.Privileged) clampCapabilities(spec.process);
      const seccompKey = this.seccompBpf.key(rt.path, spec);
      const seccompProgram = seccompKey ? this.seccompBpf.get(seccompKey) : undefined;
      if (seccompProgram) spec.annotations = { ...spec.annotations, [SECCOMP_BPF_ANNOTATION]: seccompProgram };
      writeRegeneratedFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
      // A runtime record left from an earlier run (a crash between exit and clean-up) goes first.
      if (this.o.runtime.has(id)) await this.o.runtime.delete(id, { force: true }).catch(() => {});
      const logOpts = this.logRotation.beforeStart(paths.logPath(id), rec.hostConfig.LogConfig);
      phases.spec = msSince(t0);
      const { pid } = await this.o.runtime.create(id, bundle, {
        runtimePath: rt.path,
        runtimeArgs: rt.runtimeArgs,
        tty: rec.config.Tty,
        openStdin: rec.config.OpenStdin,
        stdinOnce: rec.config.StdinOnce,
        logPath: paths.logPath(id),
        logNone: logOpts.none,
        logSizeMax: logOpts.logSizeMax,
        name: rec.name,
        cgroupsPath,
      });
      created = true;
      if (seccompKey && !seccompProgram) this.seccompBpf.learn(seccompKey, this.o.runtime.runtimeStateFile(id, 'seccomp.bpf'));
      this.logRotation.watch(id, paths.logPath(id), rec.hostConfig.LogConfig);
      phases.create = msSince(t0);
      // netavark has been plumbing the namespace while the runtime created the container; the
      // process must not run before its interfaces are there.
      await net?.ready;
      phases.plumbed = msSince(t0);
      // Attach clients that were waiting get connected before the process runs: no output lost.
      for (const c of [...l.pendingAttach]) {
        l.pendingAttach.delete(c);
        try {
          c.connect(await this.o.runtime.attach(id));
        } catch (err) {
          this.log.warn('attach failed', { id, error: (err as Error).message });
          c.abandon();
        }
      }
      const generation = ++l.generation;
      l.exited = this.o.runtime.onExit(id);
      void l.exited.then((exit) => this.onExit(l, generation, exit));
      await this.o.runtime.start(id);
      rec.state = { ...rec.state, Status: transition(rec.state.Status, 'running', rec), Pid: pid, ExitCode: 0, Error: '', OOMKilled: false, StartedAt: nowISO() };
      this.health.containerStarted(id);
      this.save(l);
      phases.started = msSince(t0);
      this.log.debug('container started', { id, pid, ms: phases });
      this.emit(rec, 'start');
    } catch (err) {
      l.generation++;
      await this.logRotation.unwatch(id);
      // Let netavark finish (or fail and undo itself) before the sandbox is torn down.
      await net?.ready.catch(() => {});
      if (created) await this.o.runtime.delete(id, { force: true }).catch(() => {});
      await this.cleanupRun(id);
      await this.o.network?.stop(id);
      const msg = err instanceof BerthError ? err.message : (err as Error).message;
      rec.state.Error = msg;
      rec.state.ExitCode = /not found|no such file/i.test(msg) ? 127 : /permission denied/i.test(msg) ? 126 : 128;
      this.save(l);
      for (const c of [...l.pendingAttach]) {
        l.pendingAttach.delete(c);
        c.abandon();
      }
      if (err instanceof SpecError) throw invalidParameter(err.message);
      throw dockerRuntimeError(err);
    }
  }

  /** The process environment: docker's defaults, then the container's Env. */
  private containerEnv(rec: ContainerRecord, home: string): string[] {
    const base = [DEFAULT_PATH_ENV, `HOSTNAME=${rec.config.Hostname}`];
    if (rec.config.Tty) base.push('TERM=xterm');
    let env = mergeEnv(base, rec.config.Env);
    if (!env.some((e) => e.startsWith('HOME='))) env = [...env, `HOME=${home}`];
    return env;
  }

  private mountsFor(rec: ContainerRecord): OciMount[] {
    const { paths } = this.o;
    const mounts: OciMount[] = [
      { destination: '/etc/resolv.conf', type: 'bind', source: paths.resolvConfPath(rec.id), options: ['rbind', 'rprivate'] },
      { destination: '/etc/hostname', type: 'bind', source: paths.hostnamePath(rec.id), options: ['rbind', 'rprivate'] },
      { destination: '/etc/hosts', type: 'bind', source: paths.hostsPath(rec.id), options: ['rbind', 'rprivate'] },
    ];
    if (rec.hostConfig.Init) {
      mounts.push({ destination: INIT_PATH, type: 'bind', source: this.o.initBinary ?? DEFAULT_INIT_BINARY, options: ['bind', 'ro', 'nosuid', 'nodev'] });
    }
    if (this.o.mounts) {
      mounts.push(...this.o.mounts.ociMounts(rec.id, paths.rootfs(rec.id)));
      return mounts;
    }
    for (const b of rec.hostConfig.Binds ?? []) {
      const m = parseBind(b);
      mounts.push({ destination: m.destination, type: 'bind', source: m.source, options: ['rbind', m.readonly ? 'ro' : 'rw', 'rprivate'] });
    }
    return mounts;
  }

  /** Unmounts the root filesystem and removes the bundle (the runtime record is gone already). */
  private async cleanupRun(id: string): Promise<void> {
    this.o.mounts?.release(id);
    const bundle = this.o.paths.bundle(id);
    const rootfs = this.o.paths.rootfs(id);
    // Done already (the exit's clean-up, before an auto-removal): the rootfs is inside the bundle.
    if (!fs.existsSync(bundle)) return;
    try {
      await unmountAllAsync(rootfs);
    } catch (err) {
      this.log.warn('cannot unmount container rootfs', { id, error: (err as Error).message });
      return;
    }
    // rmdir, never a recursive removal, of the mount point: if anything were still mounted
    // there, a recursive removal would reach into the container's files.
    try {
      fs.rmdirSync(rootfs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn('container rootfs mount point is not empty; keeping the bundle', { id, error: (err as Error).message });
        return;
      }
    }
    await fs.promises.rm(bundle, { recursive: true, force: true });
  }

  // ---- exits, restart policies ----

  private onExit(l: Live, generation: number, exit: ExitStatus): void {
    if (this.closed) return;
    void l.lock(async () => {
      if (generation !== l.generation || !this.live.has(l.rec.id)) return;
      await this.applyExit(l, exit);
    }).catch((err) => this.log.error('handling container exit failed', { id: l.rec.id, error: (err as Error).message }));
  }

  /** Records an exit, cleans the run up, and applies the restart policy or AutoRemove. Caller holds the lock. */
  private async applyExit(l: Live, exit: ExitStatus): Promise<void> {
    const { rec } = l;
    const id = rec.id;
    l.generation++;
    // The OOM counter lives in the cgroup, which the runtime's delete removes: read it first.
    const oomKilled = oomKillCount(this.cgroupsPath(id)) > 0;
    await this.logRotation.unwatch(id);
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    // The runtime's delete (a process) and the unmount (a thread) at once: neither needs the
    // other, since the container's init is gone, and with it (its own PID namespace) the rest.
    await Promise.all([
      this.o.runtime.delete(id, { force: true }).catch((err) => {
        if (!isKind(err, 'NotFound')) this.log.warn('runtime delete failed', { id, error: (err as Error).message });
      }).then(() => (phases.runtimeDelete = msSince(t0))),
      this.cleanupRun(id).then(() => (phases.unmount = msSince(t0))),
    ]);
    // A --rm container is removed next, with a client waiting for that: its network teardown
    // (netavark, most of an exit's cost) finishes in the background. AutoRemove excludes
    // restart policies, so nothing starts it again meanwhile (and a start would wait for it).
    await this.o.network?.stop(id, { background: rec.hostConfig.AutoRemove === true });
    phases.network = msSince(t0);
    for (const execId of l.execs) {
      const e = this.execs.get(execId);
      if (e && e.running) {
        e.running = false;
        e.exitCode ??= 137;
      }
    }
    const startedAt = Date.parse(rec.state.StartedAt);
    const ranMs = exit.exitedAt.getTime() - (Number.isNaN(startedAt) ? exit.exitedAt.getTime() : startedAt);
    const restart = !l.removing && this.shouldRestart(rec, exit.exitCode);
    this.health.containerStopped(id);
    rec.state = {
      ...rec.state,
      Status: transition(rec.state.Status, restart ? 'restarting' : 'exited', rec),
      Pid: 0,
      ExitCode: exit.exitCode,
      OOMKilled: oomKilled,
      FinishedAt: rfc3339Nano(exit.exitedAt),
    };
    this.save(l);
    this.log.debug('container exited', { id, exitCode: exit.exitCode, restart, oomKilled, ms: phases });
    if (oomKilled) this.emit(rec, 'oom');
    this.emit(rec, 'die', { exitCode: String(exit.exitCode), execDuration: String(Math.max(0, Math.floor(ranMs / 1000))) });
    const result = { StatusCode: exit.exitCode, Error: null };
    for (const w of l.nextExitWaiters.splice(0)) w(result);
    if (!restart) for (const w of l.notRunningWaiters.splice(0)) w(result);
    for (const c of [...l.pendingAttach]) {
      l.pendingAttach.delete(c);
      c.abandon();
    }
    if (restart) {
      // docker's back-off: 100 ms, doubling per restart, reset once a run lasted 10 s.
      if (ranMs >= RESTART_RESET_AFTER_MS) l.restartDelay = 0;
      l.restartDelay = l.restartDelay === 0 ? RESTART_BACKOFF_START_MS : Math.min(l.restartDelay * 2, RESTART_BACKOFF_MAX_MS);
      l.restartTimer = setTimeout(() => {
        l.restartTimer = undefined;
        void l.lock(async () => {
          if (this.closed || rec.state.Status !== 'restarting' || l.removing) return;
          rec.restartCount++;
          try {
            await this.startLocked(l);
          } catch (err) {
            this.log.warn('restarting container failed', { id, error: (err as Error).message });
            rec.state.Status = transition(rec.state.Status, 'exited', rec);
            this.save(l);
            for (const w of l.notRunningWaiters.splice(0)) w({ StatusCode: rec.state.ExitCode, Error: null });
          }
        });
      }, l.restartDelay);
      return;
    }
    if (rec.hostConfig.AutoRemove && !l.removing) {
      // Outside this lock: removal takes it itself.
      setImmediate(() => {
        this.remove(id, { force: true, volumes: true, auto: true }).catch((err) => this.log.warn('auto-remove failed', { id, error: (err as Error).message }));
      });
    }
  }

  private shouldRestart(rec: ContainerRecord, exitCode: number): boolean {
    if (this.closed || rec.state.ManuallyStopped) return false;
    const p = rec.hostConfig.RestartPolicy;
    switch (p.Name) {
      case 'always':
      case 'unless-stopped':
        return true;
      case 'on-failure':
        return exitCode !== 0 && (p.MaximumRetryCount === 0 || rec.restartCount < p.MaximumRetryCount);
      default:
        return false;
    }
  }

  // ---- stop, kill, restart, pause ----

  /** Waits for the current run to end; false on timeout. */
  private async waitExit(l: Live, ms: number): Promise<boolean> {
    if (!isActive(l.rec.state.Status) || l.rec.state.Status === 'restarting') return true;
    const p = new Promise<void>((resolve) => {
      l.notRunningWaiters.push(() => resolve());
      l.nextExitWaiters.push(() => resolve());
    });
    if (ms < 0) {
      await p;
      return true;
    }
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
    clearTimeout(timer);
    return ok;
  }

  /** docker stop: StopSignal, then SIGKILL after the timeout. Returns false when already stopped (304). */
  async stop(ref: string, opts: { signal?: string; timeout?: number } = {}): Promise<boolean> {
    const l = this.get(ref);
    const proceed = await l.lock(async () => {
      const s = l.rec.state.Status;
      checkAction('stop', s, l.rec);
      l.rec.state.ManuallyStopped = true;
      this.save(l);
      if (s === 'restarting') {
        if (l.restartTimer) clearTimeout(l.restartTimer);
        l.restartTimer = undefined;
        l.rec.state.Status = transition(s, 'exited', l.rec);
        this.save(l);
        for (const w of l.notRunningWaiters.splice(0)) w({ StatusCode: l.rec.state.ExitCode, Error: null });
        return false;
      }
      if (s !== 'running' && s !== 'paused') return null;
      const signal = parseSignal(opts.signal || l.rec.config.StopSignal || 'SIGTERM');
      await this.o.runtime.kill(l.rec.id, signal).then(
        () => this.emit(l.rec, 'kill', { signal: String(signal) }),
        (err) => this.log.debug('stop signal failed', { error: (err as Error).message }),
      );
      if (s === 'paused') await this.o.runtime.resume(l.rec.id).catch(() => {});
      return true;
    });
    if (proceed === null) return false;
    if (proceed === false) {
      this.emit(l.rec, 'stop');
      return true;
    }
    const timeoutS = opts.timeout ?? l.rec.config.StopTimeout ?? 10;
    if (!(await this.waitExit(l, timeoutS < 0 ? -1 : timeoutS * 1000))) {
      await this.o.runtime.kill(l.rec.id, 'SIGKILL').then(() => this.emit(l.rec, 'kill', { signal: '9' }), () => {});
      await this.waitExit(l, -1);
    }
    this.emit(l.rec, 'stop');
    return true;
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    const l = this.get(ref);
    const sig = parseSignal(signal === '' ? 'SIGKILL' : signal);
    await l.lock(async () => {
      checkAction('kill', l.rec.state.Status, l.rec);
      await this.o.runtime.kill(l.rec.id, sig);
      this.emit(l.rec, 'kill', { signal: String(sig) });
      if (l.rec.state.Status === 'paused' && sig === 9) await this.o.runtime.resume(l.rec.id).catch(() => {});
    });
    // docker kill returns once a SIGKILL'd container is gone.
    if (sig === 9) await this.waitExit(l, 10_000);
  }

  async restart(ref: string, opts: { signal?: string; timeout?: number } = {}): Promise<void> {
    const l = this.get(ref);
    checkAction('restart', l.rec.state.Status, l.rec);
    await this.stop(ref, opts);
    await l.lock(async () => {
      if (l.rec.state.Status === 'running') return; // a restart policy was quicker
      if (l.restartTimer) clearTimeout(l.restartTimer);
      l.restartTimer = undefined;
      if (l.rec.state.Status === 'restarting') l.rec.state.Status = transition('restarting', 'exited', l.rec);
      l.rec.state.ManuallyStopped = false;
      checkAction('start', l.rec.state.Status, l.rec);
      await this.startLocked(l);
    });
    this.emit(l.rec, 'restart');
  }

  async pause(ref: string): Promise<void> {
    const l = this.get(ref);
    await l.lock(async () => {
      checkAction('pause', l.rec.state.Status, l.rec);
      await this.o.runtime.pause(l.rec.id);
      l.rec.state.Status = transition(l.rec.state.Status, 'paused', l.rec);
      this.health.containerStopped(l.rec.id);
      this.save(l);
      this.emit(l.rec, 'pause');
    });
  }

  async unpause(ref: string): Promise<void> {
    const l = this.get(ref);
    await l.lock(async () => {
      checkAction('unpause', l.rec.state.Status, l.rec);
      await this.o.runtime.resume(l.rec.id);
      l.rec.state.Status = transition(l.rec.state.Status, 'running', l.rec);
      this.health.containerResumed(l.rec.id);
      this.save(l);
      this.emit(l.rec, 'unpause');
    });
  }

  async rename(ref: string, newName: string): Promise<void> {
    const l = this.get(ref);
    if (!newName) throw invalidParameter('Neither old nor new names may be empty');
    const name = normalizeName(newName);
    if (name === l.rec.name) throw invalidParameter('Renaming a container with the same name as its current name');
    await l.lock(() => {
      if (!this.o.store.rename(l.rec.id, name)) {
        const other = this.o.store.idByName(name);
        throw conflict(`Conflict. The container name "/${name}" is already in use by container "${other}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
      const oldName = l.rec.name;
      l.rec.name = name;
      // dockerd's oldName keeps the leading slash (its stored form); name has none.
      this.emit(l.rec, 'rename', { oldName: `/${oldName}` });
    });
  }

  resize(ref: string, height: number, width: number): void {
    const l = this.get(ref);
    checkAction('resize', l.rec.state.Status, l.rec);
    try {
      this.o.runtime.resize(l.rec.id, height, width);
    } catch (err) {
      if (err instanceof RangeError) throw invalidParameter(err.message);
      throw err;
    }
    this.emit(l.rec, 'resize', { height: String(height), width: String(width) });
  }

  // ---- update ----

  /** docker update: new limits (written into a running container's cgroups) and restart policy. */
  async update(ref: string, req: UpdateRequest): Promise<{ Warnings: string[] }> {
    const l = this.get(ref);
    return l.lock(() => {
      const rec = l.rec;
      if (rec.state.Status === 'removing' || rec.state.Status === 'dead' || l.removing) throw conflict(`Cannot update container ${rec.id}: container is marked for removal and cannot be "update"`);
      const next = mergeUpdate(rec.hostConfig, req);
      next.RestartPolicy = validateRestartPolicy(next.RestartPolicy, false);
      const warnings = dropUnsupported(next);
      const live = rec.state.Status === 'running' || rec.state.Status === 'paused';
      if (live) warnings.push(...applyLiveResources(this.cgroupsPath(rec.id), rec.hostConfig, next));
      rec.hostConfig = next;
      this.o.store.saveHostConfig(rec);
      this.emit(rec, 'update');
      return { Warnings: warnings };
    });
  }

  // ---- wait ----

  /** Registers a waiter now (so that an exit right after is not missed) and returns its result. */
  wait(ref: string, condition: string): Promise<{ StatusCode: number; Error: null | { Message: string } }> {
    const l = this.get(ref);
    if (!['', 'not-running', 'next-exit', 'removed'].includes(condition)) throw invalidParameter(`invalid condition: "${condition}"`);
    const s = l.rec.state.Status;
    return new Promise((resolve) => {
      if (condition === 'removed') l.removedWaiters.push(resolve);
      else if (condition === 'next-exit') l.nextExitWaiters.push(resolve);
      else if (!isActive(s)) resolve({ StatusCode: l.rec.state.ExitCode, Error: null });
      else l.notRunningWaiters.push(resolve);
    });
  }

  // ---- removal ----

  async remove(ref: string, opts: { force: boolean; volumes?: boolean; /** AutoRemove after an exit */ auto?: boolean }): Promise<void> {
    const l = this.get(ref);
    checkAction('remove', l.rec.state.Status, l.rec, { force: opts.force });
    if (l.removing) throw conflict(`removal of container ${l.rec.id} is already in progress`);
    l.removing = true;
    try {
      const wasActive = await l.lock(async () => {
        checkAction('remove', l.rec.state.Status, l.rec, { force: opts.force });
        if (l.restartTimer) clearTimeout(l.restartTimer);
        l.restartTimer = undefined;
        const s = l.rec.state.Status;
        if (s === 'running' || s === 'paused') {
          await this.o.runtime.kill(l.rec.id, 'SIGKILL').then(() => this.emit(l.rec, 'kill', { signal: '9' }), () => {});
          if (s === 'paused') await this.o.runtime.resume(l.rec.id).catch(() => {});
          return true;
        }
        if (s === 'restarting') l.rec.state.Status = transition(s, 'exited', l.rec);
        return false;
      });
      if (wasActive && !(await this.waitExit(l, 15_000))) {
        // conmon did not report in time: force the runtime record away; the exit is applied here.
        await l.lock(async () => {
          if (isActive(l.rec.state.Status)) await this.applyExit(l, { exitCode: 137, exitedAt: new Date() });
        });
      }
      await l.lock(async () => {
        const t0 = performance.now();
        const phases: Record<string, number> = {};
        const from = l.rec.state.Status;
        l.rec.state.Status = transition(from, 'removing', l.rec);
        this.save(l);
        try {
          await this.o.runtime.delete(l.rec.id, { force: true }).catch((err) => {
            if (!isKind(err, 'NotFound')) throw err;
          });
          phases.runtimeDelete = msSince(t0);
          await this.cleanupRun(l.rec.id);
          phases.unmount = msSince(t0);
          // An explicit removal returns with the networking gone; the auto-removal of a --rm
          // container leaves its teardown to the background (see applyExit).
          await this.o.network?.stop(l.rec.id, { background: opts.auto === true });
          phases.network = msSince(t0);
          // The writable layer's files (as many as the container wrote) go on the thread pool
          // after the removal is answered; the main thread waited for them before.
          this.removeLayers(l.rec.id, { background: true });
          phases.layers = msSince(t0);
          // On the thread pool: on a busy disk, removing files waits on the journal.
          await fs.promises.rm(this.o.paths.dir(l.rec.id), { recursive: true, force: true });
          phases.files = msSince(t0);
          this.o.store.delete(l.rec.id);
          this.o.mounts?.forget(l.rec.id, { removeAnonymous: opts.volumes === true });
          phases.records = msSince(t0);
        } catch (err) {
          l.rec.state.Status = transition('removing', 'dead', l.rec);
          l.rec.state.Error = (err as Error).message;
          this.save(l);
          throw systemError(`unable to remove container ${l.rec.id}: ${(err as Error).message}`, err);
        }
        this.live.delete(l.rec.id);
        this.health.forget(l.rec.id);
        this.probes.forget(l.rec.id);
        for (const execId of l.execs) this.execs.delete(execId);
        const result = { StatusCode: l.rec.state.ExitCode, Error: null };
        for (const w of [...l.nextExitWaiters.splice(0), ...l.notRunningWaiters.splice(0), ...l.removedWaiters.splice(0)]) w(result);
        this.log.debug('container removed', { id: l.rec.id, ms: phases });
        this.emit(l.rec, 'destroy');
      });
    } finally {
      l.removing = false;
    }
  }

  async prune(filter: (r: ContainerRecord) => boolean): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const rec of this.all()) {
      if (isActive(rec.state.Status) || rec.state.Status === 'removing' || !filter(rec)) continue;
      const size = this.sizeRw(rec.id);
      try {
        await this.remove(rec.id, { force: false });
        deleted.push(rec.id);
        reclaimed += size;
      } catch (err) {
        this.log.warn('prune: cannot remove container', { id: rec.id, error: (err as Error).message });
      }
    }
    return { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  // ---- attach ----

  /**
   * Adds an attach client: connected at once when the container runs; otherwise connected when
   * it next starts (docker run and start -a attach before starting).
   */
  async attach(ref: string, client: AttachClient): Promise<void> {
    const l = this.get(ref);
    checkAction('attach', l.rec.state.Status, l.rec);
    this.emit(l.rec, 'attach');
    // Registered before anything waits: the client has its 101 already, and docker start -a
    // sends the start at once; a start that gets the lock before this attach must find it.
    const early = l.rec.state.Status !== 'running';
    if (early) l.pendingAttach.add(client);
    await this.settled(ref);
    await l.lock(async () => {
      // A start connected it meanwhile (or an exit gave up on it, or the client left).
      if (early && !l.pendingAttach.has(client)) return;
      if (l.rec.state.Status !== 'running') {
        l.pendingAttach.add(client);
        return;
      }
      l.pendingAttach.delete(client);
      let stream: AttachStream;
      try {
        stream = await this.o.runtime.attach(l.rec.id);
      } catch (err) {
        // conmon is gone: the process exited and the exit is not seen yet. The attach ends with
        // that run, as dockerd's does when the exit cancels it.
        this.log.debug('attach to an exiting container', { id: l.rec.id, error: (err as Error).message });
        client.abandon();
        return;
      }
      client.connect(stream);
    });
  }

  detachPending(ref: string, client: AttachClient): void {
    const l = this.live.get(ref);
    l?.pendingAttach.delete(client);
  }

  // ---- exec ----

  createExec(ref: string, req: { Cmd?: string[]; Tty?: boolean; AttachStdin?: boolean; AttachStdout?: boolean; AttachStderr?: boolean; Env?: string[]; User?: string; WorkingDir?: string; Privileged?: boolean; DetachKeys?: string }): string {
    const l = this.get(ref);
    checkAction('exec', l.rec.state.Status, l.rec);
    if (!req.Cmd || req.Cmd.length === 0) throw invalidParameter('No exec command specified');
    if (req.WorkingDir && !req.WorkingDir.startsWith('/')) throw invalidParameter(`the working directory '${req.WorkingDir}' is invalid, it needs to be an absolute path`);
    const id = randomBytes(32).toString('hex');
    this.execs.set(id, {
      id,
      containerId: l.rec.id,
      cmd: req.Cmd,
      tty: req.Tty === true,
      attachStdin: req.AttachStdin === true,
      attachStdout: req.AttachStdout === true,
      attachStderr: req.AttachStderr === true,
      env: req.Env ?? [],
      user: req.User ?? '',
      workingDir: req.WorkingDir ?? '',
      privileged: req.Privileged === true,
      detachKeys: req.DetachKeys ?? '',
      running: false,
      started: false,
      exitCode: null,
      pid: 0,
    });
    l.execs.add(id);
    this.emit(l.rec, `exec_create: ${execCommand(req.Cmd)}`, { execID: id });
    return id;
  }

  /** Drops a finished exec's record (health probes: dockerd does not keep them either). */
  forgetExec(id: string): void {
    const e = this.execs.get(id);
    if (!e) return;
    this.execs.delete(id);
    this.live.get(e.containerId)?.execs.delete(id);
  }

  getExec(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  /** The OCI process of an exec, as `docker exec` runs it: the container's user, env, cwd, caps. */
  private execProcess(rec: ContainerRecord, e: ExecRecord, tty: boolean, consoleSize?: [number, number]): OciProcess {
    const user = resolveUser(this.o.paths.rootfs(rec.id), e.user || rec.config.User);
    const proc = generateExecProcess({
      args: e.cmd,
      env: mergeEnv(this.containerEnv(rec, user.home), e.env),
      cwd: e.workingDir || rec.config.WorkingDir || '/',
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      tty,
      consoleSize: consoleSize && consoleSize[0] > 0 ? { height: consoleSize[0], width: consoleSize[1] } : undefined,
      privileged: rec.hostConfig.Privileged || e.privileged,
      capAdd: rec.hostConfig.CapAdd ?? [],
      capDrop: rec.hostConfig.CapDrop ?? [],
      capLastCap: capLastCap(),
      // An exec keeps the container's no-new-privileges, as in docker.
      noNewPrivileges: parseSecurityOpts(rec.hostConfig.SecurityOpt as string[] | undefined).noNewPrivileges,
    });
    if (rec.hostConfig.Privileged || e.privileged) clampCapabilities(proc);
    return proc;
  }

  /**
   * Starts a health probe's exec (created by createExec, no tty, no stdin): the OCI runtime's
   * exec run directly, without conmon, its process spec written once per container run
   * (src/runtime/probe.ts). Emits exec_start and exec_die as any exec does.
   */
  async startProbeExec(id: string): Promise<ProbeRun> {
    const e = this.getExec(id);
    if (e.started) throw conflict(`Error: Exec command ${id} has already run`);
    const l = this.get(e.containerId);
    checkAction('exec', l.rec.state.Status, l.rec);
    const rec = l.rec;
    const target = this.o.runtime.probeTarget(rec.id);
    // The spec depends only on the container's config and its run (the user is resolved once per run).
    const key = `${rec.state.StartedAt}\0${JSON.stringify([e.cmd, e.env, e.user, e.workingDir, e.privileged])}`;
    const file = this.probes.processFile(target, key, () => this.execProcess(rec, e, false));
    e.started = true;
    e.running = true;
    // Never throws: a runtime that cannot be run is a start error in exited.
    const run = await this.probes.run(target, file);
    e.pid = run.pid;
    this.emit(rec, `exec_start: ${execCommand(e.cmd)}`, { execID: id });
    const exited = run.exited.then((x) => {
      // Worded as a failed `docker exec` start is, which is what dockerd's probe reports.
      const startError = x.startError === undefined ? undefined : dockerRuntimeError(new Error(`OCI runtime exec failed: ${x.startError}`)).message;
      e.running = false;
      e.exitCode = startError === undefined ? x.exitCode : /executable file not found|no such file or directory/.test(startError) ? 127 : 126;
      this.emit(rec, 'exec_die', { execID: id, exitCode: String(e.exitCode) });
      return startError === undefined ? x : { ...x, startError };
    });
    return { ...run, exited };
  }

  /** Starts an exec; with attach, the stream is connected before the process runs. */
  async startExec(id: string, opts: { detach: boolean; tty?: boolean; consoleSize?: [number, number] }): Promise<{ attach?: AttachStream; exited: Promise<ExitStatus> }> {
    const e = this.getExec(id);
    if (e.running) throw conflict(`Error: Exec command ${id} is already running`);
    if (e.started) throw conflict(`Error: Exec command ${id} has already run`);
    const l = this.get(e.containerId);
    checkAction('exec', l.rec.state.Status, l.rec);
    const rec = l.rec;
    const tty = opts.tty ?? e.tty;
    const proc = this.execProcess(rec, e, tty, opts.consoleSize);
    e.started = true;
    e.running = true;
    let handle;
    try {
      const pending = this.o.runtime.exec(rec.id, proc, { tty, stdin: e.attachStdin, detach: opts.detach, execId: id });
      e.ready = pending.catch(() => {});
      handle = await pending;
    } catch (err) {
      e.running = false;
      const docker = dockerRuntimeError(err);
      e.exitCode = /executable file not found|no such file or directory/.test(docker.message) ? 127 : 126;
      throw docker;
    }
    e.pid = handle.pid;
    this.emit(rec, `exec_start: ${execCommand(e.cmd)}`, { execID: id });
    e.exited = handle.exited.then((x) => {
      e.running = false;
      e.exitCode = x.exitCode;
      try { this.o.runtime.removeExec(rec.id, id); } catch {}
      this.emit(rec, 'exec_die', { execID: id, exitCode: String(x.exitCode) });
      return x;
    });
    return { attach: handle.attach, exited: e.exited };
  }

  async resizeExec(id: string, height: number, width: number): Promise<void> {
    const e = this.getExec(id);
    // A client resizes right after its start request hijacked the connection, while the runtime
    // may still be starting the process; dockerd waits (up to 10 s) for the exec to be ready.
    if (e.running && e.ready) await e.ready;
    if (!e.running) throw conflict(`Exec ${id} is not running`);
    try {
      this.o.runtime.resizeExec(e.containerId, id, height, width);
    } catch (err) {
      if (err instanceof RangeError) throw invalidParameter(err.message);
      throw err;
    }
  }

  // ---- filesystem ----

  /** The writable layer's directory and the layers below it (for diff and commit). */
  layerDirs(ref: string): { upper: string; lowers: string[] } {
    const rec = this.record(ref);
    const mounts = this.o.snapshotter.mounts(rec.id);
    const m = mounts[mounts.length - 1];
    const opt = (k: string): string | undefined => m.options.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
    if (m.type === 'overlay') return { upper: opt('upperdir')!, lowers: (opt('lowerdir') ?? '').split(':').filter(Boolean) };
    return { upper: m.source, lowers: [] };
  }

  sizeRw(id: string): number {
    try {
      return contentSize(this.layerDirs(id).upper);
    } catch {
      return 0;
    }
  }

  /**
   * Mounts the container's merged root filesystem somewhere for reading (export); the running
   * container's own mount when it has one. release() undoes what was done.
   */
  mountForRead(ref: string): { dir: string; release: () => void } {
    const rec = this.record(ref);
    if (isActive(rec.state.Status) && rec.state.Status !== 'restarting') return { dir: this.o.paths.rootfs(rec.id), release: () => {} };
    const dir = path.join(this.o.paths.execRoot, `mnt-${rec.id.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
    mkdirp(dir, 0o700);
    try {
      mountAll(this.o.snapshotter.mounts(rec.id), dir);
    } catch (err) {
      fs.rmdirSync(dir);
      throw err;
    }
    return {
      dir,
      release: () => {
        unmountAll(dir);
        fs.rmdirSync(dir);
      },
    };
  }

  /** The container's recorded mounts (docker's Mounts in inspect; cp's view of volumes). */
  mountPoints(ref: string): { api: object[]; records: MountPoint[] } | undefined {
    const rec = this.record(ref);
    if (!this.o.mounts) return undefined;
    return { api: this.o.mounts.mountPoints(rec.id), records: this.o.mounts.records(rec.id) };
  }

  /** Pauses for the duration of fn when asked and the container runs (commit --pause). */
  async withPaused<T>(ref: string, pause: boolean, fn: () => Promise<T>): Promise<T> {
    const l = this.get(ref);
    checkAction('commit', l.rec.state.Status, l.rec);
    if (!pause || l.rec.state.Status !== 'running') return fn();
    await this.pause(ref);
    try {
      return await fn();
    } finally {
      await this.unpause(ref).catch((err) => this.log.warn('unpause after commit failed', { error: (err as Error).message }));
    }
  }

  /**
   * Runs fn with a running container's processes frozen, without a state change or events. cp
   * resolves paths inside the container's root and then operates on them; a live process could
   * swap a checked directory for a symlink in between and make cp touch the host
   * (CVE-2018-15664). dockerd chroots its tar helpers into the container's root; berth freezes
   * the container instead, as podman's cp does. The container's lock is held, so a pause, stop
   * or kill waits for the copy.
   */
  async withFrozen<T>(ref: string, fn: () => Promise<T>): Promise<T> {
    const l = this.get(ref);
    return l.lock(async () => {
      if (l.rec.state.Status !== 'running') return fn();
      await this.o.runtime.pause(l.rec.id);
      try {
        return await fn();
      } finally {
        await this.o.runtime.resume(l.rec.id).catch((err) => this.log.warn('thawing after cp failed', { id: l.rec.id, error: (err as Error).message }));
      }
    });
  }

  /** The container's processes' pids (its cgroup's). */
  pids(ref: string): number[] {
    const l = this.get(ref);
    if (l.rec.state.Status !== 'running' && l.rec.state.Status !== 'paused') throw conflict(`Container ${l.rec.id} is not running`);
    return cgroupPidsOf(this.cgroupsPath(l.rec.id), l.rec.state.Pid);
  }

  // ---- daemon start-up and shutdown ----

  /**
   * Loads every record and matches it with the runtime: still running (keep watching), exited
   * while berthd was away (apply the exit: ExitCode, FinishedAt, AutoRemove, restart policy), or
   * half-done (a removal or a restart back-off interrupted by the crash).
   */
  async recover(): Promise<void> {
    for (const rec of this.o.store.list()) this.live.set(rec.id, new Live(rec));
    await Promise.all([...this.live.values()].map((l) => l.lock(() => this.recoverOne(l)).catch((err) => this.log.error('recovering container failed', { id: l.rec.id, error: (err as Error).message }))));
    for (const l of [...this.live.values()]) {
      if (l.rec.state.Status === 'removing' || (l.rec.hostConfig.AutoRemove && l.rec.state.Status === 'exited')) {
        await this.remove(l.rec.id, { force: true }).catch((err) => this.log.warn('removing container at start-up failed', { id: l.rec.id, error: (err as Error).message }));
      }
    }
  }

  private async recoverOne(l: Live): Promise<void> {
    const { rec } = l;
    const id = rec.id;
    const s = rec.state.Status;
    if (s === 'removing') {
      rec.state.Status = 'exited';
      l.removing = false;
      this.save(l);
      return;
    }
    if (s !== 'running' && s !== 'paused' && s !== 'restarting') {
      // Not running: make sure nothing of an earlier run is left mounted (crash mid-clean-up).
      if (this.o.runtime.has(id)) await this.o.runtime.delete(id, { force: true }).catch(() => {});
      await this.cleanupRun(id);
      return;
    }
    if (s === 'restarting') {
      // The back-off was interrupted: start now.
      try {
        await this.startLocked(l);
      } catch (err) {
        rec.state.Status = transition(rec.state.Status, 'exited', rec);
        rec.state.Error = (err as Error).message;
        this.save(l);
      }
      return;
    }
    let found;
    try {
      found = await this.o.runtime.recover(id);
    } catch (err) {
      if (!isKind(err, 'NotFound')) throw err;
      // The runtime knows nothing of it (its state is on tmpfs: a reboot): it is gone.
      await this.applyExit(l, { exitCode: 255, exitedAt: new Date() });
      return;
    }
    if (found.exit) {
      await this.applyExit(l, found.exit);
      return;
    }
    rec.state.Status = found.status === 'paused' ? 'paused' : 'running';
    if (found.pid) rec.state.Pid = found.pid;
    this.o.mounts?.adopt(id);
    // Rotation resumes; switches conmon made while berthd was away are settled now.
    this.logRotation.watch(id, this.o.paths.logPath(id), rec.hostConfig.LogConfig);
    // As dockerd restores a live container: its health starts over (the log is kept).
    if (rec.state.Status === 'running') this.health.containerStarted(id);
    this.save(l);
    const generation = ++l.generation;
    l.exited = this.o.runtime.onExit(id);
    void l.exited.then((exit) => this.onExit(l, generation, exit));
  }

  /** Stops watching; containers keep running (live restore). */
  close(): void {
    this.closed = true;
    this.health.close();
    this.probes.close();
    this.logRotation.close();
    for (const l of this.live.values()) {
      if (l.restartTimer) clearTimeout(l.restartTimer);
      l.restartTimer = undefined;
    }
    this.o.runtime.close();
  }
}

/**
 * The runtime's error in the words dockerd (with runc) uses, which clients act on: the docker CLI
 * exits 127 for "executable file not found" and "no such file or directory", 126 for "permission
 * denied". Such errors are the request's fault (400), as in dockerd.
 */
export function dockerRuntimeError(err: unknown): Error {
  if (!(err instanceof Error)) return new Error(String(err));
  let msg = err.message;
  const notFoundInPath = /executable file `([^`]*)` not found in \$PATH/.exec(msg);
  if (notFoundInPath) {
    msg = msg.replace(/executable file `([^`]*)` not found in \$PATH(: No such file or directory)?/, `unable to start container process: exec: "${notFoundInPath[1]}": executable file not found in $PATH`);
  }
  msg = msg.replace(/: No such file or directory/g, ': no such file or directory').replace(/: Permission denied/g, ': permission denied');
  if (msg === err.message) return err;
  if (/executable file not found|no such file or directory|permission denied/.test(msg)) return invalidParameter(msg);
  return new BerthError(err instanceof BerthError ? err.kind : 'System', msg);
}

/** An exec's command as dockerd writes it in exec_create/exec_start actions: entrypoint, a space, the args. */
function execCommand(cmd: string[]): string {
  return `${cmd[0]} ${cmd.slice(1).join(' ')}`;
}

/** "All capabilities" means all the daemon has: asking for more fails in capset(2). */
function clampCapabilities(p: OciProcess): void {
  if (!p.capabilities) return;
  const bnd = boundingCapabilities();
  const keep = (c: string): boolean => ((bnd >> BigInt(ALL_CAPABILITIES.indexOf(c))) & 1n) === 1n;
  const caps = p.capabilities;
  p.capabilities = { bounding: caps.bounding.filter(keep), effective: caps.effective.filter(keep), permitted: caps.permitted.filter(keep) };
}

/** A signal name (KILL, SIGKILL, sigkill) or number (1-64) as a number; 400 for anything else. */
export function parseSignal(sig: string): number {
  if (/^\d+$/.test(sig)) {
    const n = Number(sig);
    if (n < 1 || n > 64) throw invalidParameter(`Invalid signal: ${sig}`);
    return n;
  }
  const up = sig.toUpperCase();
  const name = (up.startsWith('SIG') ? up : `SIG${up}`) as keyof typeof os.constants.signals;
  const n = os.constants.signals[name];
  if (typeof n !== 'number') throw invalidParameter(`Invalid signal: ${sig}`);
  return n;
}

function writableDirOf(mounts: { type: string; source: string; options: string[] }[]): string {
  const m = mounts[mounts.length - 1];
  if (m.type === 'bind') return m.source;
  const upper = m.options.find((o) => o.startsWith('upperdir='));
  if (!upper) throw new Error('no writable directory in snapshot mounts');
  return upper.slice('upperdir='.length);
}

/** "/host:/ctr[:ro|rw]" binds; named volumes wait for the volume service. */
export function parseBind(spec: string): { source: string; destination: string; readonly: boolean } {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) throw invalidParameter(`invalid volume specification: '${spec}'`);
  const [source, destination, mode = 'rw'] = parts;
  if (!source.startsWith('/')) throw new BerthError('NotImplemented', `invalid volume specification: '${spec}': named volumes are not supported yet`);
  if (!destination.startsWith('/')) throw invalidParameter(`invalid volume specification: '${spec}': invalid mount config: destination must be an absolute path`);
  const modes = mode.split(',');
  if (!modes.every((m) => ['ro', 'rw', 'z', 'Z', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(m))) throw invalidParameter(`invalid mode: ${mode}`);
  return { source, destination, readonly: modes.includes('ro') };
}

/** Pids of a cgroup (any hierarchy); falls back to the init pid when the cgroup is unreadable. */
function cgroupPidsOf(cgroupPath: string, initPid: number): number[] {
  const pids = cgroupPids(cgroupPath);
  return pids.length > 0 ? pids.sort((a, b) => a - b) : initPid > 0 ? [initPid] : [];
}
