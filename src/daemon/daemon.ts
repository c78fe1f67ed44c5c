// The composition root: berthd's subsystems are created and wired together here, and nowhere
// else. Each subsystem gets only the small interfaces it needs from the others.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { mkdirp, writeFileAtomic } from '../common/fsutil';
import type { Logger } from '../common/logger';
import { MetadataDB } from '../metadata/db';
import { ApiServer, type Listener } from '../api/server';
import { apiSecurityFrom } from '../api/tls';
import { Router, API_VERSION, MIN_API_VERSION } from '../api/router';
import { systemRoutes, type SystemBackend } from '../api/routes/system';
import type { DaemonConfig } from './config';
import { DataRootLock } from './lock';
import { releaseMemory } from '../native';
import { readHostInfo, type HostInfo } from './hostinfo';
import { ContentStore } from '../content/store';
import { OverlaySnapshotter } from '../snapshots/overlay';
import type { Snapshotter } from '../snapshots/types';
import { ImageStore } from '../images/store';
import { ImageService } from '../images/service';
import { ImageApi } from '../images/backend';
import { imageRoutes } from '../api/routes/images';
import { authRoutes } from '../api/routes/auth';
import { distributionRoutes } from '../api/routes/distribution';
import type { DistributionService } from '../distribution/service';
import { containerRoutes } from '../api/routes/containers';
import { execRoutes } from '../api/routes/exec';
import { eventRoutes } from '../api/routes/events';
import { EventsService } from '../events';
import { ConmonRuntime } from '../runtime/runtime';
import { ensureCgroupsUsable, favorCgroupMigrations } from '../runtime/cgroups';
import { ContainerPaths, ContainerStore } from '../containers/store';
import { ContainerService } from '../containers/service';
import { ContainerApi } from '../containers/api';
import { ContainerNetworkingBackend, ContainerNetworks, containerRegistry } from '../containers/networking';
import { NetworkService, optionsFromDaemonConfig } from '../network/service';
import { networkRoutes } from '../api/routes/networks';
import { VolumeService } from '../volumes/service';
import { volumeRoutes } from '../api/routes/volumes';
import { MountStore } from '../containers/mounts';
import { buildRoutes } from '../api/routes/build';
import type { BuildCache } from '../build/cache';
import type { Builder } from '../build/builder';
import { blockingAncestor, resolveRemap, type RemapSetting } from '../security/userns';
import { hostSupportsAppArmor, installDefaultProfile } from '../security/apparmor';

export const BERTH_VERSION = '0.1.0';

export class Daemon implements SystemBackend {
  readonly experimental = false;
  private lock?: DataRootLock;
  private meta?: MetadataDB;
  private snapshotter?: Snapshotter;
  images!: ImageService;
  private distribution?: DistributionService;
  containers?: ContainerService;
  networks?: NetworkService;
  volumes?: VolumeService;
  private containerApi?: ContainerApi;
  private server?: ApiServer;
  private listeners: Listener[] = [];
  private host!: HostInfo;
  private daemonID = '';
  /** Where this daemon's state lives: the data root, or <data-root>/<uid>.<gid> under --userns-remap (dockerd's layout). */
  private root = '';
  private remap?: RemapSetting;
  private appArmor = false;
  readonly events = new EventsService();

  constructor(readonly cfg: DaemonConfig, readonly log: Logger) {}

