// The "local" volume driver: each volume is a directory <data-root>/volumes/<name>/_data. With
// driver options (type/device/o, as docker's local driver takes them) the directory is a mount
// point instead: the file system is mounted when the first container uses the volume and
// unmounted when the last one stops, so a tmpfs volume's content lives as long as its users.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidParameter } from '../common/errors';
import { mkdirp } from '../common/fsutil';
import { mountAll, unmountAll } from '../snapshots/mount';

const DRIVER_OPTS = ['type', 'device', 'o', 'size'];

export class LocalDriver {
  /** Container IDs holding each mounted volume. */
  private readonly holders = new Map<string, Set<string>>();
  /** Owner of new volumes' _data (--userns-remap: the remapped root, so that root inside may write). */
  dataOwner?: { uid: number; gid: number };

  constructor(readonly root: string) {
    mkdirp(root, 0o701);
  }

  dataPath(name: string): string {
    return path.join(this.root, name, '_data');
  }

  validateOptions(opts: Record<string, string>): void {
    for (const k of Object.keys(opts)) {
      if (!DRIVER_OPTS.includes(k)) throw invalidParameter(`invalid option key: "${k}"`);
    }
    if ((opts.type || opts.device || opts.o) && (!opts.type || !opts.device) && !(opts.type === 'tmpfs')) {
      throw invalidParameter('missing required option: "device"');
    }
  }

  create(name: string): string {
    mkdirp(path.join(this.root, name), 0o701);
    const data = this.dataPath(name);
    try {
      fs.mkdirSync(data, { mode: 0o755 });
      if (this.dataOwner) fs.chownSync(data, this.dataOwner.uid, this.dataOwner.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    return data;
  }

  /** Whether the volume's options make it a mount (rather than a plain directory). */
  static isMounted(opts: Record<string, string>): boolean {
    return Boolean(opts.type || opts.device || opts.o);
  }

  /** Makes the volume's data available for containerId (mounting it for the first user). */
  acquire(name: string, opts: Record<string, string>, containerId: string): string {
    const data = this.dataPath(name);
    if (!LocalDriver.isMounted(opts)) return data;
    let set = this.holders.get(name);
    if (!set || set.size === 0) {
      set = new Set();
      // A mount left by an earlier berthd (a crash) is replaced by a fresh one.
      unmountAll(data);
      const options = (opts.o ?? '').split(',').filter(Boolean);
      if (opts.size && opts.type === 'tmpfs') options.push(`size=${opts.size}`);
      const source = opts.device || opts.type || 'none';
      // A bind device given as a path must exist: mount(2) would otherwise say only ENOENT.
      if (options.includes('bind') && !fs.existsSync(source)) throw invalidParameter(`error while mounting volume '${data}': failed to mount local volume: mount ${source}:${data}, flags: 0x1000: no such file or directory`);
      try {
        mountAll([{ type: opts.type && opts.type !== 'none' ? opts.type : 'bind', source, options }], data);
      } catch (err) {
        throw invalidParameter(`error while mounting volume '${data}': failed to mount local volume: ${(err as Error).message}`);
      }
      this.holders.set(name, set);
    }
    set.add(containerId);
    return data;
  }

  /**
   * A container that kept running across a daemon restart still uses the volume: count it again
   * without remounting, so a new user shares the live mount and the last user's exit unmounts it.
   */
  adopt(name: string, opts: Record<string, string>, containerId: string): void {
    if (!LocalDriver.isMounted(opts) || !isMountPoint(this.dataPath(name))) return;
    let set = this.holders.get(name);
    if (!set) this.holders.set(name, (set = new Set()));
    set.add(containerId);
  }

  /** containerId no longer uses the volume; the last user unmounts it. */
  release(name: string, opts: Record<string, string>, containerId: string): void {
    if (!LocalDriver.isMounted(opts)) return;
    const set = this.holders.get(name);
    if (!set) return;
    set.delete(containerId);
    if (set.size > 0) return;
    this.holders.delete(name);
    unmountAll(this.dataPath(name));
  }

  remove(name: string): void {
    const data = this.dataPath(name);
    unmountAll(data);
    this.holders.delete(name);
    // The volume's mount point must no longer be a mount before its tree is removed recursively.
    if (isMountPoint(data)) throw new Error(`volume ${name} is still mounted`);
    fs.rmSync(path.join(this.root, name), { recursive: true, force: true });
  }

  /** Bytes used under the volume's data directory (for prune and system df). */
  usage(name: string): number {
    return du(this.dataPath(name));
  }
}

function isMountPoint(dir: string): boolean {
  try {
    const a = fs.lstatSync(dir);
    const b = fs.lstatSync(path.dirname(dir));
    return a.dev !== b.dev;
  } catch {
    return false;
  }
}

function du(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const n of fs.readdirSync(p)) total += du(path.join(p, n));
  return total;
}
