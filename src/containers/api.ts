// The Engine API's view of containers: docker's JSON shapes (ContainerSummary, ContainerInspect,
// exec inspect), list filters, and the streaming endpoints (logs, attach, exec start, export).
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import { conflict, invalidParameter, isKind, notImplemented } from '../common/errors';
import { boolParam, type Filters } from '../api/httputil';
import type { ContainerBackend } from '../api/routes/containers';
import type { ExecBackend } from '../api/routes/exec';
import type { RequestContext } from '../api/router';
import type { ImageService } from '../images/service';
import { parseTimestamp } from '../images/service';
import { parseReference, validateTag, type Reference } from '../images/reference';
import { applyChanges } from '../images/changes';
import type { ImageConfig, ImageRunConfig } from '../images/types';
import { detailsPrefix, logAttributes } from '../logs/config';
import type { AttachStream } from '../runtime/attach';
import { ALL_STATES, checkAction } from './state';
import type { ContainerPaths, ContainerRecord } from './store';
import type { ContainerService, CreateRequest } from './service';
import type { ContainerNetworks } from './networking';
import { statusString } from './format';
import { HEALTH_FILTER_VALUES, healthFilterValue } from '../health/state';
import { DEFAULT_DETACH_KEYS, DetachMatcher, hijack, OutputBatcher, parseDetachKeys, STDERR, STDOUT, type HijackedConn } from './streams';
import { processTable } from './top';
import { lazyModule } from '../common/lazy';

// What only some requests need (diff, export, commit, cp, logs, stats) is loaded on first use.
const fsChangesModule = lazyModule(() => require('../archive/changes') as typeof import('../archive/changes'));
const tarCreate = lazyModule(() => require('../archive/create') as typeof import('../archive/create'));
const logReader = lazyModule(() => require('../logs/reader') as typeof import('../logs/reader'));
const containerCopy = lazyModule(() => require('./archive') as typeof import('./archive'));
const statsStream = lazyModule(() => require('../stats/stream') as typeof import('../stats/stream'));

const RAW_STREAM = 'application/vnd.docker.raw-stream';
const MUX_STREAM = 'application/vnd.docker.multiplexed-stream';

function unixSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}

function command(rec: ContainerRecord): string {
  return [rec.path, ...rec.args].join(' ');
}

/** Seconds (fractional) from docker's since/until query values; undefined for 0 or absent. */
function timeParam(v: string | null): number | undefined {
  if (v === null || v === '' || v === '0') return undefined;
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  return parseTimestamp(v) / 1000;
}

/**
 * Every HostConfig field dockerd's inspect shows even when the create request left it out (Go
 * marshals the whole struct; only the omitempty ones may be absent), with the value an omitted
 * field decodes to. docker-py sends only what the caller set, and scripts index attrs["HostConfig"]
 * for any of these.
 */
const HOST_CONFIG_DEFAULTS: Record<string, unknown> = {
  Binds: null, ContainerIDFile: '', LogConfig: { Type: 'json-file', Config: {} }, NetworkMode: '', PortBindings: {},
  RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, AutoRemove: false, VolumeDriver: '', VolumesFrom: null, ConsoleSize: [0, 0],
  CapAdd: null, CapDrop: null, CgroupnsMode: '', Dns: [], DnsOptions: [], DnsSearch: [], ExtraHosts: null, GroupAdd: null,
  IpcMode: '', Cgroup: '', Links: null, OomScoreAdj: 0, PidMode: '', Privileged: false, PublishAllPorts: false, ReadonlyRootfs: false,
  SecurityOpt: null, UTSMode: '', UsernsMode: '', ShmSize: 0, Isolation: '',
  CpuShares: 0, Memory: 0, NanoCpus: 0, CgroupParent: '', BlkioWeight: 0, BlkioWeightDevice: null, BlkioDeviceReadBps: null,
  BlkioDeviceWriteBps: null, BlkioDeviceReadIOps: null, BlkioDeviceWriteIOps: null, CpuPeriod: 0, CpuQuota: 0, CpuRealtimePeriod: 0,
  CpuRealtimeRuntime: 0, CpusetCpus: '', CpusetMems: '', Devices: null, DeviceCgroupRules: null, DeviceRequests: null,
  MemoryReservation: 0, MemorySwap: 0, MemorySwappiness: null, OomKillDisable: null, PidsLimit: null, Ulimits: null,
  CpuCount: 0, CpuPercent: 0, IOMaximumIOps: 0, IOMaximumBandwidth: 0, MaskedPaths: null, ReadonlyPaths: null,
};