  async start(): Promise<void> {
    const { cfg, log } = this;
    mkdirp(cfg.dataRoot, 0o711);
    mkdirp(cfg.execRoot, 0o700);
    this.lock = await DataRootLock.acquire(cfg.dataRoot);
    this.host = readHostInfo(cfg.dataRoot);
    this.daemonID = this.loadDaemonID();
    this.root = this.setUpRemap();
    const root = this.root;
    this.setUpAppArmor();
    this.meta = new MetadataDB(path.join(root, 'metadata.db'));
    const content = new ContentStore(path.join(root, 'content'));
    this.snapshotter = new OverlaySnapshotter(path.join(root, 'overlay2'), { idMap: this.remap?.mapping });
    this.images = new ImageService(new ImageStore(this.meta), content, this.snapshotter, log);
    this.images.events = (action, id, attrs) => this.events.image(action, id, attrs);

    try {
      ensureCgroupsUsable(log);
    } catch (err) {
      log.warn(`cgroups are not usable by the OCI runtime: ${(err as Error).message}`);
    }
    if (cfg.extra['cgroup-favor-dynmods'] !== false) favorCgroupMigrations(log);
    this.networks = new NetworkService(this.meta, { dataRoot: root, execRoot: cfg.execRoot, log, ...optionsFromDaemonConfig(cfg.extra) });
    await this.networks.init();
    const containerPaths = new ContainerPaths(root, cfg.execRoot);
    const containerNetworks = new ContainerNetworks(this.networks, containerPaths, log);
    containerNetworks.events = this.events;
    this.volumes = new VolumeService(this.meta, path.join(root, 'volumes'), log, this.events);
    if (this.remap) this.volumes.driver.dataOwner = this.remap.mapping.rootPair();
    const containerMounts = new MountStore(this.meta, this.volumes, log);
    if (this.remap) containerMounts.newSourceOwner = this.remap.mapping.rootPair();
    this.volumes.setUsage(containerMounts);
    this.containers = new ContainerService({
      mounts: containerMounts,
      paths: containerPaths,
      store: new ContainerStore(this.meta),
      images: this.images,
      snapshotter: this.snapshotter,
      runtime: new ConmonRuntime({ stateRoot: containerPaths.runtimeState(), log }),
      runtimes: cfg.runtimes,
      defaultRuntime: cfg.defaultRuntime,
      cgroupParent: cfg.cgroupParent,
      log,
      events: this.events,
      network: containerNetworks,
      userns: this.remap?.mapping,
      appArmor: this.appArmor ? { profileDir: this.appArmorDir() } : undefined,
      logDefaults: cfg.logConfig,
    });
    await this.containers.recover();
    // Running containers keep their networking; what dead ones left is torn down.
    await containerNetworks.reconcile(this.containers.all().filter((r) => ['running', 'paused', 'restarting'].includes(r.state.Status)).map((r) => r.id));
    const containerNetworking = new ContainerNetworkingBackend(containerRegistry(this.containers), containerNetworks);
    this.images.setUsage(this.containers);
    this.containerApi = new ContainerApi(this.containers, this.images, containerPaths, containerNetworks);

    const router = new Router(log)
      .add(systemRoutes(this))
      .add(imageRoutes(new ImageApi(this.images, { pull: (ctx, p) => this.dist().pull(ctx, p), push: (ctx, n, p) => this.dist().push(ctx, n, p) })))
      .add(authRoutes({ login: (auth) => this.dist().login(auth) }))
      .add(distributionRoutes({
        inspectDistribution: async (ctx, name) => {
          const { inspectDistribution } = require('../distribution/inspect') as typeof import('../distribution/inspect');
          const { decodeAuthHeader } = require('../distribution/authconfig') as typeof import('../distribution/authconfig');
          return inspectDistribution(this.dist().client, name, decodeAuthHeader(ctx.req.headers['x-registry-auth']));
        },
      }))
      .add(containerRoutes(this.containerApi))
      .add(execRoutes(this.containerApi))
      .add(eventRoutes(this.events))
      .add(volumeRoutes(this.volumes))
      .add(networkRoutes({ networks: this.networks, containers: () => containerNetworking, events: this.events }))
      .add(buildRoutes(this.buildBackend()));
    this.server = new ApiServer(router, log, apiSecurityFrom(cfg));
    for (const h of cfg.hosts) this.listeners.push(await this.server.listen(h));
    writeFileAtomic(cfg.pidfile, `${process.pid}`);
    // Start-up's garbage goes back now, not when V8's memory reducer runs seconds later.
    releaseMemory();
    log.info('Daemon has completed initialization', { version: BERTH_VERSION, dataRoot: cfg.dataRoot });
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.listeners = [];
    this.distribution?.close();
    // Containers keep running (live restore); only the watching stops.
    this.containers?.close();
    // Networking of removed --rm containers still being torn down in the background.
    await this.networks?.settled().catch(() => {});
    this.networks?.close();
    this.snapshotter?.close();
    this.snapshotter = undefined;
    this.meta?.close();
    this.meta = undefined;
    try {
      if (fs.readFileSync(this.cfg.pidfile, 'utf8').trim() === String(process.pid)) fs.rmSync(this.cfg.pidfile, { force: true });
    } catch {}
    this.lock?.release();
    this.log.info('Daemon shutdown complete');
  }

  /**
   * The registry client, made on first use: an idle daemon does not load the distribution code
   * (idle RSS is one of berth's targets).
   */
  private dist(): DistributionService {
    if (!this.distribution) {
      const { DistributionService } = require('../distribution/service') as typeof import('../distribution/service');
      const cfg = this.cfg;
      this.distribution = new DistributionService({
        images: this.images,
        meta: this.meta!,
        log: this.log,
        insecureRegistries: cfg.insecureRegistries,
        registryMirrors: cfg.registryMirrors,
        maxConcurrentDownloads: cfg.maxConcurrentDownloads,
        maxConcurrentUploads: cfg.maxConcurrentUploads,
        userAgent: `berth/${BERTH_VERSION}`,
      });
    }
    return this.distribution;
  }

