// Typed wrappers around berth's own N-API addon (src/native/berth_native.c): the syscalls that
// Node's fs module lacks (and a light spawn for health probes). Failures become Node-style errors (code 'EPERM', negative errno, syscall,
// path) so callers can treat them exactly like fs errors (hasCode(err, 'ENOENT'), ...).
import * as path from 'node:path';
import * as util from 'node:util';

interface RawBinding {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Buffer): void;
  lgetxattr(path: string, name: string): Buffer | null;
  llistxattr(path: string): string[];
  lstatXattrs(path: string, out: Float64Array, wantXattrs: boolean): string[] | undefined;
  setSendBuffer(fd: number, bytes: number): number;
  dup(fd: number): number;
  sendfile(outFd: number, inFd: number, offset: number, count: number): number;
  waitWritable(fd: number, cb: (errno: number) => void): void;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  umount2Async(target: string, flags: number): Promise<void>;
  ttyRawOutput(fd: number): void;
  sealedCopy(file: string, name: string): number;
  spawnWatched(file: string, argv: string[], envp: string[], onExit: (code: number, signal: number) => void, stdio: string): Promise<number[]>;
  signalInCgroup(pid: number, signal: number, cgroupPath: string): boolean;
  netnsCreate(file: string): Promise<void>;
  vethJoin(netns: string, bridge: string, ifname: string, mac: string, ip: string, prefix: number, gateway: string, mtu: number, metric: number): Promise<string>;
  vethLeave(netns: string, ifname: string): Promise<void>;
  layerOpen(dirfd: number, rel: string, mode: number): number;
  layerWrite(fd: number, data: Buffer): void;
  layerFinish(fd: number, uid: number, gid: number, chmod: number, atime: number, mtime: number): void;
  layerCreate(dirfd: number, rel: string, mode: number, data: Buffer, uid: number, gid: number, chmod: number, atime: number, mtime: number): void;
  copyBytes(target: Buffer, targetStart: number, source: Buffer): number;
  releaseMemory(): void;
  writeBlob(directFd: number, fd: number, data: Buffer, position: number, bounce: Buffer): Promise<boolean>;
}

// This file compiles to dist/src/native/index.js; the addon is built in place under src/native.
const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const ADDON_PATH = path.join(REPO_ROOT, 'src', 'native', 'build', 'Release', 'berth_native.node');

let binding: RawBinding | undefined;
function raw(): RawBinding {
  if (!binding) {
    try {
      binding = require(ADDON_PATH) as RawBinding;
    } catch (err) {
      throw new Error(`cannot load the berth native addon at ${ADDON_PATH} (run: node scripts/build-native.js): ${(err as Error).message}`, { cause: err });
    }
  }
  return binding;
}

// Mount flags (linux/mount.h).
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_SYNCHRONOUS = 0x10;
export const MS_REMOUNT = 0x20;
export const MS_MANDLOCK = 0x40;
export const MS_DIRSYNC = 0x80;
export const MS_NOSYMFOLLOW = 0x100;
export const MS_NOATIME = 0x400;
export const MS_NODIRATIME = 0x800;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_SILENT = 0x8000;
export const MS_UNBINDABLE = 0x20000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;
export const MS_STRICTATIME = 0x1000000;
// umount2 flags.
export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const MNT_EXPIRE = 0x4;
export const UMOUNT_NOFOLLOW = 0x8;

/**
 * Rebuilds the addon's plain error (positive errno) as the error fs would have thrown. Where one
 * addon call makes several syscalls, the one that failed (the error's own syscall) is named.
 */
function nodeError(err: unknown, fallbackSyscall: string, file: string): Error {
  const e = err as { errno?: unknown; message?: string; syscall?: unknown };
  const syscall = typeof e?.syscall === 'string' ? e.syscall : fallbackSyscall;
  if (typeof e?.errno !== 'number') return err as Error;
  const errno = e.errno;
  let code = `Unknown system error ${errno}`;
  let description = e.message ?? 'unknown error';
  try {
    code = util.getSystemErrorName(-errno);
    const entry = util.getSystemErrorMap().get(-errno);
    if (entry) description = entry[1];
  } catch {}
  const out = new Error(`${code}: ${description}, ${syscall} '${file}'`) as NodeJS.ErrnoException;
  out.code = code;
  out.errno = -errno;
  out.syscall = syscall;
  out.path = file;
  return out;
}