function withHostConfigDefaults(hc: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...hc };
  for (const [k, v] of Object.entries(HOST_CONFIG_DEFAULTS)) if (out[k] === undefined) out[k] = v;
  // Init is omitempty in dockerd: absent, not null, when unset.
  if (out.Init === null) delete out.Init;
  return out;
}

/**
 * The ports a publish or expose filter names, as "port/proto": dockerd takes "80", "80/udp" and
 * ranges "8000-8080/tcp", and refuses a host address.
 */
function portFilter(f: Filters, key: 'publish' | 'expose'): Set<string> | undefined {
  const values = f.get(key);
  if (!values) return undefined;
  const out = new Set<string>();
  for (const v of values) {
    if (v.includes(':')) throw invalidParameter(`filter for '${key}' should not contain ':': ${v}`);
    const slash = v.indexOf('/');
    const proto = (slash < 0 ? 'tcp' : v.slice(slash + 1)).toLowerCase() || 'tcp';
    const m = /^(\d+)(?:-(\d+))?$/.exec(slash < 0 ? v : v.slice(0, slash));
    const start = m ? Number(m[1]) : NaN;
    const end = m?.[2] !== undefined ? Number(m[2]) : start;
    if (!m || start > 65535 || end > 65535 || end < start) throw invalidParameter(`error while looking up for ${key} ${v}: invalid port range`);
    for (let p = start; p <= end; p++) out.add(`${p}/${proto}`);
  }
  return out;
}

export class ContainerApi implements ContainerBackend, ExecBackend {
  constructor(
    private readonly svc: ContainerService,
    private readonly images: ImageService,
    private readonly paths: ContainerPaths,
    private readonly networks?: ContainerNetworks,
  ) {}

  async create(name: string | null, body: Record<string, unknown>): Promise<object> {
    checkCreateBody(body);
    return this.svc.create(name, body as CreateRequest);
  }

  // ---- list and inspect ----

  private summary(rec: ContainerRecord, size: boolean): Record<string, unknown> {
    const net = this.networks?.summary(rec);
    const out: Record<string, unknown> = {
      Id: rec.id,
      Names: [`/${rec.name}`],
      Image: rec.config.Image,
      ImageID: rec.imageId,
      Command: command(rec),
      Created: unixSeconds(rec.created),
      Ports: net?.Ports ?? [],
      Labels: rec.config.Labels ?? {},
      State: rec.state.Status,
      Status: statusString(rec.state),
      HostConfig: { NetworkMode: rec.hostConfig.NetworkMode },
      NetworkSettings: { Networks: net?.Networks ?? {} },
      Mounts: this.mounts(rec),
    };
    if (size) {
      const rw = this.svc.sizeRw(rec.id);
      out.SizeRw = rw;
      out.SizeRootFs = rw + (this.images.store.get(rec.imageId)?.size ?? 0);
    }
    return out;
  }

  private mounts(rec: ContainerRecord): object[] {
    const recorded = this.svc.mountPoints(rec.id);
    if (recorded) return recorded.api;
    return (rec.hostConfig.Binds ?? []).map((b) => {
      const [source, destination, mode = ''] = b.split(':');
      return { Type: 'bind', Source: source, Destination: destination, Mode: mode, RW: !mode.split(',').includes('ro'), Propagation: 'rprivate' };
    });
  }

  /** Image IDs a container's image must descend from (the ancestor filter). */
  private imageLineage(imageId: string): string[] {
    const out: string[] = [];
    for (let id: string | undefined = imageId; id && !out.includes(id); id = this.images.store.get(id)?.parent || undefined) out.push(id);
    return out;
  }

