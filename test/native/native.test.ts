// The native addon against the real kernel: device nodes, fifos, xattrs, mount/umount.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as native from '../../src/native';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-storage-test-native-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('mknod makes character devices and fifos', (t) => {
  const dir = tempDir(t);
  native.mknod(path.join(dir, 'null'), fs.constants.S_IFCHR | 0o666, 1, 3);
  const st = fs.lstatSync(path.join(dir, 'null'));
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, (1 << 8) | 3);
  native.mknod(path.join(dir, 'fifo'), fs.constants.S_IFIFO | 0o600, 0, 0);
  assert.ok(fs.lstatSync(path.join(dir, 'fifo')).isFIFO());
});

test('mknod errors look like fs errors', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'x');
  fs.writeFileSync(file, '');
  assert.throws(() => native.mknod(file, fs.constants.S_IFIFO | 0o600, 0, 0), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, 'EEXIST');
    assert.equal(err.errno, -17);
    assert.equal(err.syscall, 'mknod');
    assert.equal(err.path, file);
    assert.match(err.message, /^EEXIST: .*, mknod '.*\/x'$/);
    return true;
  });
});

test('xattrs: set, get (binary-safe), list, absent is null, symlinks are not followed', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, 'data');
  const value = Buffer.from([0xff, 0x00, 0x80, 0x41]);
  native.lsetxattr(file, 'trusted.berth-test', value);
  native.lsetxattr(file, 'user.empty', Buffer.alloc(0));
  assert.deepEqual(native.lgetxattr(file, 'trusted.berth-test'), value);
  assert.deepEqual(native.lgetxattr(file, 'user.empty'), Buffer.alloc(0));
  assert.equal(native.lgetxattr(file, 'user.absent'), null);
  assert.deepEqual(native.llistxattr(file).sort(), ['trusted.berth-test', 'user.empty']);

  const link = path.join(dir, 'link');
  fs.symlinkSync(file, link);
  assert.equal(native.lgetxattr(link, 'trusted.berth-test'), null);
  native.lsetxattr(link, 'trusted.on-link', Buffer.from('y'));
  assert.deepEqual(native.lgetxattr(link, 'trusted.on-link'), Buffer.from('y'));
  assert.equal(native.lgetxattr(file, 'trusted.on-link'), null);

  assert.throws(() => native.llistxattr(path.join(dir, 'missing')), { code: 'ENOENT', syscall: 'llistxattr' });
});

test('mount and umount2: a tmpfs and a read-only bind mount', (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'mnt');
  const bind = path.join(dir, 'bind');
  fs.mkdirSync(target);
  fs.mkdirSync(bind);
  t.after(() => {
    for (const p of [bind, target]) try { native.umount2(p, native.MNT_DETACH); } catch {}
  });
  native.mount('tmpfs', target, 'tmpfs', native.MS_NOSUID, 'size=1m,mode=0755');
  fs.writeFileSync(path.join(target, 'hello'), 'hi');
  assert.equal(fs.statSync(target).mode & 0o777, 0o755);

  native.mount(target, bind, '', native.MS_BIND, '');
  native.mount('', bind, '', native.MS_REMOUNT | native.MS_BIND | native.MS_RDONLY, '');
  assert.equal(fs.readFileSync(path.join(bind, 'hello'), 'utf8'), 'hi');
  assert.throws(() => fs.writeFileSync(path.join(bind, 'nope'), 'x'), { code: 'EROFS' });

  native.umount2(bind, 0);
  native.umount2(target, 0);
  assert.equal(fs.existsSync(path.join(target, 'hello')), false);
  assert.throws(() => native.umount2(target, 0), { code: 'EINVAL', syscall: 'umount2', path: target });
  assert.throws(() => native.mount('none', target, 'no-such-fs', 0, ''), { code: 'ENODEV', syscall: 'mount' });
});

