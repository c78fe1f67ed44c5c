// Container records in the daemon's SQLite database, and where each container's files live.
//
//   <data-root>/containers/<id>/   hostname, hosts, resolv.conf, container.log (conmon's k8s-file)
//   <exec-root>/<id>/              the OCI bundle: config.json, rootfs (mount point), conmon's sockets
//
// The data root survives reboots; the exec root is runtime state (tmpfs on most systems), so
// nothing there is needed to know what containers exist.
import * as path from 'node:path';
import type { DB, MetadataDB } from '../metadata/db';
import type { ContainerState } from './state';
import type { HealthConfig } from '../health/config';
import type { HealthState } from '../health/state';

/** docker's container Config (the subset berth acts on; unknown fields are kept as given). */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  Healthcheck?: HealthConfig | null;
  Shell?: string[] | null;
  [k: string]: unknown;
}

export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure';
  MaximumRetryCount: number;
}

export interface HostConfig {
  Binds: string[] | null;
  AutoRemove: boolean;
  RestartPolicy: RestartPolicy;
  Init?: boolean | null;
  ShmSize: number;
  Runtime: string;
  Privileged: boolean;
  CapAdd: string[] | null;
  CapDrop: string[] | null;
  ReadonlyRootfs: boolean;
  NetworkMode: string;
  Dns: string[];
  DnsOptions: string[];
  DnsSearch: string[];
  ExtraHosts: string[] | null;
  ConsoleSize: [number, number];
  LogConfig: { Type: string; Config: Record<string, string> };
  [k: string]: unknown;
}

/** Run state, as docker's State object (times are RFC 3339; zero time is docker's 0001-01-01). */
export interface RunState {
  Status: ContainerState;
  Pid: number;
  ExitCode: number;
  Error: string;
  OOMKilled: boolean;
  StartedAt: string;
  FinishedAt: string;
  /** `docker stop` (or kill through stop) happened: restart policies must not fire. */
  ManuallyStopped: boolean;
  /** Present once the container ran with a health check (docker's State.Health). */
  Health?: HealthState;
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface ContainerRecord {
  id: string;
  /** Without the leading slash. */
  name: string;
  created: string;
  imageId: string;
  config: ContainerConfig;
  hostConfig: HostConfig;
  state: RunState;
  restartCount: number;
  /** The resolved command: [path, ...args] as docker's Path and Args. */
  path: string;
  args: string[];
}

const SCHEMA = [
  `CREATE TABLE containers (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     created TEXT NOT NULL,
     image_id TEXT NOT NULL,
     path TEXT NOT NULL,
     args TEXT NOT NULL,
     config TEXT NOT NULL,
     host_config TEXT NOT NULL,
     state TEXT NOT NULL,
     restart_count INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX containers_image ON containers(image_id);`,
];

interface Row {
  id: string;
  name: string;
  created: string;
  image_id: string;
  path: string;
  args: string;
  config: string;
  host_config: string;
  state: string;
  restart_count: number;
}

function fromRow(r: Row): ContainerRecord {
  return {
    id: r.id,
    name: r.name,
    created: r.created,
    imageId: r.image_id,
    path: r.path,
    args: JSON.parse(r.args) as string[],
    config: JSON.parse(r.config) as ContainerConfig,
    hostConfig: JSON.parse(r.host_config) as HostConfig,
    state: JSON.parse(r.state) as RunState,
    restartCount: r.restart_count,
  };
}

export class ContainerStore {
  private readonly db: DB;

  constructor(meta: MetadataDB) {
    meta.migrate('containers', SCHEMA);
    this.db = meta.db;
  }

  list(): ContainerRecord[] {
    return (this.db.prepare('SELECT * FROM containers ORDER BY created DESC').all() as Row[]).map(fromRow);
  }

  get(id: string): ContainerRecord | undefined {
    const r = this.db.prepare('SELECT * FROM containers WHERE id = ?').get(id) as Row | undefined;
    return r && fromRow(r);
  }

  idByName(name: string): string | undefined {
    return (this.db.prepare('SELECT id FROM containers WHERE name = ?').get(name) as { id: string } | undefined)?.id;
  }

  /** Inserts a new record; returns false when the name is taken (the UNIQUE index decides, so two racing creates cannot both win). */
  insert(c: ContainerRecord): boolean {
    try {
      this.db.prepare('INSERT INTO containers (id, name, created, image_id, path, args, config, host_config, state, restart_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(c.id, c.name, c.created, c.imageId, c.path, JSON.stringify(c.args), JSON.stringify(c.config), JSON.stringify(c.hostConfig), JSON.stringify(c.state), c.restartCount);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && /containers\.name/.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** After docker update: the new limits and restart policy. */
  saveHostConfig(c: ContainerRecord): void {
    this.db.prepare('UPDATE containers SET host_config = ? WHERE id = ?').run(JSON.stringify(c.hostConfig), c.id);
  }

  saveState(c: ContainerRecord): void {
    this.db.prepare('UPDATE containers SET state = ?, restart_count = ? WHERE id = ?').run(JSON.stringify(c.state), c.restartCount, c.id);
  }

  /** Several records' state in one transaction: one commit (one fsync) for all of them. */
  saveStates(cs: ContainerRecord[]): void {
    const update = this.db.prepare('UPDATE containers SET state = ? WHERE id = ?');
    this.db.transaction(() => {
      for (const c of cs) update.run(JSON.stringify(c.state), c.id);
    })();
  }

  /** Renames; false when the new name is taken. */
  rename(id: string, name: string): boolean {
    try {
      this.db.prepare('UPDATE containers SET name = ? WHERE id = ?').run(name, id);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return false;
      throw err;
    }
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM containers WHERE id = ?').run(id);
  }
}

/** Where a container's files are. */
export class ContainerPaths {
  constructor(
    readonly dataRoot: string,
    readonly execRoot: string,
  ) {}

  dir(id: string): string {
    return path.join(this.dataRoot, 'containers', id);
  }

  logPath(id: string): string {
    return path.join(this.dir(id), 'container.log');
  }

  hostnamePath(id: string): string {
    return path.join(this.dir(id), 'hostname');
  }

  hostsPath(id: string): string {
    return path.join(this.dir(id), 'hosts');
  }

  resolvConfPath(id: string): string {
    return path.join(this.dir(id), 'resolv.conf');
  }

  bundle(id: string): string {
    return path.join(this.execRoot, id);
  }

  rootfs(id: string): string {
    return path.join(this.bundle(id), 'rootfs');
  }

  /** conmon's and the OCI runtimes' state. */
  runtimeState(): string {
    return path.join(this.execRoot, 'runtime');
  }
}