  async list(opts: { all: boolean; limit: number; size: boolean; filters: Filters }): Promise<object[]> {
    const f = opts.filters;
    let all = opts.all || opts.limit > 0;
    for (const s of f.get('status') ?? []) {
      if (!ALL_STATES.includes(s as never)) throw invalidParameter(`invalid filter 'status=${s}'`);
      all = true;
    }
    const exited = (f.get('exited') ?? []).map((v) => {
      if (!/^-?\d+$/.test(v)) throw invalidParameter(`invalid filter 'exited=${v}'`);
      return Number(v);
    });
    if (exited.length > 0) all = true;
    const ancestors = (f.get('ancestor') ?? []).flatMap((a) => {
      try {
        return [this.images.lookup(a).record.id];
      } catch (err) {
        if (isKind(err, 'NotFound')) return [`unresolved:${a}`];
        throw err;
      }
    });
    const createdOf = (ref: string): string => this.svc.record(ref).created;
    const before = f.get('before')?.map(createdOf);
    const since = f.get('since')?.map(createdOf);
    const names = (f.get('name') ?? []).map((n) => {
      try {
        return new RegExp(n);
      } catch {
        throw invalidParameter(`invalid filter 'name=${n}'`);
      }
    });
    const publish = portFilter(f, 'publish');
    const expose = portFilter(f, 'expose');
    const isTask = f.get('is-task');
    const health = f.get('health');
    for (const h of health ?? []) {
      if (!HEALTH_FILTER_VALUES.includes(h as never)) throw invalidParameter(`Unrecognised filter value for health: ${h}`);
    }

    let recs = this.svc.all().filter((rec) => {
      const st = rec.state.Status;
      if (!all && st !== 'running' && st !== 'paused' && st !== 'restarting') return false;
      const ids = f.get('id');
      if (ids && !ids.some((p) => rec.id.startsWith(p))) return false;
      if (names.length && !names.some((re) => re.test(`/${rec.name}`))) return false;
      if (!matchLabels(rec.config.Labels ?? {}, f.get('label') ?? [], true)) return false;
      const statuses = f.get('status');
      if (statuses && !statuses.includes(st)) return false;
      if (exited.length && (st !== 'exited' || !exited.includes(rec.state.ExitCode))) return false;
      if (ancestors.length) {
        const lineage = this.imageLineage(rec.imageId);
        if (!ancestors.some((a) => lineage.includes(a)) && !(f.get('ancestor') ?? []).includes(rec.config.Image)) return false;
      }
      if (before && !before.every((c) => rec.created < c)) return false;
      if (since && !since.every((c) => rec.created > c)) return false;
      if (isTask && isTask.includes('true')) return false;
      if (health && !health.includes(healthFilterValue(rec.state.Health))) return false;
      return this.matchesResourceFilters(rec, f, publish, expose);
    });
    if (opts.limit > 0) recs = recs.slice(0, opts.limit);
    return recs.map((r) => this.summary(r, opts.size));
  }

  /** The volume, network, publish and expose filters: they look at what the summary shows. */
  private matchesResourceFilters(rec: ContainerRecord, f: Filters, publish: Set<string> | undefined, expose: Set<string> | undefined): boolean {
    const volumes = f.get('volume');
    const networks = f.get('network');
    if (!volumes && !networks && !publish && !expose) return true;
    if (volumes) {
      // dockerd: a volume's name or a bind's source, or the mount's destination.
      const mounts = this.mounts(rec) as { Name?: string; Source?: string; Destination?: string }[];
      if (!volumes.some((v) => mounts.some((m) => m.Destination === v || (m.Name ? m.Name === v : m.Source === v)))) return false;
    }
    const net = publish || expose || networks ? this.networks?.summary(rec) : undefined;
    if (networks) {
      const attached = net?.Networks ?? {};
      if (!networks.some((v) => v in attached || Object.values(attached).some((ep) => typeof ep?.NetworkID === 'string' && ep.NetworkID !== '' && ep.NetworkID.startsWith(v)))) return false;
    }
    if (publish || expose) {
      const ports = (net?.Ports ?? []) as { PrivatePort: number; PublicPort?: number; Type: string }[];
      if (!ports.some((p) => (publish?.has(`${p.PublicPort ?? 0}/${p.Type}`) ?? false) || (expose?.has(`${p.PrivatePort}/${p.Type}`) ?? false))) return false;
    }
    return true;
  }

