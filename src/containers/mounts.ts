// Container mounts: turns a create request's -v binds, --mount entries, --tmpfs, --volumes-from
// and the image's VOLUMEs into mount points (creating the volumes they name), remembers them per
// container (table container_mounts), and at each start turns them into OCI mounts — mounting
// driver-backed volumes and copying image content into new, empty volumes ("copy-up").
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidParameter, isKind } from '../common/errors';
import { mkdirAllOwned } from '../security/userns';
import type { Logger } from '../common/logger';
import type { DB, MetadataDB } from '../metadata/db';
import type { OciMount } from '../runtime/spec';
import type { VolumeService, VolumeUsage } from '../volumes/service';
import { resolveInRoot } from '../common/scopedpath';

/** One mount of a container, as docker's MountPoint plus what berth needs to set it up. */
export interface MountPoint {
  Type: 'volume' | 'bind' | 'tmpfs';
  /** Volume name (volumes only). */
  Name?: string;
  /** Host path (binds), the volume's data path (volumes), "" (tmpfs). */
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** Don't copy image content into the volume. */
  noCopy?: boolean;
  /** The volume was made for this container alone (anonymous): rm -v removes it. */
  anonymous?: boolean;
  /** tmpfs mount options (size=, mode=, flags). */
  tmpfsOptions?: string[];
  /** --tmpfs mounts are not listed in inspect's Mounts (as docker). */
  hidden?: boolean;
  /** Copy-up already happened (or was not wanted): later starts leave the volume alone. */
  copied?: boolean;
}

/** What the container service asks of the mounts module. */
export interface ContainerMounts {
  /** Resolves and records the mounts of a new container; creates the volumes it names. */
  create(id: string, req: MountRequest, lookupContainer: (ref: string) => string): MountPoint[];
  /** The OCI mounts for a start; rootfs is the container's mounted root (for copy-up). */
  ociMounts(id: string, rootfs: string): OciMount[];
  /** The container kept running across a daemon restart: it still holds its volumes. */
  adopt(id: string): void;
  /** The run ended: driver-backed volumes may be unmounted. */
  release(id: string): void;
  /** The container is gone: forget its mounts, and remove its anonymous volumes when asked. */
  forget(id: string, opts: { removeAnonymous: boolean }): void;
  /** docker's Mounts for inspect and list. */
  mountPoints(id: string): object[];
  /** All recorded mount points (with internal fields), for cp. */
  records(id: string): MountPoint[];
}

export interface MountRequest {
  Binds?: string[] | null;
  Mounts?: ApiMount[] | null;
  Tmpfs?: Record<string, string> | null;
  VolumesFrom?: string[] | null;
  /** Anonymous volume paths: the image's VOLUMEs and the request's Config.Volumes. */
  Volumes?: string[];
}

/** HostConfig.Mounts entries as the API takes them. */
export interface ApiMount {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  BindOptions?: { Propagation?: string; CreateMountpoint?: boolean } | null;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> | null; DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number } | null;
}

const PROPAGATIONS = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'];
const BIND_MODES = ['ro', 'rw', 'z', 'Z', 'nocopy', ...PROPAGATIONS];
const SCHEMA = [
  `CREATE TABLE container_mounts (
     container_id TEXT NOT NULL,
     destination TEXT NOT NULL,
     volume TEXT,
     data TEXT NOT NULL,
     PRIMARY KEY (container_id, destination)
   );
   CREATE INDEX container_mounts_volume ON container_mounts(volume);`,
];

function cleanDest(p: string): string {
  return path.posix.normalize(p).replace(/(.)\/+$/, '$1');
}

/** A planned mount before volumes exist: volume names may still be empty (anonymous). */
interface Planned extends MountPoint {
  volumeLabels?: Record<string, string>;
  driverOpts?: Record<string, string>;
  /** A missing host path is created (-v) rather than refused (--mount). */
  createSource?: boolean;
}

