// Applying snapshot mounts with mount(2) through the native addon: no `mount` process per
// container start.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as native from '../native';
import type { Mount } from './types';

const FLAG_OPTIONS: Record<string, { set: number } | { clear: number }> = {
  ro: { set: native.MS_RDONLY },
  rw: { clear: native.MS_RDONLY },
  bind: { set: native.MS_BIND },
  rbind: { set: native.MS_BIND | native.MS_REC },
  nosuid: { set: native.MS_NOSUID },
  suid: { clear: native.MS_NOSUID },
  nodev: { set: native.MS_NODEV },
  dev: { clear: native.MS_NODEV },
  noexec: { set: native.MS_NOEXEC },
  exec: { clear: native.MS_NOEXEC },
  sync: { set: native.MS_SYNCHRONOUS },
  async: { clear: native.MS_SYNCHRONOUS },
  dirsync: { set: native.MS_DIRSYNC },
  remount: { set: native.MS_REMOUNT },
  noatime: { set: native.MS_NOATIME },
  atime: { clear: native.MS_NOATIME },
  nodiratime: { set: native.MS_NODIRATIME },
  diratime: { clear: native.MS_NODIRATIME },
  relatime: { set: native.MS_RELATIME },
  norelatime: { clear: native.MS_RELATIME },
  strictatime: { set: native.MS_STRICTATIME },
  defaults: { clear: 0 },
};

/** Splits `mount -o` style options into mount(2) flags and the file-system data string. */
export function parseMountOptions(options: string[]): { flags: number; data: string[] } {
  let flags = 0;
  const data: string[] = [];
  for (const opt of options) {
    const f = FLAG_OPTIONS[opt];
    if (!f) data.push(opt);
    else if ('set' in f) flags |= f.set;
    else flags &= ~f.clear;
  }
  return { flags, data };
}

// mount(2) copies at most one page of data; overlay's lowerdir list is what can exceed it.
const PAGE_SIZE = 4096;
const PATH_OPTIONS = ['lowerdir=', 'upperdir=', 'workdir='];

/** The deepest directory containing every path in the overlay path options. */
function commonDir(data: string[]): string {
  const paths: string[] = [];
  for (const opt of data) {
    const key = PATH_OPTIONS.find((p) => opt.startsWith(p));
    if (key) paths.push(...opt.slice(key.length).split(':'));
  }
  let common = path.dirname(paths[0] ?? '/');
  for (const p of paths) while (common !== '/' && !(`${p}/`).startsWith(`${common}/`)) common = path.dirname(common);
  return common;
}

export interface MountAllOptions {
  /**
   * Mount overlays that have a writable layer with overlayfs's "volatile" option. The kernel then
   * never syncs the writable layer, and in particular does not sync the whole file system under
   * it when the overlay is unmounted (a second on a busy disk). The price: after a host crash the
   * layer may be torn, so a volatile layer mounted during an earlier boot is emptied on its next
   * mount. Only for layers that are disposable (a container run with --rm).
   */
  volatile?: boolean;
  /** Told when a volatile writable layer from an earlier boot was emptied (see volatile). */
  onDiscard?: (upperdir: string) => void;
}

/** Written in a volatile overlay's workdir: the boot it was mounted in. */
const VOLATILE_BOOT_FILE = 'berth-volatile-boot';