  async inspect(ref: string, size: boolean): Promise<object> {
    await this.svc.settled(ref);
    const rec = this.svc.record(ref);
    const s = rec.state;
    let graph: Record<string, string> = {};
    try {
      const { upper, lowers } = this.svc.layerDirs(rec.id);
      graph = { LowerDir: lowers.join(':'), MergedDir: this.paths.rootfs(rec.id), UpperDir: upper, WorkDir: upper.replace(/\/fs$/, '/work') };
    } catch {}
    const out: Record<string, unknown> = {
      Id: rec.id,
      Created: rec.created,
      Path: rec.path,
      Args: rec.args,
      State: {
        Status: s.Status,
        Running: s.Status === 'running' || s.Status === 'paused' || s.Status === 'restarting',
        Paused: s.Status === 'paused',
        Restarting: s.Status === 'restarting',
        OOMKilled: s.OOMKilled,
        Dead: s.Status === 'dead',
        Pid: s.Pid,
        ExitCode: s.ExitCode,
        Error: s.Error,
        StartedAt: s.StartedAt,
        FinishedAt: s.FinishedAt,
        ...(s.Health ? { Health: s.Health } : {}),
      },
      Image: rec.imageId,
      ResolvConfPath: this.paths.resolvConfPath(rec.id),
      HostnamePath: this.paths.hostnamePath(rec.id),
      HostsPath: this.paths.hostsPath(rec.id),
      // As dockerd: no path for a driver that writes no file.
      LogPath: rec.hostConfig.LogConfig?.Type === 'none' ? '' : this.paths.logPath(rec.id),
      Name: `/${rec.name}`,
      RestartCount: rec.restartCount,
      Driver: 'overlay2',
      Platform: 'linux',
      MountLabel: '',
      ProcessLabel: '',
      AppArmorProfile: this.svc.appArmorProfile(rec) ?? '',
      ExecIDs: null,
      HostConfig: withHostConfigDefaults(rec.hostConfig as unknown as Record<string, unknown>),
      GraphDriver: { Data: graph, Name: 'overlay2' },
      Mounts: this.mounts(rec),
      Config: rec.config,
      NetworkSettings: this.networks?.settings(rec) ?? {
        Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
        SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
        IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '', Networks: {},
      },
    };
    if (size) {
      const rw = this.svc.sizeRw(rec.id);
      out.SizeRw = rw;
      out.SizeRootFs = rw + (this.images.store.get(rec.imageId)?.size ?? 0);
    }
    return out;
  }

  // ---- lifecycle ----

  async start(ref: string): Promise<boolean> {
    try {
      await this.svc.start(ref);
      return true;
    } catch (err) {
      if (isKind(err, 'NotModified')) return false;
      throw err;
    }
  }

  stop(ref: string, opts: { signal?: string; timeout?: number }): Promise<boolean> {
    return this.svc.stop(ref, opts);
  }

  restart(ref: string, opts: { signal?: string; timeout?: number }): Promise<void> {
    return this.svc.restart(ref, opts);
  }

  kill(ref: string, signal: string): Promise<void> {
    return this.svc.kill(ref, signal);
  }

  pause(ref: string): Promise<void> {
    return this.svc.pause(ref);
  }

  unpause(ref: string): Promise<void> {
    return this.svc.unpause(ref);
  }

  rename(ref: string, name: string): Promise<void> {
    return this.svc.rename(ref, name);
  }

  remove(ref: string, opts: { force: boolean; volumes: boolean; link: boolean }): Promise<void> {
    if (opts.link) throw invalidParameter('Conflict, cannot remove the default link name of the container');
    return this.svc.remove(ref, { force: opts.force, volumes: opts.volumes });
  }

  resize(ref: string, h: number, w: number): void {
    this.svc.resize(ref, h, w);
  }

  update(ref: string, body: Record<string, unknown>): Promise<object> {
    return this.svc.update(ref, body);
  }

  wait(ref: string, condition: string): Promise<object> {
    return this.svc.wait(ref, condition);
  }

  async prune(filters: Filters): Promise<object> {
    const until = filters.get('until')?.map(parseTimestamp);
    return this.svc.prune((rec) => {
      if (until && !until.every((t) => Date.parse(rec.created) < t)) return false;
      if (!matchLabels(rec.config.Labels ?? {}, filters.get('label') ?? [], true)) return false;
      if (!matchLabels(rec.config.Labels ?? {}, filters.get('label!') ?? [], false)) return false;
      return true;
    });
  }

  // ---- processes, filesystem ----