test('sealedCopy: a memfd with the same bytes that nothing can change', (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'bin');
  fs.writeFileSync(src, 'some bytes\n', { mode: 0o755 });
  const fd = native.sealedCopy(src, 'bin');
  t.after(() => fs.closeSync(fd));
  const p = `/proc/self/fd/${fd}`;
  assert.match(fs.readlinkSync(p), /^\/memfd:bin/);
  assert.equal(fs.readFileSync(p, 'utf8'), 'some bytes\n');
  // F_SEAL_WRITE and F_SEAL_GROW/SHRINK: writing, appending and truncating all fail.
  assert.throws(() => fs.writeFileSync(p, 'other'), (err: NodeJS.ErrnoException) => err.code === 'EPERM');
  assert.throws(() => fs.appendFileSync(p, 'more'), (err: NodeJS.ErrnoException) => err.code === 'EPERM');
  assert.equal(fs.readFileSync(p, 'utf8'), 'some bytes\n');
  assert.throws(() => native.sealedCopy(path.join(dir, 'missing'), 'x'), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
});

test('spawnWatched: pipes, exit code or signal, reaped by the addon', async () => {
  const net = await import('node:net');
  const read = (fd: number): Promise<string> => new Promise((resolve) => {
    let s = '';
    const sock = new net.Socket({ fd, readable: true, writable: false });
    sock.on('data', (b: Buffer) => (s += b.toString()));
    sock.on('close', () => resolve(s));
  });
  let exit!: Promise<[number, number]>;
  const onExit = (): ((code: number, signal: number) => void) => {
    let done!: (v: [number, number]) => void;
    exit = new Promise((r) => (done = r));
    return (code, signal) => done([code, signal]);
  };
  const a = await native.spawnWatched('/bin/sh', ['sh', '-c', 'echo "$X $(pwd)"; read l || echo eof >&2; exit 7'], ['X=1'], onExit());
  assert.deepEqual(await Promise.all([read(a.stdoutFd), read(a.stderrFd), exit]), ['1 /\n', 'eof\n', [7, 0]]);
  // Not left a zombie: the addon waited for it.
  assert.equal(fs.existsSync(`/proc/${a.pid}`), false);
  const b = await native.spawnWatched('/bin/sleep', ['sleep', '30'], [], onExit());
  process.kill(b.pid, 'SIGKILL');
  assert.deepEqual(await exit, [-1, 9]);
  fs.closeSync(b.stdoutFd);
  fs.closeSync(b.stderrFd);
  await assert.rejects(native.spawnWatched('/no/such/file', ['x'], [], () => {}), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
});

test('netnsCreate: a new network namespace on the file; every thread of the process stays in its own', async (t) => {
  const dir = tempDir(t);
  const own = (): string[] => fs.readdirSync('/proc/self/task').map((tid) => {
    try { return fs.readlinkSync(`/proc/self/task/${tid}/ns/net`); } catch { return 'gone'; }
  }).filter((l) => l !== 'gone');
  const before = fs.readlinkSync('/proc/self/ns/net');
  const files = Array.from({ length: 8 }, (_, i) => path.join(dir, `ns${i}`));
  for (const f of files) fs.writeFileSync(f, '');
  // More at once than the thread pool has threads, so that threads are reused after switching.
  // Unmounted in finally: t.after would remove the temp dir first.
  try {
    await Promise.all(files.map((f) => native.netnsCreate(f)));
    const inodes = new Set(files.map((f) => fs.statSync(f).ino));
    assert.equal(inodes.size, files.length, 'one namespace each');
    assert.ok(!inodes.has(fs.statSync('/proc/self/ns/net').ino), 'not the daemon\'s own');
    assert.equal(fs.statfsSync(files[0]).type, 0x6e736673, 'an nsfs bind mount');
    assert.deepEqual(new Set(own()), new Set([before]), 'every thread is back in the process\'s namespace');
  } finally {
    for (const f of files) try { native.umount2(f, native.MNT_DETACH); } catch {}
  }
  await assert.rejects(native.netnsCreate(path.join(dir, 'missing', 'x')), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  assert.deepEqual(new Set(own()), new Set([before]));
});

test('vethJoin and vethLeave: errors name the step that failed', async (t) => {
  const dir = tempDir(t);
  const ns = path.join(dir, 'ns');
  fs.writeFileSync(ns, '');
  await native.netnsCreate(ns);
  try {
    await checkJoinErrors(ns);
  } finally {
    native.umount2(ns, native.MNT_DETACH);
  }
});

async function checkJoinErrors(ns: string): Promise<void> {
  const join = { netns: ns, bridge: 'berthnobridge0', ifname: 'eth0', mac: '02:42:0a:00:00:02', ip: '10.0.0.2', prefixLen: 24, gateway: '10.0.0.1', mtu: 0, metric: 100 };
  await assert.rejects(native.vethJoin(join), (err: NodeJS.ErrnoException) => err.code === 'ENODEV' && err.syscall === 'get bridge interface');
  // lo is a device, not a bridge.
  await assert.rejects(native.vethJoin({ ...join, bridge: 'lo' }), (err: NodeJS.ErrnoException) => err.syscall === 'get bridge interface (not a bridge)');
  await assert.rejects(native.vethLeave(ns, 'eth0'), (err: NodeJS.ErrnoException) => err.code === 'ENODEV');
  await assert.rejects(native.vethJoin({ ...join, mac: 'nonsense' }), /bad MAC address/);
}

test('signalInCgroup: signals a process only while it is in the given cgroup', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  try {
    const pid = child.pid!;
    // Its path in any hierarchy (v1 "N:controllers:/path", cgroup2 "0::/path").
    const own = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean)[0].split(':').slice(2).join(':');
    assert.equal(native.signalInCgroup(pid, 0, `${own === '/' ? '' : own}/not-this-one`), false);
    assert.equal(native.signalInCgroup(pid, 9, '/berth-no-such-cgroup'), false);
    assert.equal(child.exitCode, null, 'still running');
    assert.equal(native.signalInCgroup(pid, 9, own), true);
    assert.equal(await exited, 'SIGKILL');
    assert.equal(native.signalInCgroup(pid, 9, own), false, 'gone: nothing to signal');
  } finally {
    child.kill('SIGKILL');
  }
});