/** mknod(2): mode includes the file type (fs.constants.S_IFCHR, S_IFBLK, S_IFIFO, ...). */
export function mknod(file: string, mode: number, major: number, minor: number): void {
  try { raw().mknod(file, mode, major, minor); } catch (err) { throw nodeError(err, 'mknod', file); }
}

/** lsetxattr(2): sets an extended attribute without following a final symlink. */
export function lsetxattr(file: string, name: string, value: Buffer): void {
  try { raw().lsetxattr(file, name, value); } catch (err) { throw nodeError(err, 'lsetxattr', file); }
}

/** lgetxattr(2): the attribute's value, or null when the file has no such attribute (ENODATA). */
export function lgetxattr(file: string, name: string): Buffer | null {
  try { return raw().lgetxattr(file, name); } catch (err) { throw nodeError(err, 'lgetxattr', file); }
}

/** llistxattr(2): the names of the file's extended attributes. */
export function llistxattr(file: string): string[] {
  try { return raw().llistxattr(file); } catch (err) { throw nodeError(err, 'llistxattr', file); }
}

/** What lstatXattrs writes, in this order, into its Float64Array. */
export const enum EntryStat { Mode, Uid, Gid, Size, MtimeSec, Nlink, Dev, Ino, RdevMajor, RdevMinor, Length }

/**
 * lstat(2) of file into out (see EntryStat for the fields) and, when wantXattrs, llistxattr(2):
 * the attribute names, or undefined when there are none or the file system has none (ENOTSUP).
 * One call per tar entry instead of fs.lstatSync (a Stats object with Dates) and llistxattr.
 */
export function lstatXattrs(file: string, out: Float64Array, wantXattrs: boolean): string[] | undefined {
  try {
    return raw().lstatXattrs(file, out, wantXattrs);
  } catch (err) {
    throw nodeError(err, (err as { syscall?: string }).syscall ?? 'lstat', file);
  }
}

/**
 * Raises a connected socket's send buffer (SO_SNDBUFFORCE, else SO_SNDBUF up to wmem_max) so
 * that a big response can run megabytes ahead of its reader; returns the size the kernel now
 * reports (twice what was asked: it counts its bookkeeping), or undefined when the socket has
 * no file descriptor of its own (a TLS socket's is its underlying one) or the call failed.
 * Best effort: a socket that keeps its default works, only in smaller turns.
 */
export function setSocketSendBuffer(socket: import('node:net').Socket, bytes: number): number | undefined {
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  try {
    return raw().setSendBuffer(fd, bytes);
  } catch {
    return undefined;
  }
}

/** The file descriptor of a plain socket (unix or TCP), undefined for any other (a TLS socket). */
export function socketFd(socket: import('node:net').Socket): number | undefined {
  // A TLS socket's bytes must go through OpenSSL, never straight to its descriptor.
  if ((socket as { encrypted?: boolean }).encrypted) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** A close-on-exec duplicate of fd (F_DUPFD_CLOEXEC). */
export function dup(fd: number): number {
  try { return raw().dup(fd); } catch (err) { throw nodeError(err, 'dup', `fd ${fd}`); }
}

/**
 * sendfile(2) of up to count bytes of inFd from offset to outFd (non-blocking): the bytes sent,
 * 0 at the end of the file, -1 when outFd cannot take more now (see waitWritable).
 */
export function sendfile(outFd: number, inFd: number, offset: number, count: number): number {
  try { return raw().sendfile(outFd, inFd, offset, count); } catch (err) { throw nodeError(err, 'sendfile', `fd ${outFd}`); }
}

/**
 * Resolves once fd (a socket) can be written to again, polled on Node's loop (uv_poll), with 0,
 * or with the errno of a failed poll (libuv reports a socket error, such as the peer resetting the
 * connection, as EBADF): the next write on fd tells the real error.
 */
export function waitWritable(fd: number): Promise<number> {
  return new Promise((resolve, reject) => {
    try {
      raw().waitWritable(fd, resolve);
    } catch (err) {
      reject(nodeError(err, 'poll', `fd ${fd}`));
    }
  });
}

/** mount(2). source, fstype and data may be empty to pass NULL (as bind and remount need). */
export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  try {
    raw().mount(source === '' ? null : source, target, fstype === '' ? null : fstype, flags, data === '' ? null : data);
  } catch (err) {
    throw nodeError(err, 'mount', target);
  }
}