  async top(ref: string, psArgs: string): Promise<object> {
    const pids = this.svc.pids(ref);
    if (psArgs === '' || psArgs === '-ef') return processTable(pids);
    // Custom columns: ps itself, once per request, filtered to the container's pids.
    const out = await new Promise<string>((resolve, reject) => {
      execFile('ps', psArgs.split(/\s+/).filter(Boolean), { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) reject(invalidParameter(`ps: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout));
      });
    });
    const lines = out.split('\n').filter((l) => l.trim() !== '');
    const titles = (lines.shift() ?? '').trim().split(/\s+/);
    const pidIdx = titles.indexOf('PID');
    if (pidIdx < 0) throw invalidParameter(`Couldn't find PID field in ps output`);
    const processes: string[][] = [];
    for (const l of lines) {
      const fields = l.trim().split(/\s+/);
      if (!pids.includes(Number(fields[pidIdx]))) continue;
      processes.push([...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')]);
    }
    return { Titles: titles, Processes: processes };
  }

  /** GET /containers/{id}/stats: streamed every second, or one object (one-shot: at once). */
  async stats(ctx: RequestContext, ref: string): Promise<void> {
    const req = statsStream().parseStatsQuery(ctx.query);
    const rec = this.svc.record(ref);
    await statsStream().writeStats(ctx.res, () => this.svc.statsTarget(rec.id), req, { name: `/${rec.name}`, id: rec.id, machineMemory: os.totalmem() });
  }

  async changes(ref: string): Promise<object[]> {
    const { upper, lowers } = this.svc.layerDirs(ref);
    return fsChangesModule().changes(upper, lowers);
  }

  /** docker cp: HEAD (stat), GET (tar of a path) and PUT (extract into a path) of /archive. */
  async archive(ctx: RequestContext, ref: string, method: 'HEAD' | 'GET' | 'PUT'): Promise<void> {
    await this.svc.withFrozen(ref, () => containerCopy().containerArchive(this.svc, ctx, ref, method));
  }

  async export(ctx: RequestContext, ref: string): Promise<void> {
    const { dir, release } = this.svc.mountForRead(ref);
    try {
      ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      await containerCopy().writeWholeOrCut(ctx.res, tarCreate().tarDirectoryProducer(dir, { mapOwner: this.svc.tarOwnerMap() }));
    } finally {
      release();
    }
  }

  async commit(ref: string, o: { repo?: string; tag?: string; comment?: string; author?: string; pause: boolean; changes: string[]; config?: Record<string, unknown> }): Promise<object> {
    const rec = this.svc.record(ref);
    let tagRef: Reference | undefined;
    if (o.repo) {
      tagRef = parseReference(o.repo);
      if (tagRef.digest) throw invalidParameter('cannot commit to a digest reference');
      if (o.tag) {
        if (tagRef.tag) throw invalidParameter('invalid reference format');
        tagRef.tag = validateTag(o.tag);
      }
      tagRef.tag ??= 'latest';
    } else if (o.tag) {
      throw invalidParameter('tag is specified without repository');
    }
    const base = await this.images.resolve(rec.imageId);
    const runConfig = applyChanges(mergeRunConfig(containerRunConfig(rec), o.config as ImageRunConfig | undefined), o.changes);
    return this.svc.withPaused(ref, o.pause, async () => {
      const { upper } = this.svc.layerDirs(rec.id);
      const layer = await this.images.ingestLayerStream(tarCreate().overlayUpperToLayer(upper, { mapOwner: this.svc.tarOwnerMap() }));
      const descs = [...base.record.layers, { ...layer, chainID: '' }].map((l) => ({ digest: l.blobDigest, diffID: l.diffID, mediaType: l.mediaType, size: l.blobSize, uncompressedSize: l.size }));
      const layers = await this.images.unpack(descs);
      const created = new Date().toISOString();
      const config: ImageConfig = {
        architecture: base.config.architecture,
        os: base.config.os || 'linux',
        ...(base.config.variant ? { variant: base.config.variant } : {}),
        created,
        ...(o.author ? { author: o.author } : {}),
        ...(o.comment ? { comment: o.comment } : {}),
        config: runConfig,
        rootfs: { type: 'layers', diff_ids: [...base.config.rootfs.diff_ids, layer.diffID] },
        history: [...(base.config.history ?? []), { created, ...(o.author ? { author: o.author } : {}), created_by: command(rec), ...(o.comment ? { comment: o.comment } : {}) }],
      };
      const id = await this.images.addImage(Buffer.from(JSON.stringify(config)), layers, { parent: base.record.id, tags: tagRef ? [tagRef] : [] });
      return { Id: id };
    });
  }

  // ---- logs ----

  async logs(ctx: RequestContext, ref: string): Promise<void> {
    const q = ctx.query;
    const wantOut = boolParam(q, 'stdout');
    const wantErr = boolParam(q, 'stderr');
    if (!wantOut && !wantErr) throw invalidParameter('Bad parameters: you must choose at least one stream');
    const rec = this.svc.record(ref);
    if (rec.state.Status === 'removing' || rec.state.Status === 'dead') throw conflict('can not get logs from container which is dead or marked for removal');
    // dockerd's ErrReadLogsNotSupported (a NotImplemented error: 501).
    if (rec.hostConfig.LogConfig?.Type === 'none') throw notImplemented('configured logging driver does not support reading');
    const tailRaw = q.get('tail') ?? 'all';
    let tail: number | undefined;
    if (tailRaw !== 'all' && tailRaw !== '') {
      tail = Number(tailRaw);
      if (!Number.isInteger(tail)) throw invalidParameter(`invalid value for "tail": ${JSON.stringify(tailRaw)}`);
      if (tail < 0) tail = undefined;
    }
    const since = timeParam(q.get('since'));
    const until = timeParam(q.get('until'));
    const timestamps = boolParam(q, 'timestamps');
    // --details: the attributes of the labels/env/tag options before each line, as dockerd.
    const details = boolParam(q, 'details')
      ? Buffer.from(
          detailsPrefix(
            logAttributes(rec.hostConfig.LogConfig, {
              id: rec.id,
              name: rec.name,
              imageId: rec.imageId,
              imageName: rec.config.Image,
              labels: rec.config.Labels ?? {},
              env: rec.config.Env ?? [],
              hostname: rec.config.Hostname,
              command: [rec.path, ...rec.args].join(' '),
            }),
          ),
        )
      : undefined;
    const exited = boolParam(q, 'follow') ? this.svc.exitPromise(rec.id) : undefined;
    const tty = rec.config.Tty;
    ctx.res.writeHead(200, { 'Content-Type': tty ? RAW_STREAM : MUX_STREAM });
    ctx.res.flushHeaders();
    const abort = new AbortController();
    ctx.res.on('close', () => abort.abort());
    const file = this.paths.logPath(rec.id);
    // Records are gathered into large frames and writes (a write per log line made reading a big
    // log several times slower); with follow, what is gathered goes out as soon as the reader
    // has to wait for more.
    let blocked = false;
    const batch = new OutputBatcher((b) => {
      if (!ctx.res.writableEnded && !ctx.res.write(b)) blocked = true;
    }, tty);
    try {
      // Records come in batches of one read of the file; r.output is the line with its newline.
      for await (const records of logReader().readContainerLog(file, { follow: exited !== undefined, followUntil: exited, since, until, tail, signal: abort.signal, onRotate: (fn) => this.svc.logRotation.subscribe(file, fn), consistent: (fn, undo) => this.svc.logRotation.consistent(fn, undo) })) {
        for (const r of records) {
          if (r.stream === 'stdout' ? !wantOut : !wantErr) continue;
          const stream = r.stream === 'stdout' ? STDOUT : STDERR;
          if (timestamps) batch.push(stream, Buffer.from(`${r.timestamp} `));
          if (details) batch.push(stream, details);
          batch.push(stream, r.output);
        }
        if (blocked) {
          blocked = false;
          // A response closed by the client never drains.
          if (abort.signal.aborted) break;
          // A flush from the batcher's timer may have blocked and drained while the reader
          // waited: waiting for a 'drain' that already came would hang the follower.
          if (!ctx.res.writableNeedDrain) continue;
          await new Promise<void>((resolve) => {
            const done = (): void => {
              ctx.res.off('drain', done);
              ctx.res.off('close', done);
              resolve();
            };
            ctx.res.on('drain', done);
            ctx.res.on('close', done);
          });
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
    batch.flush();
    if (!ctx.res.writableEnded) ctx.res.end();
  }

  // ---- attach ----

  async attach(ctx: RequestContext, ref: string): Promise<void> {
    const q = ctx.query;
    const l = this.svc.get(ref);
    const rec = l.rec;
    checkAction('attach', rec.state.Status, rec);
    const keys = parseDetachKeys(q.get('detachKeys') || DEFAULT_DETACH_KEYS);
    const wantIn = boolParam(q, 'stdin');
    const wantOut = boolParam(q, 'stdout');
    const wantErr = boolParam(q, 'stderr');
    const tty = rec.config.Tty;
    const conn = hijack(ctx, tty ? RAW_STREAM : MUX_STREAM);
    const batch = new OutputBatcher(conn, tty);
    const out = (stream: number, data: Buffer): void => batch.push(stream, data);
    const end = (): void => {
      batch.flush();
      conn.end();
    };
    if (boolParam(q, 'logs')) {
      for await (const r of logReader().readContainerLogRecords(this.paths.logPath(rec.id), { consistent: (fn, undo) => this.svc.logRotation.consistent(fn, undo) })) {
        if (r.stream === 'stdout' ? !wantOut : !wantErr) continue;
        out(r.stream === 'stdout' ? STDOUT : STDERR, r.partial ? r.line : Buffer.concat([r.line, Buffer.from('\n')]));
      }
    }
    if (!boolParam(q, 'stream')) {
      end();
      return;
    }
    let io: AttachStream | undefined;
    const pending: Buffer[] = [];
    let stdinEnded = false;
    const client = {
      connect: (s: AttachStream): void => {
        if (conn.closed) {
          s.close();
          return;
        }
        io = s;
        s.on('stdout', (d) => wantOut && out(STDOUT, d));
        s.on('stderr', (d) => wantErr && out(STDERR, d));
        s.on('end', end);
        s.on('error', end);
        for (const b of pending.splice(0)) s.write(b);
        if (stdinEnded) s.closeStdin();
      },
      abandon: (): void => conn.end(),
    };
    pipeStdin(conn, wantIn, tty, keys, {
      write: (b) => (io ? io.write(b) : pending.push(b)),
      end: () => {
        stdinEnded = true;
        io?.closeStdin();
      },
      detach: () => {
        io?.close();
        this.svc.detachPending(rec.id, client);
        conn.end();
      },
    });
    conn.on('close', () => {
      io?.close();
      this.svc.detachPending(rec.id, client);
    });
    await this.svc.attach(rec.id, client);
  }

  // ---- exec ----

  async createExec(ref: string, body: Record<string, unknown>): Promise<object> {
    const id = this.svc.createExec(ref, body as Parameters<ContainerService['createExec']>[1]);
    return { Id: id };
  }

  async startExec(ctx: RequestContext, id: string, body: { Detach?: boolean; Tty?: boolean; ConsoleSize?: [number, number] | null }): Promise<void> {
    const e = this.svc.getExec(id);
    if (e.started) throw conflict(e.running ? `Error: Exec command ${id} is already running` : `Error: Exec command ${id} has already run`);
    const l = this.svc.get(e.containerId);
    checkAction('exec', l.rec.state.Status, l.rec);
    const tty = body.Tty ?? e.tty;
    const consoleSize = body.ConsoleSize ?? undefined;
    if (body.Detach) {
      await this.svc.startExec(id, { detach: true, tty, consoleSize });
      ctx.res.writeHead(200, { 'Content-Length': 0 });
      ctx.res.end();
      return;
    }
    const conn = hijack(ctx, tty ? RAW_STREAM : MUX_STREAM);
    const batch = new OutputBatcher(conn, tty);
    const out = (stream: number, data: Buffer): void => batch.push(stream, data);
    let started;
    try {
      started = await this.svc.startExec(id, { detach: false, tty, consoleSize });
    } catch (err) {
      // dockerd reports it inside the stream, as output; the exit code is in the exec's inspect.
      out(STDOUT, Buffer.from(`${(err as Error).message}\r\n`));
      batch.flush();
      conn.end();
      return;
    }
    const io = started.attach!;
    io.on('stdout', (d) => e.attachStdout && out(STDOUT, d));
    io.on('stderr', (d) => e.attachStderr && out(STDERR, d));
    io.on('end', () => {
      batch.flush();
      // The exit code is recorded before the client sees the end: it inspects the exec next.
      let timer: NodeJS.Timeout | undefined;
      void Promise.race([started.exited, new Promise((r) => (timer = setTimeout(r, 5000)))]).finally(() => {
        clearTimeout(timer);
        conn.end();
      });
    });
    pipeStdin(conn, e.attachStdin, tty, parseDetachKeys(e.detachKeys || DEFAULT_DETACH_KEYS), {
      write: (b) => io.write(b),
      end: () => io.closeStdin(),
      detach: () => {
        io.close();
        batch.flush();
        conn.end();
      },
    });
    conn.on('close', () => io.close());
  }

  async inspectExec(id: string): Promise<object> {
    const e = this.svc.getExec(id);
    return {
      CanRemove: false,
      ContainerID: e.containerId,
      DetachKeys: e.detachKeys,
      ExitCode: e.running ? null : e.exitCode,
      ID: e.id,
      OpenStderr: e.attachStderr,
      OpenStdin: e.attachStdin,
      OpenStdout: e.attachStdout,
      ProcessConfig: { arguments: e.cmd.slice(1), entrypoint: e.cmd[0], privileged: e.privileged, tty: e.tty, user: e.user },
      Running: e.running,
      Pid: e.pid,
    };
  }

  resizeExec(id: string, h: number, w: number): Promise<void> {
    return this.svc.resizeExec(id, h, w);
  }
}

/**
 * Client stdin → process, watching for the detach sequence with a TTY only: as dockerd, stdin
 * without one is copied as it is (binary input piped into `run -i` or `exec -i` may hold any
 * byte pair, ctrl-p ctrl-q included).
 */
function pipeStdin(conn: HijackedConn, enabled: boolean, tty: boolean, keys: Buffer, to: { write(b: Buffer): void; end(): void; detach(): void }): void {
  if (!enabled) return;
  const matcher = tty ? new DetachMatcher(keys) : undefined;
  let detached = false;
  conn.on('data', (chunk) => {
    if (detached) return;
    if (!matcher) {
      if (chunk.length > 0) to.write(chunk);
      return;
    }
    const { pass, detach } = matcher.feed(chunk);
    if (pass.length > 0) to.write(pass);
    if (detach) {
      detached = true;
      to.detach();
    }
  });
  conn.on('inputEnd', () => {
    if (!detached) to.end();
  });
}

function matchLabels(labels: Record<string, string>, wants: string[], positive: boolean): boolean {
  for (const want of wants) {
    const eq = want.indexOf('=');
    const hit = eq < 0 ? want in labels : labels[want.slice(0, eq)] === want.slice(eq + 1);
    if (hit !== positive) return false;
  }
  return true;
}

function containerRunConfig(rec: ContainerRecord): ImageRunConfig {
  const c = rec.config;
  const out: ImageRunConfig = {
    Hostname: c.Hostname,
    Domainname: c.Domainname,
    User: c.User,
    Env: c.Env,
    Cmd: c.Cmd,
    Entrypoint: c.Entrypoint,
    WorkingDir: c.WorkingDir,
    Labels: c.Labels,
    Volumes: c.Volumes,
    OnBuild: c.OnBuild,
  };
  if (c.ExposedPorts) out.ExposedPorts = c.ExposedPorts;
  if (c.StopSignal) out.StopSignal = c.StopSignal;
  return out;
}

/** The commit request's config overrides what it sets. */
function mergeRunConfig(base: ImageRunConfig, over: ImageRunConfig | undefined): ImageRunConfig {
  if (!over) return base;
  const out: ImageRunConfig = { ...base };
  for (const [k, v] of Object.entries(over) as [keyof ImageRunConfig, unknown][]) {
    if (v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** JSON types of the create body's top-level fields that the service reads without checking. */
const CREATE_FIELD_TYPES: Record<string, 'string' | 'boolean' | 'object' | 'string[]' | 'strings'> = {
  Image: 'string', Hostname: 'string', Domainname: 'string', User: 'string', WorkingDir: 'string', StopSignal: 'string',
  Tty: 'boolean', OpenStdin: 'boolean', StdinOnce: 'boolean', AttachStdin: 'boolean', AttachStdout: 'boolean', AttachStderr: 'boolean',
  Env: 'string[]', Cmd: 'strings', Entrypoint: 'strings',
  Labels: 'object', ExposedPorts: 'object', Volumes: 'object', HostConfig: 'object', NetworkingConfig: 'object', Healthcheck: 'object',
};

const GO_TYPES = { string: 'string', boolean: 'bool', object: 'map', 'string[]': '[]string', strings: 'strslice.StrSlice' } as const;

/**
 * A wrongly typed field is a 400 before anything is created, worded as dockerd's JSON decoder
 * words it; `null` means "not given", as in Go.
 */
function checkCreateBody(body: Record<string, unknown>): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidParameter('invalid JSON: the request body must be an object');
  for (const [field, want] of Object.entries(CREATE_FIELD_TYPES)) {
    const v = body[field];
    if (v === undefined || v === null) continue;
    const isStrings = Array.isArray(v) && v.every((x) => typeof x === 'string');
    const okType =
      want === 'string[]' ? isStrings
        : want === 'strings' ? isStrings || typeof v === 'string'
          : want === 'object' ? typeof v === 'object' && !Array.isArray(v)
            : typeof v === want;
    if (!okType) {
      const got = Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v;
      throw invalidParameter(`json: cannot unmarshal ${got} into Go struct field ContainerConfigWrapper.${field} of type ${GO_TYPES[want]}`);
    }
  }
}