  /** The classic builder, made on first use; RUN steps run as ordinary containers. */
  private builder?: { builder: Builder; cache: BuildCache };
  private build(): { builder: Builder; cache: BuildCache } {
    if (!this.builder) {
      const { BuildCache } = require('../build/cache') as typeof import('../build/cache');
      const { Builder } = require('../build/builder') as typeof import('../build/builder');
      const { ContainerBuildExecutor } = require('../build/executor') as typeof import('../build/executor');
      const cache = new BuildCache(this.meta!);
      const builder = new Builder({
        images: this.images,
        cache,
        executor: new ContainerBuildExecutor(this.containers!, this.log),
        tmpRoot: path.join(this.root, 'tmp', 'build'),
        log: this.log,
      });
      this.builder = { builder, cache };
    }
    return this.builder;
  }

  private buildBackend(): Parameters<typeof buildRoutes>[0] {
    return {
      build: (params, context, send, signal) => this.build().builder.build(params, context, send, signal),
      pruneCache: () => this.build().cache.prune(),
    };
  }

  /**
   * --userns-remap: resolves the user and its subordinate ranges (creating the default user and
   * ranges when missing) and makes <data-root>/<uid>.<gid> (0710, group of the remapped root, as
   * dockerd) the root of all state. Returns the directory state lives in.
   */
  private setUpRemap(): string {
    const { cfg, log } = this;
    if (!cfg.usernsRemap) return cfg.dataRoot;
    this.remap = resolveRemap(cfg.usernsRemap);
    if (!this.remap) {
      log.warn('User namespaces: root cannot be remapped with itself; user namespaces are OFF');
      return cfg.dataRoot;
    }
    log.info(`User namespaces: ID ranges will be mapped to subuid/subgid ranges of: ${this.remap.user}`);
    const { uid, gid } = this.remap.mapping.rootPair();
    // The data root must stay traversable (dockerd sets 0711 on it too).
    fs.chmodSync(cfg.dataRoot, 0o711);
    const root = path.join(cfg.dataRoot, `${uid}.${gid}`);
    mkdirp(root, 0o710);
    fs.chownSync(root, process.getuid?.() ?? 0, gid);
    fs.chmodSync(root, 0o710);
    // The runtime resolves the container's rootfs (in the bundle under the exec root) as the
    // remapped root: the exec root must be traversable for it, as every directory above both.
    fs.chmodSync(cfg.execRoot, 0o711);
    for (const dir of [root, cfg.execRoot]) {
      if (blockingAncestor(dir, uid, gid) !== undefined) {
        throw new Error(`a subdirectory in your graphroot path (${dir}) restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories`);
      }
    }
    return root;
  }

  private appArmorDir(): string {
    return path.join(this.cfg.execRoot, 'apparmor');
  }

  /** AppArmor where the host has it: the default profile is (re)loaded at every start, as dockerd does. */
  private setUpAppArmor(): void {
    this.appArmor = hostSupportsAppArmor();
    if (!this.appArmor) {
      this.log.debug('AppArmor is not enabled on this host: containers run without an AppArmor profile');
      return;
    }
    try {
      installDefaultProfile(this.appArmorDir());
    } catch (err) {
      this.log.error(`Failed to load default apparmor profile: ${(err as Error).message}`);
    }
  }

