// applyLayer on real files: every entry type, metadata, whiteouts, and a real overlay mount.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { applyLayer } from '../../src/archive/apply';
import { isKind } from '../../src/common/errors';
import * as native from '../../src/native';
import { FIXED_MTIME, makeTar, sha256, tempDir } from './fixtures';

const T = FIXED_MTIME.getTime() / 1000;

test('applyLayer restores files, dirs, links, devices, fifos, owners, modes, mtimes and xattrs', async (t) => {
  const dir = tempDir(t);
  const layer = await makeTar([
    { name: 'etc/', mode: 0o755 },
    { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644 },
    { name: 'bin/su', body: 'ELF-ish', mode: 0o4755 }, // parent bin/ is implicit
    { name: 'bin/su-hardlink', type: 'link', linkname: 'bin/su' },
    { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox', uid: 7, gid: 8 },
    { name: 'home/user/', mode: 0o700, uid: 1000, gid: 1000 },
    { name: 'home/user/secret', body: 'x'.repeat(100_000), mode: 0o600, uid: 1000, gid: 1001 },
    { name: 'tmp/', mode: 0o1777 },
    { name: 'usr/bin/sgid', body: '', mode: 0o2711, gid: 50 },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
    { name: 'run/fifo', type: 'fifo', mode: 0o620 },
    { name: 'cap', body: 'binary', pax: { 'SCHILY.xattr.user.comment': 'hello', 'SCHILY.xattr.trusted.note': 'n', 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } },
    { name: 'later', body: 'first version' },
    { name: 'later', body: 'second version' }, // a later entry replaces an earlier one
  ]);
  const res = await applyLayer(Readable.from([layer]), dir);
  assert.deepEqual(res, { diffID: sha256(layer), size: layer.length });

  const st = (p: string): fs.Stats => fs.lstatSync(path.join(dir, p));
  assert.equal(fs.readFileSync(path.join(dir, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
  assert.equal(st('bin/su').mode & 0o7777, 0o4755);
  assert.equal(st('bin/su-hardlink').ino, st('bin/su').ino);
  assert.equal(st('bin/su').nlink, 2);
  assert.ok(st('bin/sh').isSymbolicLink());
  assert.equal(fs.readlinkSync(path.join(dir, 'bin/sh')), '/bin/busybox');
  assert.deepEqual([st('bin/sh').uid, st('bin/sh').gid], [7, 8]);
  assert.deepEqual([st('home/user').uid, st('home/user').gid, st('home/user').mode & 0o7777], [1000, 1000, 0o700]);
  assert.deepEqual([st('home/user/secret').uid, st('home/user/secret').gid, st('home/user/secret').mode & 0o7777, st('home/user/secret').size], [1000, 1001, 0o600, 100_000]);
  assert.equal(st('tmp').mode & 0o7777, 0o1777);
  assert.equal(st('usr/bin/sgid').mode & 0o7777, 0o2711, 'setgid survives the chown');
  assert.equal(st('usr/bin/sgid').gid, 50);
  assert.ok(st('dev/null').isCharacterDevice());
  assert.equal(st('dev/null').rdev, (1 << 8) | 3);
  assert.equal(st('dev/null').mode & 0o777, 0o666, 'device mode is not cut by the umask');
  assert.ok(st('dev/loop0').isBlockDevice());
  assert.equal(st('dev/loop0').rdev, 7 << 8);
  assert.ok(st('run/fifo').isFIFO());
  assert.equal(st('run/fifo').mode & 0o777, 0o620);
  assert.deepEqual(native.lgetxattr(path.join(dir, 'cap'), 'user.comment'), Buffer.from('hello'));
  assert.deepEqual(native.lgetxattr(path.join(dir, 'cap'), 'trusted.note'), Buffer.from('n'));
  assert.equal(native.lgetxattr(path.join(dir, 'cap'), 'trusted.overlay.redirect'), null, 'layers cannot set overlay xattrs');
  assert.equal(fs.readFileSync(path.join(dir, 'later'), 'utf8'), 'second version');
  for (const p of ['etc', 'etc/passwd', 'bin/su', 'home/user', 'home/user/secret', 'tmp', 'dev/null', 'run/fifo', 'cap']) {
    assert.equal(st(p).mtimeMs / 1000, T, `mtime of ${p}`);
  }
  assert.equal(st('bin/sh').mtimeMs / 1000, T, 'symlink mtime (lutimes)');

  // The same layer gzip-compressed: same diffID, same tree.
  const dir2 = tempDir(t);
  const gz = zlib.gzipSync(layer);
  assert.deepEqual(await applyLayer(Readable.from([gz.subarray(0, 100), gz.subarray(100)]), dir2), res);
  assert.equal(fs.readFileSync(path.join(dir2, 'home/user/secret'), 'utf8'), 'x'.repeat(100_000));
});

test('applyLayer: the root entry "./" sets the root directory metadata; entries may start with ./', async (t) => {
  const dir = tempDir(t);
  const layer = await makeTar([{ name: './', mode: 0o711 }, { name: './a/b', body: 'b' }]);
  await applyLayer(Readable.from([layer]), dir);
  assert.equal(fs.statSync(dir).mode & 0o7777, 0o711);
  assert.equal(fs.readFileSync(path.join(dir, 'a/b'), 'utf8'), 'b');
});

test('applyLayer: names are normalised ("./", "//", "/./", a trailing "/"); dot-named files are ordinary', async (t) => {
  const dir = tempDir(t);
  const layer = await makeTar([
    { name: './././d/', mode: 0o750 },
    { name: 'd//e/./f', body: 'f' },
    { name: './d/.hidden', body: 'h' },
    { name: 'd/...', body: 'dots' },
    { name: 'd/..x', body: 'x' },
    { name: 'd/e/', mode: 0o700 },
  ]);
  await applyLayer(Readable.from([layer]), dir);
  assert.equal(fs.statSync(path.join(dir, 'd')).mode & 0o7777, 0o750);
  assert.equal(fs.statSync(path.join(dir, 'd/e')).mode & 0o7777, 0o700);
  assert.equal(fs.readFileSync(path.join(dir, 'd/e/f'), 'utf8'), 'f');
  assert.equal(fs.readFileSync(path.join(dir, 'd/.hidden'), 'utf8'), 'h');
  assert.equal(fs.readFileSync(path.join(dir, 'd/...'), 'utf8'), 'dots');
  assert.equal(fs.readFileSync(path.join(dir, 'd/..x'), 'utf8'), 'x');
  assert.deepEqual(fs.readdirSync(dir), ['d']);
});

test('applyLayer: corrupt input is InvalidParameter and leaves the target empty', async (t) => {
  const dir = tempDir(t);
  const layer = await makeTar([{ name: 'a', body: 'aaaa' }, { name: 'b', body: 'b'.repeat(5000) }]);
  const gz = zlib.gzipSync(layer);
  const broken = Buffer.concat([gz.subarray(0, gz.length - 40), Buffer.from('garbage-garbage-garbage-garbage-garbage!')]);
  await assert.rejects(applyLayer(Readable.from([broken]), dir), (err: unknown) => isKind(err, 'InvalidParameter'));
  assert.deepEqual(fs.readdirSync(dir), []);
  const truncated = layer.subarray(0, 1024 + 512 + 100);
  await assert.rejects(applyLayer(Readable.from([truncated]), dir), (err: unknown) => isKind(err, 'InvalidParameter'));
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('whiteouts and opaque directories hide lower content in a real overlay mount', async (t) => {
  const base = tempDir(t);
  const lower = path.join(base, 'l1');
  const upper = path.join(base, 'l2');
  const merged = path.join(base, 'merged');
  for (const d of [lower, upper, merged]) fs.mkdirSync(d);
  await applyLayer(Readable.from([await makeTar([
    { name: 'a/', mode: 0o755 },
    { name: 'a/keep', body: 'keep' },
    { name: 'a/gone', body: 'gone' },
    { name: 'o/', mode: 0o755 },
    { name: 'o/old', body: 'old' },
    { name: 'o/sub/deep', body: 'deep' },
  ])]), lower);
  await applyLayer(Readable.from([await makeTar([
    { name: 'a/', mode: 0o755 },
    { name: 'a/.wh.gone', body: '' },
    { name: 'o/', mode: 0o755 },
    { name: 'o/.wh..wh..opq', body: '' },
    { name: 'o/new', body: 'new' },
    { name: '.wh..wh.plnk/', mode: 0o700 }, // aufs metadata: skipped
  ])]), upper);

  const wh = fs.lstatSync(path.join(upper, 'a/gone'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout is a 0/0 char device');
  assert.deepEqual(native.lgetxattr(path.join(upper, 'o'), 'trusted.overlay.opaque'), Buffer.from('y'));
  assert.equal(fs.existsSync(path.join(upper, '.wh..wh.plnk')), false);
  assert.equal(fs.existsSync(path.join(upper, 'o/.wh..wh..opq')), false);

  native.mount('overlay', merged, 'overlay', native.MS_RDONLY, `lowerdir=${upper}:${lower}`);
  t.after(() => { try { native.umount2(merged, native.MNT_DETACH); } catch {} });
  assert.deepEqual(fs.readdirSync(path.join(merged, 'a')).sort(), ['keep']);
  assert.deepEqual(fs.readdirSync(path.join(merged, 'o')).sort(), ['new']);
  assert.equal(fs.readFileSync(path.join(merged, 'a/keep'), 'utf8'), 'keep');
  assert.equal(fs.existsSync(path.join(merged, 'o/sub/deep')), false);
  native.umount2(merged, 0);
});

test('applyLayer: megabytes in odd-sized chunks reach the extraction thread intact and in order', async (t) => {
  // Bodies cross the 1 MiB staging buffers (which the thread hands back for reuse) at every
  // offset; each file must come out byte for byte.
  const bodies = Array.from({ length: 12 }, (_, i) => randomBytes(((i * 977) % 3000) * 1024 + i * 13));
  const layer = await makeTar(bodies.map((body, i) => ({ name: `d${i % 3}/f${i}`, body })));
  const chunks: Buffer[] = [];
  for (let off = 0, step = 1; off < layer.length; off += step, step = (step * 7919) % 300_000 + 1) chunks.push(layer.subarray(off, off + step));
  const dir = tempDir(t, 'big');
  const res = await applyLayer(Readable.from(chunks), dir);
  assert.equal(res.diffID, sha256(layer));
  bodies.forEach((body, i) => assert.ok(fs.readFileSync(path.join(dir, `d${i % 3}`, `f${i}`)).equals(body), `f${i}`));
});