/** "-v" syntax: src:dst[:mode], or a lone dst (anonymous volume). */
export function parseBindSpec(spec: string): Planned {
  const parts = spec.split(':');
  if (parts.length === 1) {
    if (!spec.startsWith('/')) throw invalidParameter(`invalid volume specification: '${spec}'`);
    return { Type: 'volume', Name: '', Source: '', Destination: cleanDest(spec), Mode: '', RW: true, Propagation: '', anonymous: true };
  }
  if (parts.length > 3 || parts.some((p) => p === '')) throw invalidParameter(`invalid volume specification: '${spec}'`);
  const [source, dest, mode = ''] = parts;
  const modes = mode ? mode.split(',') : [];
  for (const m of modes) if (!BIND_MODES.includes(m)) throw invalidParameter(`invalid mode: ${mode}`);
  if (modes.includes('ro') && modes.includes('rw')) throw invalidParameter(`invalid mode: ${mode}`);
  const isBind = source.startsWith('/');
  const type = isBind ? 'bind' : 'volume';
  if (!dest.startsWith('/')) throw invalidParameter(`invalid volume specification: '${spec}': invalid mount config for type "${type}": invalid mount path: '${dest}' mount path must be absolute`);
  const propagation = modes.find((m) => PROPAGATIONS.includes(m));
  if (isBind) {
    if (modes.includes('nocopy')) throw invalidParameter(`invalid volume specification: '${spec}': invalid mount config for type "bind": field VolumeOptions must not be specified`);
    return { Type: 'bind', Source: cleanDest(source), Destination: cleanDest(dest), Mode: mode, RW: !modes.includes('ro'), Propagation: propagation ?? 'rprivate', createSource: true };
  }
  if (propagation) throw invalidParameter(`invalid volume specification: '${spec}': invalid mount config for type "volume": field BindOptions must not be specified`);
  return { Type: 'volume', Name: source, Source: '', Destination: cleanDest(dest), Mode: mode || 'z', RW: !modes.includes('ro'), Propagation: '', noCopy: modes.includes('nocopy') };
}

/** A --mount / HostConfig.Mounts entry. */
export function parseApiMount(m: ApiMount): Planned {
  const type = m.Type ?? '';
  const bad = (why: string) => invalidParameter(`invalid mount config for type "${type}": ${why}`);
  if (!['bind', 'volume', 'tmpfs'].includes(type)) throw invalidParameter(`invalid mount config: mount type unknown: "${type}"`);
  if (!m.Target) throw bad('field Target must not be empty');
  if (!m.Target.startsWith('/')) throw bad(`invalid mount path: '${m.Target}' mount path must be absolute`);
  const dest = cleanDest(m.Target);
  const rw = m.ReadOnly !== true;
  if (type === 'bind') {
    if (m.VolumeOptions) throw bad('field VolumeOptions must not be specified');
    if (m.TmpfsOptions) throw bad('field TmpfsOptions must not be specified');
    if (!m.Source) throw bad('field Source must not be empty');
    if (!m.Source.startsWith('/')) throw bad(`invalid mount path: '${m.Source}' mount path must be absolute`);
    const prop = m.BindOptions?.Propagation || 'rprivate';
    if (!PROPAGATIONS.includes(prop)) throw bad(`invalid propagation mode: ${prop}`);
    if (!m.BindOptions?.CreateMountpoint && !fs.existsSync(m.Source)) throw bad(`bind source path does not exist: ${m.Source}`);
    return { Type: 'bind', Source: cleanDest(m.Source), Destination: dest, Mode: '', RW: rw, Propagation: prop, createSource: m.BindOptions?.CreateMountpoint === true };
  }
  if (type === 'volume') {
    if (m.BindOptions) throw bad('field BindOptions must not be specified');
    if (m.TmpfsOptions) throw bad('field TmpfsOptions must not be specified');
    const driver = m.VolumeOptions?.DriverConfig?.Name;
    if (driver && driver !== 'local') throw invalidParameter(`error looking up volume plugin ${driver}: plugin "${driver}" not found`);
    return {
      Type: 'volume', Name: m.Source ?? '', Source: '', Destination: dest, Mode: '', RW: rw, Propagation: '',
      noCopy: m.VolumeOptions?.NoCopy === true, anonymous: !m.Source,
      volumeLabels: m.VolumeOptions?.Labels ?? undefined, driverOpts: m.VolumeOptions?.DriverConfig?.Options ?? undefined,
    };
  }
  if (m.Source) throw bad('field Source must not be specified');
  if (m.BindOptions) throw bad('field BindOptions must not be specified');
  if (m.VolumeOptions) throw bad('field VolumeOptions must not be specified');
  const opts = ['nosuid', 'nodev', 'noexec'];
  const size = m.TmpfsOptions?.SizeBytes;
  if (size !== undefined && size !== null) {
    if (!Number.isInteger(size) || size < 0) throw bad(`invalid tmpfs size: ${size}`);
    if (size > 0) opts.push(`size=${size}`);
  }
  const mode = m.TmpfsOptions?.Mode;
  if (mode !== undefined && mode !== null && mode !== 0) opts.push(`mode=${(mode & 0o7777).toString(8)}`);
  if (!rw) opts.push('ro');
  return { Type: 'tmpfs', Source: '', Destination: dest, Mode: '', RW: rw, Propagation: '', tmpfsOptions: opts };
}