  /** A stable identity for this data root, as dockerd's engine ID. */
  private loadDaemonID(): string {
    const file = path.join(this.cfg.dataRoot, 'engine-id');
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      const id = randomUUID();
      writeFileAtomic(file, id);
      return id;
    }
  }

  version(): Record<string, unknown> {
    const h = this.host;
    return {
      Platform: { Name: 'berth' },
      Components: [
        {
          Name: 'Engine',
          Version: BERTH_VERSION,
          Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: goArchName(), KernelVersion: h.kernelVersion, GitCommit: '', GoVersion: `node${process.versions.node}`, BuildTime: '', Experimental: 'false' },
        },
      ],
      Version: BERTH_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: '',
      GoVersion: `node${process.versions.node}`,
      Os: 'linux',
      Arch: goArchName(),
      KernelVersion: h.kernelVersion,
      BuildTime: '',
    };
  }

  async info(): Promise<Record<string, unknown>> {
    const h = this.host;
    const cfg = this.cfg;
    return {
      ID: this.daemonID,
      Containers: this.containers?.counts().total ?? 0,
      ContainersRunning: this.containers?.counts().running ?? 0,
      ContainersPaused: this.containers?.counts().paused ?? 0,
      ContainersStopped: this.containers?.counts().stopped ?? 0,
      Images: this.images.count(),
      Driver: 'overlay2',
      DriverStatus: [['Backing Filesystem', h.backingFs], ['Supports d_type', 'true'], ['Using metacopy', 'false'], ['Native Overlay Diff', 'true'], ['userxattr', 'false']],
      DockerRootDir: this.root || cfg.dataRoot,
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'null'], Authorization: null, Log: ['json-file', 'local', 'none'] },
      MemoryLimit: true,
      SwapLimit: true,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      OomKillDisable: h.cgroupVersion === '1',
      IPv4Forwarding: true,
      BridgeNfIptables: false,
      BridgeNfIp6tables: false,
      Debug: cfg.logLevel === 'debug',
      NFd: countDir('/proc/self/fd'),
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: cfg.logConfig.Type,
      CgroupDriver: 'cgroupfs',
      CgroupVersion: h.cgroupVersion,
      NEventsListener: this.events.listenerCount(),
      KernelVersion: h.kernelVersion,
      OperatingSystem: h.operatingSystem,
      OSVersion: h.osVersion,
      OSType: 'linux',
      Architecture: h.architecture,
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: {
        AllowNondistributableArtifactsCIDRs: null,
        AllowNondistributableArtifactsHostnames: null,
        InsecureRegistryCIDRs: ['127.0.0.0/8', '::1/128'],
        IndexConfigs: { 'docker.io': { Name: 'docker.io', Mirrors: cfg.registryMirrors, Secure: true, Official: true } },
        Mirrors: cfg.registryMirrors,
      },
      NCPU: h.ncpu,
      MemTotal: h.memTotal,
      GenericResources: null,
      HttpProxy: process.env.HTTP_PROXY ?? '',
      HttpsProxy: process.env.HTTPS_PROXY ?? '',
      NoProxy: process.env.NO_PROXY ?? '',
      Name: h.hostname,
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: BERTH_VERSION,
      Runtimes: Object.fromEntries(Object.entries(cfg.runtimes).map(([n, r]) => [n, { path: r.path, ...(r.runtimeArgs ? { runtimeArgs: r.runtimeArgs } : {}) }])),
      DefaultRuntime: cfg.defaultRuntime,
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: 'catatonit',
      ContainerdCommit: { ID: '' },
      RuncCommit: { ID: '' },
      InitCommit: { ID: '' },
      SecurityOptions: [
        ...(this.appArmor ? ['name=apparmor'] : []),
        'name=seccomp,profile=builtin',
        ...(this.remap ? ['name=userns'] : []),
      ],
      Warnings: [],
    };
  }

  async diskUsage(types: string[]): Promise<Record<string, unknown>> {
    const want = (t: string) => types.length === 0 || types.includes(t);
    const out: Record<string, unknown> = {};
    if (want('image')) {
      const recs = this.images.store.list();
      // A layer shared by several images counts once in LayersSize and as shared in each.
      const chainUse = new Map<string, number>();
      for (const r of recs) for (const l of r.layers) chainUse.set(l.chainID, (chainUse.get(l.chainID) ?? 0) + 1);
      const layerSize = new Map<string, number>();
      for (const r of recs) for (const l of r.layers) layerSize.set(l.chainID, l.size);
      out.LayersSize = [...layerSize.values()].reduce((a, b) => a + b, 0);
      out.Images = await Promise.all(recs.map(async (r) => {
        const cfg = await this.images.config(r.id);
        const tags = this.images.repoTags(r.id);
        return {
          Id: r.id, ParentId: r.parent, RepoTags: tags, RepoDigests: this.images.repoDigests(r.id),
          Created: Math.floor(Date.parse(r.created) / 1000), Size: r.size,
          SharedSize: r.layers.filter((l) => (chainUse.get(l.chainID) ?? 0) > 1).reduce((n, l) => n + l.size, 0),
          Labels: cfg.config?.Labels ?? null, Containers: this.containers?.containersUsing(r.id).length ?? 0,
        };
      }));
    }
    if (want('container')) out.Containers = this.containerApi ? await this.containerApi.list({ all: true, limit: -1, size: true, filters: new Map() }) : [];
    if (want('volume')) {
      const vols = this.volumes;
      out.Volumes = vols ? vols.all().map((v) => ({ ...v, UsageData: { Size: vols.usageOf(v.Name), RefCount: vols.inUse(v.Name).length } })) : [];
    }
    if (want('build-cache')) out.BuildCache = [];
    return out;
  }
}

function goArchName(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

function countDir(dir: string): number {
  try {
    return fs.readdirSync(dir).length;
  } catch {
    return 0;
  }
}
