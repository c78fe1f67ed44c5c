// Volumes: named and anonymous data directories that outlive containers. Records live in the
// metadata database (table "volumes"); the data is the local driver's. Which containers use a
// volume is asked of the container side (VolumeUsage), which records every container's mounts.
import { randomBytes } from 'node:crypto';
import { conflict, invalidParameter, isKind, notFound } from '../common/errors';
import type { Logger } from '../common/logger';
import type { DB, MetadataDB } from '../metadata/db';
import type { EventPublisher } from '../events';
import { LocalDriver } from './local';

/** The label docker 23+ puts on anonymous volumes; prune removes only those unless all=true. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

export interface Volume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  Scope: 'local';
}

export interface CreateVolumeRequest {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** Who uses volumes: container IDs whose mounts name the volume. */
export interface VolumeUsage {
  containersUsingVolume(name: string): string[];
}

const SCHEMA = [
  `CREATE TABLE volumes (
     name TEXT PRIMARY KEY,
     driver TEXT NOT NULL,
     created TEXT NOT NULL,
     labels TEXT NOT NULL,
     options TEXT NOT NULL
   );`,
];

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

interface Row {
  name: string;
  driver: string;
  created: string;
  labels: string;
  options: string;
}

export class VolumeService {
  private readonly db: DB;
  readonly driver: LocalDriver;
  private usage: VolumeUsage = { containersUsingVolume: () => [] };

  constructor(
    meta: MetadataDB,
    root: string,
    private readonly log: Logger,
    private readonly events?: EventPublisher,
  ) {
    meta.migrate('volumes', SCHEMA);
    this.db = meta.db;
    this.driver = new LocalDriver(root);
  }

  setUsage(u: VolumeUsage): void {
    this.usage = u;
  }

  private toVolume(r: Row): Volume {
    return {
      CreatedAt: r.created,
      Driver: r.driver,
      Labels: JSON.parse(r.labels) as Record<string, string>,
      Mountpoint: this.driver.dataPath(r.name),
      Name: r.name,
      Options: JSON.parse(r.options) as Record<string, string>,
      Scope: 'local',
    };
  }

  private row(name: string): Row | undefined {
    return this.db.prepare('SELECT * FROM volumes WHERE name = ?').get(name) as Row | undefined;
  }

  /** "volume\0container" pairs mounted and not yet released (one unmount event each). */
  private readonly mounted = new Set<string>();

  private emit(action: string, name: string, attrs: Record<string, string> = {}): void {
    try {
      this.events?.publish('volume', action, { ID: name, Attributes: { driver: 'local', ...attrs } });
    } catch (err) {
      this.log.warn('publishing volume event failed', { error: (err as Error).message });
    }
  }