/** umount2(2). */
export function umount2(target: string, flags: number): void {
  try { raw().umount2(target, flags); } catch (err) { throw nodeError(err, 'umount2', target); }
}

/** umount2(2) on a thread of its own: unmounting an overlay can sync a whole file system. */
export async function umount2Async(target: string, flags: number): Promise<void> {
  try { await raw().umount2Async(target, flags); } catch (err) { throw nodeError(err, 'umount2', target); }
}

/** Turns off output post-processing (OPOST) on terminal `fd`, as docker's raw mode does. */
export function ttyRawOutput(fd: number): void {
  try { raw().ttyRawOutput(fd); } catch (err) { throw nodeError(err, 'tcsetattr', `fd ${fd}`); }
}

/**
 * A sealed, close-on-exec memfd copy of a file (memfd_create, sendfile, F_ADD_SEALS with SEAL,
 * SHRINK, GROW and WRITE); returns the fd, which the caller closes. Run through
 * /proc/<pid>/fd/<fd>, crun and runc take it as their own safe clone and do not copy themselves.
 */
export function sealedCopy(file: string, name: string): number {
  try { return raw().sealedCopy(file, name); } catch (err) { throw nodeError(err, 'sealedCopy', file); }
}

/**
 * posix_spawn of file (stdin /dev/null, cwd /, default signals) on libuv's thread pool, with
 * stdout and stderr on pipes whose read ends are returned; the child is reaped by the addon
 * through a pidfd polled on Node's loop, and onExit(code, signal) runs once (code -1 when killed
 * by a signal). Much lighter than child_process.spawn, which forks the whole daemon and blocks
 * its loop until the child has exec'd.
 */
export async function spawnWatched(file: string, argv: string[], envp: string[], onExit: (code: number, signal: number) => void): Promise<{ pid: number; stdoutFd: number; stderrFd: number }> {
  const { pid, fds } = await spawnPiped(file, argv, envp, onExit, 'ww');
  return { pid, stdoutFd: fds[0], stderrFd: fds[1] };
}

/**
 * spawnWatched with the child's fds 1, 2, 3... as `stdio` says, a letter each: 'n' /dev/null,
 * 'w' a pipe the child writes (fds[i] is the read end), 'r' a pipe it reads (fds[i] is the write
 * end); fds[i] is -1 for 'n'. At most 8.
 */
export async function spawnPiped(file: string, argv: string[], envp: string[], onExit: (code: number, signal: number) => void, stdio: string): Promise<{ pid: number; fds: number[] }> {
  try {
    const [pid, ...fds] = await raw().spawnWatched(file, argv, envp, onExit, stdio);
    return { pid, fds };
  } catch (err) {
    throw nodeError(err, 'spawn', file);
  }
}

/**
 * A new network namespace bind-mounted on `file` (which must exist), made on a pool thread that
 * returns to the daemon's namespace: what `unshare --net=FILE true` does, without two processes.
 */
export async function netnsCreate(file: string): Promise<void> {
  try { await raw().netnsCreate(file); } catch (err) { throw nodeError(err, 'netnsCreate', file); }
}

/** A container's veth on an existing bridge, with its address, MAC and default route (see src/native/netns.c). */
export interface VethJoin {
  netns: string;
  bridge: string;
  ifname: string;
  mac: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  /** 0: the kernel's default. */
  mtu: number;
  /** Of the default route (netavark's default is 100). */
  metric: number;
}

/**
 * Joins a container's namespace to a bridge that exists, with the netlink requests netavark's
 * bridge driver makes (and none of its firewall work); resolves with the container end's MAC.
 * Errors carry the step that failed as `syscall` (e.g. "get bridge interface", code ENODEV).
 */
export async function vethJoin(j: VethJoin): Promise<string> {
  try {
    return await raw().vethJoin(j.netns, j.bridge, j.ifname, j.mac, j.ip, j.prefixLen, j.gateway, j.mtu, j.metric);
  } catch (err) {
    const e = err as { syscall?: string };
    throw nodeError(err, e.syscall ?? 'vethJoin', j.netns);
  }
}