let cachedBootId: string | undefined;
function bootId(): string {
  return (cachedBootId ??= fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
}

function optionValue(data: string[], key: string): string | undefined {
  const opt = data.find((o) => o.startsWith(`${key}=`));
  return opt?.slice(key.length + 1);
}

/**
 * Readies a workdir that a volatile mount may have used. overlayfs leaves work/incompat/volatile
 * behind after every volatile mount, even a cleanly unmounted one, and refuses to mount over it.
 * Within the boot that mounted it the layer is intact (nothing was skipped but the syncs), so
 * the marker goes; after a reboot its writes may never have reached the disk, so the layer is
 * emptied first, as the kernel's documentation asks.
 */
function clearVolatileMarker(upperdir: string, workdir: string, onDiscard?: (upperdir: string) => void): void {
  const incompat = path.join(workdir, 'work', 'incompat');
  if (!fs.existsSync(path.join(incompat, 'volatile'))) return;
  let mountedIn = '';
  try {
    mountedIn = fs.readFileSync(path.join(workdir, VOLATILE_BOOT_FILE), 'utf8').trim();
  } catch {}
  if (mountedIn !== bootId()) {
    for (const e of fs.readdirSync(upperdir)) fs.rmSync(path.join(upperdir, e), { recursive: true, force: true });
    onDiscard?.(upperdir);
  }
  fs.rmSync(incompat, { recursive: true, force: true });
}

function mountOne(m: Mount, target: string, opts: MountAllOptions): void {
  const { flags, data } = parseMountOptions(m.options);
  const upperdir = m.type === 'overlay' ? optionValue(data, 'upperdir') : undefined;
  const workdir = m.type === 'overlay' ? optionValue(data, 'workdir') : undefined;
  if (upperdir !== undefined && workdir !== undefined) {
    clearVolatileMarker(upperdir, workdir, opts.onDiscard);
    if (opts.volatile && !data.includes('volatile') && !data.includes('fsync=volatile')) {
      // Not synced, and needs not be: a crash before it reaches the disk leaves an older boot's
      // id or none, and either empties the layer, which is the safe side.
      fs.writeFileSync(path.join(workdir, VOLATILE_BOOT_FILE), `${bootId()}\n`);
      data.push('volatile');
    }
  }
  if (m.type === 'bind' || (flags & native.MS_BIND) !== 0) {
    const bindFlags = (flags | native.MS_BIND) & ~native.MS_RDONLY;
    native.mount(m.source, target, '', bindFlags, '');
    // A bind mount ignores MS_RDONLY on creation; read-only takes a remount.
    if (flags & native.MS_RDONLY) native.mount('', target, '', native.MS_REMOUNT | native.MS_BIND | native.MS_RDONLY | (flags & (native.MS_NOSUID | native.MS_NODEV | native.MS_NOEXEC)), '');
    return;
  }
  let joined = data.join(',');
  if (joined.length < PAGE_SIZE) {
    native.mount(m.source, target, m.type, flags, joined);
    return;
  }
  // Too long: make the paths relative to their common directory and mount from there. mount is
  // synchronous, so no other JavaScript runs while the working directory is changed.
  const dir = commonDir(data);
  joined = data.map((opt) => {
    const key = PATH_OPTIONS.find((p) => opt.startsWith(p));
    if (!key) return opt;
    return key + opt.slice(key.length).split(':').map((p) => path.relative(dir, p)).join(':');
  }).join(',');
  if (joined.length >= PAGE_SIZE) throw new Error(`mount options for ${target} are too long (${joined.length} bytes even with relative paths)`);
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    native.mount(m.source, path.resolve(cwd, target), m.type, flags, joined);
  } finally {
    process.chdir(cwd);
  }
}

/** Mounts each of mounts on target, in order; on failure, undoes the ones already made. */
export function mountAll(mounts: Mount[], target: string, opts: MountAllOptions = {}): void {
  let done = 0;
  try {
    for (const m of mounts) {
      mountOne(m, target, opts);
      done++;
    }
  } catch (err) {
    for (; done > 0; done--) {
      try { native.umount2(target, native.MNT_DETACH); } catch {}
    }
    throw err;
  }
}

/** Unmounts everything mounted on target (stacked mounts included). Not mounted is fine. */
export function unmountAll(target: string, flags = 0): void {
  for (let i = 0; i < 256; i++) {
    try {
      native.umount2(target, flags | native.UMOUNT_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'ENOENT') return; // not (any longer) a mount point
      if (code === 'EBUSY' && (flags & native.MNT_DETACH) === 0) {
        flags |= native.MNT_DETACH; // still in use: detach it lazily rather than fail
        continue;
      }
      throw err;
    }
  }
  throw new Error(`unmounting ${target}: still mounted after 256 attempts`);
}

/**
 * unmountAll, with each umount2 on libuv's thread pool: unmounting an overlay syncs the file
 * system under it, which must not stall everything else berthd is doing.
 */
export async function unmountAllAsync(target: string, flags = 0): Promise<void> {
  for (let i = 0; i < 256; i++) {
    try {
      await native.umount2Async(target, flags | native.UMOUNT_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'ENOENT') return;
      if (code === 'EBUSY' && (flags & native.MNT_DETACH) === 0) {
        flags |= native.MNT_DETACH;
        continue;
      }
      throw err;
    }
  }
  throw new Error(`unmounting ${target}: still mounted after 256 attempts`);
}