  /**
   * Creates a volume (an anonymous one when no name is given). Creating one that exists returns
   * it unchanged, as docker does, unless the request asks for another driver.
   */
  create(req: CreateVolumeRequest = {}): Volume {
    const driver = req.Driver || 'local';
    const anonymous = !req.Name;
    const name = req.Name || randomBytes(32).toString('hex');
    if (!NAME_RE.test(name)) {
      if (name.length < 2 && /^[a-zA-Z0-9]*$/.test(name)) throw invalidParameter(`create ${name}: volume name is too short, names should be at least two alphanumeric characters`);
      throw invalidParameter(`create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
    }
    if (driver !== 'local') throw notFound(`create ${name}: error looking up volume plugin ${driver}: plugin "${driver}" not found`);
    const existing = this.row(name);
    if (existing) return this.toVolume(existing);
    const options = { ...(req.DriverOpts ?? {}) };
    this.driver.validateOptions(options);
    const labels = { ...(req.Labels ?? {}) };
    if (anonymous) labels[ANONYMOUS_LABEL] = '';
    this.driver.create(name);
    const created = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    try {
      this.db.prepare('INSERT INTO volumes (name, driver, created, labels, options) VALUES (?, ?, ?, ?, ?)').run(name, driver, created, JSON.stringify(labels), JSON.stringify(options));
    } catch (err) {
      // Lost a race with an identical create: the other one's volume is the answer.
      const other = this.row(name);
      if (other) return this.toVolume(other);
      throw err;
    }
    this.emit('create', name);
    return this.toVolume(this.row(name)!);
  }

  get(name: string): Volume {
    const r = this.row(name);
    if (!r) throw notFound(`get ${name}: no such volume`);
    return this.toVolume(r);
  }

  exists(name: string): boolean {
    return this.row(name) !== undefined;
  }

  all(): Volume[] {
    return (this.db.prepare('SELECT * FROM volumes ORDER BY name').all() as Row[]).map((r) => this.toVolume(r));
  }

  isAnonymous(v: Volume): boolean {
    return Object.prototype.hasOwnProperty.call(v.Labels, ANONYMOUS_LABEL);
  }

  inUse(name: string): string[] {
    return this.usage.containersUsingVolume(name);
  }

  /** Volumes matching docker's list filters: dangling, name, label, driver. */
  list(filters: Map<string, string[]>): Volume[] {
    const dangling = filters.get('dangling');
    let wantDangling: boolean | undefined;
    for (const d of dangling ?? []) {
      if (['true', '1'].includes(d.toLowerCase())) wantDangling = true;
      else if (['false', '0'].includes(d.toLowerCase())) wantDangling = false;
      else throw invalidParameter(`invalid filter 'dangling=${d}'`);
    }
    return this.all().filter((v) => {
      if (wantDangling !== undefined && (this.inUse(v.Name).length === 0) !== wantDangling) return false;
      const names = filters.get('name');
      if (names && !names.some((n) => v.Name.includes(n))) return false;
      const drivers = filters.get('driver');
      if (drivers && !drivers.includes(v.Driver)) return false;
      if (!labelsMatch(v.Labels, filters.get('label'), filters.get('label!'))) return false;
      return true;
    });
  }

  /** Removes a volume; 409 while a container uses it. force ignores a volume that does not exist. */
  remove(name: string, opts: { force?: boolean } = {}): void {
    const r = this.row(name);
    if (!r) {
      if (opts.force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    const users = this.inUse(name);
    if (users.length > 0) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    // The record goes first: a crash half-way leaves a directory without a record, never a
    // record whose data is half gone.
    this.db.prepare('DELETE FROM volumes WHERE name = ?').run(name);
    try {
      this.driver.remove(name);
    } catch (err) {
      this.log.warn('removing volume data failed', { name, error: (err as Error).message });
    }
    this.emit('destroy', name);
  }

  /** Removes unused volumes: anonymous ones only, unless the all filter says otherwise. */
  prune(filters: Map<string, string[]>): { VolumesDeleted: string[] | null; SpaceReclaimed: number } {
    let all = false;
    for (const a of filters.get('all') ?? []) {
      if (['true', '1'].includes(a.toLowerCase())) all = true;
      else if (!['false', '0'].includes(a.toLowerCase())) throw invalidParameter(`invalid filter 'all=${a}'`);
    }
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const v of this.all()) {
      if (!all && !this.isAnonymous(v)) continue;
      if (!labelsMatch(v.Labels, filters.get('label'), filters.get('label!'))) continue;
      if (this.inUse(v.Name).length > 0) continue;
      const size = this.driver.usage(v.Name);
      try {
        this.remove(v.Name);
        deleted.push(v.Name);
        reclaimed += size;
      } catch (err) {
        if (!isKind(err, 'Conflict')) this.log.warn('prune: cannot remove volume', { name: v.Name, error: (err as Error).message });
      }
    }
    this.emit('prune', '', { reclaimed: String(reclaimed) });
    return { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  /** The volume's data directory for containerId, mounting it first when its options say so. */
  mount(name: string, containerId: string): string {
    const v = this.get(name);
    const p = this.driver.acquire(name, v.Options, containerId);
    this.mounted.add(`${name}\0${containerId}`);
    this.emit('mount', name, { container: containerId });
    return p;
  }

  /** containerId, found running after a daemon restart, holds the volume's mount (if any). */
  adopt(name: string, containerId: string): void {
    const r = this.row(name);
    if (r) this.driver.adopt(name, JSON.parse(r.options) as Record<string, string>, containerId);
    this.mounted.add(`${name}\0${containerId}`);
  }

  unmount(name: string, containerId: string): void {
    const r = this.row(name);
    if (!r) return;
    this.driver.release(name, JSON.parse(r.options) as Record<string, string>, containerId);
    // Release runs at exit and again at removal; dockerd reports one unmount per mount.
    if (this.mounted.delete(`${name}\0${containerId}`)) this.emit('unmount', name, { container: containerId });
  }

  usageOf(name: string): number {
    return this.driver.usage(name);
  }
}

/** docker's label filters: "key" (present) or "key=value"; label! negates. */
export function labelsMatch(labels: Record<string, string>, want?: string[], notWant?: string[]): boolean {
  const has = (f: string): boolean => {
    const eq = f.indexOf('=');
    if (eq < 0) return Object.prototype.hasOwnProperty.call(labels, f);
    return labels[f.slice(0, eq)] === f.slice(eq + 1);
  };
  if (want && !want.every(has)) return false;
  if (notWant && notWant.some(has)) return false;
  return true;
}