/** Deletes interface `ifname` (a veth: the pair goes) inside the namespace mounted at `netns`. */
export async function vethLeave(netns: string, ifname: string): Promise<void> {
  try {
    await raw().vethLeave(netns, ifname);
  } catch (err) {
    const e = err as { syscall?: string };
    throw nodeError(err, e.syscall ?? 'vethLeave', netns);
  }
}

/**
 * Sends signal to pid only if that process is in the cgroup at cgroupPath (as the OCI spec names
 * it), through a pidfd taken before the check: a signal that cannot reach a recycled pid. False
 * when the process is gone or elsewhere.
 */
export function signalInCgroup(pid: number, signal: number, cgroupPath: string): boolean {
  try { return raw().signalInCgroup(pid, signal, cgroupPath); } catch (err) { throw nodeError(err, 'pidfd_send_signal', `pid ${pid}`); }
}

/** What to do to a regular file of a layer once its body is written. */
export interface LayerFileAttrs {
  /** chown to these (-1: leave the file owned by the creator). */
  uid: number;
  gid: number;
  /** fchmod to this mode (-1: open's mode, after the umask, is already the right one). */
  chmod: number;
  /** Seconds since the epoch (fractions kept to the microsecond, as fs.futimes does). */
  atime: number;
  mtime: number;
}

/**
 * Creates a new regular file rel below the directory dirfd for writing and returns its fd:
 * openat2 with O_CREAT|O_EXCL and RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (no symlink followed,
 * nothing outside dirfd reached; plain openat on kernels without openat2). file names the entry
 * in errors.
 */
export function layerOpen(dirfd: number, rel: string, mode: number, file: string): number {
  try { return raw().layerOpen(dirfd, rel, mode); } catch (err) { throw nodeError(err, 'open', file); }
}

/** Writes all of data to fd. */
export function layerWrite(fd: number, data: Buffer, file: string): void {
  try { raw().layerWrite(fd, data); } catch (err) { throw nodeError(err, 'write', file); }
}

/** Sets owner, mode and times of a file layerOpen made, then closes it (also on failure). */
export function layerFinish(fd: number, a: LayerFileAttrs, file: string): void {
  try { raw().layerFinish(fd, a.uid, a.gid, a.chmod, a.atime, a.mtime); } catch (err) { throw nodeError(err, 'close', file); }
}

/**
 * layerOpen, layerWrite and layerFinish in one call: a whole small file costs one crossing into
 * C instead of four fs calls. Nothing stays open on failure (a file already created stays).
 */
export function layerCreate(dirfd: number, rel: string, mode: number, data: Buffer, a: LayerFileAttrs, file: string): void {
  try { raw().layerCreate(dirfd, rel, mode, data, a.uid, a.gid, a.chmod, a.atime, a.mtime); } catch (err) { throw nodeError(err, 'open', file); }
}

/**
 * Copies as much of source as fits into target at targetStart (memcpy); returns the bytes
 * copied. For targets over a SharedArrayBuffer, which Buffer.copy fills through V8's much
 * slower atomics-safe copy.
 */
export function copyBytes(target: Buffer, targetStart: number, source: Buffer): number {
  return raw().copyBytes(target, targetStart, source);
}

/**
 * Runs V8's memory-reducing full collection now and trims the C heap (memory.cc): for the main
 * thread once start-up is done, so the idle daemon gives back start-up's garbage at once rather
 * than when V8's memory reducer gets to it seconds later.
 */
export function releaseMemory(): void {
  raw().releaseMemory();
}

/** Size of the bounce buffer writeBlob needs: 1 MiB, plus room to align it to 4 KiB. */
export const BLOB_BOUNCE_BYTES = (1 << 20) + 4096;

/**
 * Writes all of data at position in a blob being stored, its aligned middle through directFd
 * (the same file opened with O_DIRECT: no page cache) and the rest through fd (blobwrite.c).
 * Resolves false if the file system refused direct I/O (all is written anyway; stop passing
 * directFd), true otherwise. directFd -1 writes everything through fd. bounce: the writer's own
 * buffer of BLOB_BOUNCE_BYTES, used by one write at a time.
 */
export async function writeBlob(directFd: number, fd: number, data: Buffer, position: number, bounce: Buffer, file: string): Promise<boolean> {
  try { return await raw().writeBlob(directFd, fd, data, position, bounce); } catch (err) { throw nodeError(err, 'write', file); }
}