test('umount2Async: many at once, each on its own thread; errors look like fs errors', async (t) => {
  const dir = tempDir(t);
  const targets = Array.from({ length: 12 }, (_, i) => path.join(dir, `m${i}`));
  try {
    for (const m of targets) {
      fs.mkdirSync(m);
      native.mount('tmpfs', m, 'tmpfs', native.MS_NOSUID, 'size=1m');
    }
    await Promise.all(targets.map((m) => native.umount2Async(m, 0)));
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    for (const m of targets) assert.ok(!mounts.includes(` ${m} `), `${m} is unmounted`);
    await assert.rejects(native.umount2Async(targets[0], 0), (err: NodeJS.ErrnoException) => err.code === 'EINVAL' && err.syscall === 'umount2');
  } finally {
    for (const m of targets) try { native.umount2(m, native.MNT_DETACH); } catch {}
  }
});

test('lstatXattrs: lstat fields and xattr names in one call, symlinks not followed', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-native-lstatx-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, 'hello');
  fs.chownSync(file, 1234, 5678);
  fs.utimesSync(file, new Date('2001-02-03T04:05:06.7Z'), new Date('2001-02-03T04:05:06.7Z'));
  fs.linkSync(file, path.join(dir, 'hard'));
  const out = new Float64Array(native.EntryStat.Length);
  assert.equal(native.lstatXattrs(file, out, true), undefined, 'no xattrs: undefined, not []');
  const st = fs.lstatSync(file);
  assert.deepEqual([...out], [st.mode, 1234, 5678, 5, Math.floor(st.mtimeMs / 1000), 2, st.dev, st.ino, 0, 0]);

  native.lsetxattr(file, 'user.b', Buffer.from('2'));
  native.lsetxattr(file, 'user.a', Buffer.from('1'));
  assert.deepEqual(native.lstatXattrs(file, out, true)?.sort(), ['user.a', 'user.b']);
  assert.equal(native.lstatXattrs(file, out, false), undefined, 'names only when asked for');

  // A symlink is described itself (lstat), never its target.
  fs.symlinkSync(file, path.join(dir, 'link'));
  assert.equal(native.lstatXattrs(path.join(dir, 'link'), out, true), undefined);
  assert.equal(out[native.EntryStat.Mode] & fs.constants.S_IFMT, fs.constants.S_IFLNK);

  native.mknod(path.join(dir, 'null'), fs.constants.S_IFCHR | 0o666, 1, 3);
  native.lstatXattrs(path.join(dir, 'null'), out, true);
  assert.deepEqual([out[native.EntryStat.RdevMajor], out[native.EntryStat.RdevMinor]], [1, 3]);

  assert.throws(() => native.lstatXattrs(path.join(dir, 'missing'), out, true), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.syscall === 'lstat' && err.path === path.join(dir, 'missing'));
  assert.throws(() => native.lstatXattrs(`${dir}/${'x'.repeat(5000)}`, out, true), (err: NodeJS.ErrnoException) => err.code === 'ENAMETOOLONG');
});