/** --tmpfs /path[:opts]: docker's defaults noexec,nosuid,nodev, then the given options. */
function parseTmpfs(dest: string, options: string): Planned {
  if (!dest.startsWith('/')) throw invalidParameter(`invalid mount config for type "tmpfs": invalid mount path: '${dest}' mount path must be absolute`);
  const given = options ? options.split(',').filter(Boolean) : [];
  const opts = ['noexec', 'nosuid', 'nodev', ...given];
  return { Type: 'tmpfs', Source: '', Destination: cleanDest(dest), Mode: '', RW: !given.includes('ro'), Propagation: '', tmpfsOptions: opts, hidden: true };
}

/** The mounts of a create request, validated; no side effects. */
export function planMounts(req: MountRequest, volumesFrom: MountPoint[] = []): Planned[] {
  const byDest = new Map<string, Planned>();
  const add = (p: Planned): void => {
    if (byDest.has(p.Destination)) throw invalidParameter(`Duplicate mount point: ${p.Destination}`);
    byDest.set(p.Destination, p);
  };
  for (const b of req.Binds ?? []) add(parseBindSpec(b));
  for (const m of req.Mounts ?? []) add(parseApiMount(m));
  for (const [dest, opts] of Object.entries(req.Tmpfs ?? {})) add(parseTmpfs(dest, opts));
  // --volumes-from and image volumes fill in only where the request mounted nothing.
  for (const m of volumesFrom) if (!byDest.has(m.Destination)) byDest.set(m.Destination, { ...m, anonymous: false, copied: true });
  for (const v of req.Volumes ?? []) {
    if (!v.startsWith('/')) continue;
    const dest = cleanDest(v);
    if (!byDest.has(dest)) byDest.set(dest, { Type: 'volume', Name: '', Source: '', Destination: dest, Mode: '', RW: true, Propagation: '', anonymous: true });
  }
  return [...byDest.values()];
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

export class MountStore implements ContainerMounts, VolumeUsage {
  private readonly db: DB;
  /** Owner of bind-mount sources -v creates (--userns-remap: the remapped root). */
  newSourceOwner?: { uid: number; gid: number };

  constructor(
    meta: MetadataDB,
    private readonly volumes: VolumeService,
    private readonly log: Logger,
  ) {
    meta.migrate('container-mounts', SCHEMA);
    this.db = meta.db;
  }

  records(id: string): MountPoint[] {
    const rows = this.db.prepare('SELECT data FROM container_mounts WHERE container_id = ?').all(id) as { data: string }[];
    return rows.map((r) => JSON.parse(r.data) as MountPoint).sort((a, b) => depth(a.Destination) - depth(b.Destination) || (a.Destination < b.Destination ? -1 : 1));
  }

  containersUsingVolume(name: string): string[] {
    return (this.db.prepare('SELECT DISTINCT container_id FROM container_mounts WHERE volume = ? ORDER BY container_id').all(name) as { container_id: string }[]).map((r) => r.container_id);
  }

  create(id: string, req: MountRequest, lookupContainer: (ref: string) => string): MountPoint[] {
    const from: MountPoint[] = [];
    for (const spec of req.VolumesFrom ?? []) {
      const [ref, mode = '', ...rest] = spec.split(':');
      if (!ref || rest.length > 0 || !['', 'ro', 'rw'].includes(mode)) throw invalidParameter(`invalid volumes-from specification: '${spec}'`);
      for (const m of this.records(lookupContainer(ref))) {
        if (m.hidden) continue;
        from.push({ ...m, RW: mode === '' ? m.RW : mode === 'rw', Mode: mode || m.Mode });
      }
    }
    const planned = planMounts(req, from);
    const madeVolumes: string[] = [];
    const points: MountPoint[] = [];
    try {
      for (const p of planned) {
        const { volumeLabels, driverOpts, createSource, ...mp } = p;
        if (mp.Type === 'bind' && createSource && !fs.existsSync(mp.Source)) {
          // docker's -v creates a missing host directory rather than fail (under --userns-remap
          // owned by the remapped root, as dockerd).
          mkdirAllOwned(mp.Source, 0o755, this.newSourceOwner);
        }
        if (mp.Type === 'volume') {
          if (!mp.Name || !this.volumes.exists(mp.Name)) {
            const v = this.volumes.create({ Name: mp.Name || undefined, Labels: volumeLabels, DriverOpts: driverOpts });
            madeVolumes.push(v.Name);
            mp.Name = v.Name;
          }
          const v = this.volumes.get(mp.Name);
          mp.Source = v.Mountpoint;
          mp.Driver = v.Driver;
        }
        points.push(mp);
      }
      const insert = this.db.prepare('INSERT INTO container_mounts (container_id, destination, volume, data) VALUES (?, ?, ?, ?)');
      this.db.transaction(() => {
        for (const mp of points) insert.run(id, mp.Destination, mp.Type === 'volume' ? mp.Name : null, JSON.stringify(mp));
      })();
    } catch (err) {
      for (const name of madeVolumes) {
        try { this.volumes.remove(name, { force: true }); } catch {}
      }
      throw err;
    }
    return points;
  }

  ociMounts(id: string, rootfs: string): OciMount[] {
    const out: OciMount[] = [];
    for (const mp of this.records(id)) {
      if (mp.Type === 'tmpfs') {
        out.push({ destination: mp.Destination, type: 'tmpfs', source: 'tmpfs', options: mp.tmpfsOptions ?? ['nosuid', 'nodev', 'noexec'] });
        continue;
      }
      let source = mp.Source;
      if (mp.Type === 'volume') {
        source = this.volumes.mount(mp.Name!, id);
        if (!mp.copied) {
          if (!mp.noCopy) copyUp(rootfs, mp.Destination, source, this.log);
          mp.copied = true;
          this.db.prepare('UPDATE container_mounts SET data = ? WHERE container_id = ? AND destination = ?').run(JSON.stringify(mp), id, mp.Destination);
        }
      }
      const propagation = mp.Type === 'bind' ? mp.Propagation || 'rprivate' : 'rprivate';
      out.push({ destination: mp.Destination, type: 'bind', source, options: ['rbind', mp.RW ? 'rw' : 'ro', propagation] });
    }
    return out;
  }

  adopt(id: string): void {
    for (const mp of this.records(id)) {
      if (mp.Type === 'volume') this.volumes.adopt(mp.Name!, id);
    }
  }

  release(id: string): void {
    for (const mp of this.records(id)) {
      if (mp.Type !== 'volume') continue;
      try {
        this.volumes.unmount(mp.Name!, id);
      } catch (err) {
        this.log.warn('unmounting volume failed', { volume: mp.Name, error: (err as Error).message });
      }
    }
  }

  forget(id: string, opts: { removeAnonymous: boolean }): void {
    const mine = this.records(id);
    this.release(id);
    this.db.prepare('DELETE FROM container_mounts WHERE container_id = ?').run(id);
    if (!opts.removeAnonymous) return;
    for (const mp of mine) {
      if (mp.Type !== 'volume' || !mp.anonymous) continue;
      try {
        this.volumes.remove(mp.Name!);
      } catch (err) {
        // Still used through --volumes-from, or already gone: kept, as docker does.
        if (!isKind(err, 'Conflict') && !isKind(err, 'NotFound')) this.log.warn('removing anonymous volume failed', { volume: mp.Name, error: (err as Error).message });
      }
    }
  }

  mountPoints(id: string): object[] {
    return this.records(id).filter((m) => !m.hidden).map((m) => {
      if (m.Type === 'volume') return { Type: 'volume', Name: m.Name, Source: m.Source, Destination: m.Destination, Driver: m.Driver ?? 'local', Mode: m.Mode, RW: m.RW, Propagation: m.Propagation };
      return { Type: m.Type, Source: m.Source, Destination: m.Destination, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation };
    });
  }
}

/**
 * Copies the image's content at dest (inside rootfs, symlinks resolved within it) into an empty
 * volume, with ownership, modes and times, as docker does for a new volume.
 */
function copyUp(rootfs: string, dest: string, volumeDir: string, log: Logger): void {
  let src: string;
  try {
    src = resolveInRoot(rootfs, dest);
  } catch {
    return;
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(src);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  if (fs.readdirSync(volumeDir).length > 0) return;
  try {
    copyTree(src, volumeDir);
    fs.chownSync(volumeDir, st.uid, st.gid);
    fs.chmodSync(volumeDir, st.mode & 0o7777);
    fs.utimesSync(volumeDir, st.atime, st.mtime);
  } catch (err) {
    log.warn('copying image content into volume failed', { dest, error: (err as Error).message });
  }
}

function copyTree(src: string, dst: string): void {
  for (const name of fs.readdirSync(src)) {
    const s = path.join(src, name);
    const d = path.join(dst, name);
    const st = fs.lstatSync(s);
    if (st.isDirectory()) {
      fs.mkdirSync(d, { mode: 0o700 });
      copyTree(s, d);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(s), d);
    } else if (st.isFile()) {
      fs.copyFileSync(s, d, fs.constants.COPYFILE_EXCL);
    } else {
      continue; // devices, fifos and sockets are not copied
    }
    fs.lchownSync(d, st.uid, st.gid);
    if (!st.isSymbolicLink()) {
      fs.chmodSync(d, st.mode & 0o7777);
      fs.utimesSync(d, st.atime, st.mtime);
    }
  }
}