/** How many fds this process has open (to see that failures leave none behind). */
function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

test('layerCreate and layerOpen/layerWrite/layerFinish: body, owner, mode (setuid too) and times, relative to a dir fd', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'sub'));
  const dirfd = fs.openSync(dir, 'r');
  t.after(() => fs.closeSync(dirfd));
  const fds = openFds();

  // Whole file in one call; chown, then chmod (setuid survives, as chown would clear it), times
  // to the microsecond as fs.futimes keeps them.
  native.layerCreate(dirfd, 'sub/small', 0o600, Buffer.from('hello'), { uid: 1234, gid: 5678, chmod: 0o4755, atime: 1_600_000_000.25, mtime: 1_500_000_000.1234567 }, path.join(dir, 'sub/small'));
  let st = fs.statSync(path.join(dir, 'sub/small'), { bigint: true });
  assert.equal(fs.readFileSync(path.join(dir, 'sub/small'), 'utf8'), 'hello');
  assert.deepEqual([Number(st.uid), Number(st.gid), Number(st.mode & 0o7777n)], [1234, 5678, 0o4755]);
  assert.equal(st.mtimeNs, 1_500_000_000_123_456_000n);
  assert.equal(st.atimeNs, 1_600_000_000_250_000_000n);

  // -1: no chown (root-owned, as created) and no chmod (open's mode, through the umask).
  const old = process.umask(0o022);
  t.after(() => process.umask(old));
  native.layerCreate(dirfd, 'empty', 0o644, Buffer.alloc(0), { uid: -1, gid: -1, chmod: -1, atime: 0, mtime: 86400 }, 'empty');
  st = fs.statSync(path.join(dir, 'empty'), { bigint: true });
  assert.deepEqual([Number(st.uid), Number(st.size), Number(st.mode & 0o7777n), Number(st.mtimeMs)], [0, 0, 0o644, 86_400_000]);

  // In pieces.
  const fd = native.layerOpen(dirfd, 'sub/big', 0o640, 'sub/big');
  native.layerWrite(fd, Buffer.alloc(3 << 20, 'a'), 'sub/big');
  native.layerWrite(fd, Buffer.from('tail'), 'sub/big');
  native.layerFinish(fd, { uid: 7, gid: 8, chmod: -1, atime: 10, mtime: 20 }, 'sub/big');
  st = fs.statSync(path.join(dir, 'sub/big'), { bigint: true });
  assert.deepEqual([Number(st.size), Number(st.uid), Number(st.gid), Number(st.mtimeMs)], [(3 << 20) + 4, 7, 8, 20_000]);
  assert.equal(fs.readFileSync(path.join(dir, 'sub/big')).subarray(-4).toString(), 'tail');
  assert.equal(openFds(), fds, 'every fd is closed');
});

test('layerOpen/layerCreate never leave the dir fd: symlinks, "..", absolute names; failures close what they opened', (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(root);
  fs.mkdirSync(outside);
  fs.symlinkSync(outside, path.join(root, 'abs-link'));
  fs.symlinkSync('../outside', path.join(root, 'rel-link'));
  fs.symlinkSync('.', path.join(root, 'self-link'));
  fs.writeFileSync(path.join(root, 'exists'), 'old');
  const dirfd = fs.openSync(root, 'r');
  t.after(() => fs.closeSync(dirfd));
  const fds = openFds();
  const attrs = { uid: -1, gid: -1, chmod: -1, atime: 0, mtime: 0 };

  // A symlink anywhere on the path is refused by the kernel (RESOLVE_NO_SYMLINKS), even one
  // that stays inside.
  for (const rel of ['abs-link/x', 'rel-link/x', 'self-link/x']) {
    assert.throws(() => native.layerCreate(dirfd, rel, 0o644, Buffer.from('x'), attrs, rel), { code: 'ELOOP', syscall: 'open', path: rel });
    assert.throws(() => native.layerOpen(dirfd, rel, 0o644, rel), { code: 'ELOOP' });
  }
  // ".." and absolute names cannot leave the root (RESOLVE_BENEATH).
  for (const rel of ['../outside/x', `${outside}/x`]) {
    assert.throws(() => native.layerCreate(dirfd, rel, 0o644, Buffer.from('x'), attrs, rel), { code: 'EXDEV' });
  }
  assert.deepEqual(fs.readdirSync(outside), []);
  // A final symlink or an existing file is never written through: O_CREAT|O_EXCL.
  assert.throws(() => native.layerCreate(dirfd, 'abs-link', 0o644, Buffer.from('x'), attrs, 'abs-link'), { code: 'EEXIST' });
  assert.throws(() => native.layerCreate(dirfd, 'exists', 0o644, Buffer.from('x'), attrs, 'exists'), { code: 'EEXIST' });
  assert.equal(fs.readFileSync(path.join(root, 'exists'), 'utf8'), 'old');

  const fd = native.layerOpen(dirfd, 'pieces', 0o644, 'pieces');
  native.layerFinish(fd, attrs, 'pieces');
  assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, 'layerFinish closed the fd');
  assert.equal(openFds(), fds);

  // A failure after the open (a write to a full file system) closes the file, and the error
  // names the syscall that failed.
  const small = path.join(dir, 'small');
  fs.mkdirSync(small);
  native.mount('tmpfs', small, 'tmpfs', 0, 'size=64k');
  try {
    const smallfd = fs.openSync(small, 'r');
    try {
      assert.throws(() => native.layerCreate(smallfd, 'big', 0o644, Buffer.alloc(1 << 20), attrs, 'big'), { code: 'ENOSPC', syscall: 'write', path: 'big' });
    } finally {
      fs.closeSync(smallfd);
    }
  } finally {
    native.umount2(small, native.MNT_DETACH);
  }
  assert.equal(openFds(), fds);
});

test('copyBytes copies into SharedArrayBuffer-backed buffers, as much as fits', () => {
  const target = Buffer.from(new SharedArrayBuffer(10));
  assert.equal(native.copyBytes(target, 2, Buffer.from('abcd')), 4);
  assert.equal(native.copyBytes(target, 8, Buffer.from('xyz')), 2);
  assert.equal(native.copyBytes(target, 10, Buffer.from('q')), 0);
  assert.equal(target.toString('latin1'), '\0\0abcd\0\0xy');
  assert.throws(() => native.copyBytes(target, 11, Buffer.from('q')), RangeError);
});

test('writeBlob writes every byte at its offset, direct or not; a failed write rejects like fs', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'blob');
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  const direct = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_DIRECT);
  const bounce = Buffer.alloc(native.BLOB_BOUNCE_BYTES);
  const expected: Buffer[] = [];
  let pos = 0;
  try {
    // Aligned and not, bigger than the bounce buffer, smaller than a block, and all buffered.
    for (const [size, useDirect] of [[1 << 20, true], [5000, true], [(3 << 20) + 123, true], [10, true], [200_000, false], [70_000, true]] as const) {
      const piece = Buffer.alloc(size, expected.length + 1);
      assert.equal(await native.writeBlob(useDirect ? direct : -1, fd, piece, pos, bounce, file), true);
      expected.push(piece);
      pos += size;
    }
    assert.deepEqual(fs.readFileSync(file), Buffer.concat(expected));
    const readOnly = fs.openSync(file, 'r');
    try {
      await assert.rejects(native.writeBlob(-1, readOnly, Buffer.from('x'), 0, bounce, file), { code: 'EBADF', syscall: 'write', path: file });
    } finally {
      fs.closeSync(readOnly);
    }
    await assert.rejects(native.writeBlob(direct, fd, Buffer.from('x'), 0, Buffer.alloc(10), file), /bounce must be a Buffer/);
  } finally {
    fs.closeSync(direct);
    fs.closeSync(fd);
  }
});
