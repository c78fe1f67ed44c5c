// Tar creation: determinism, round trips through applyLayer, GNU tar compatibility, overlay
// upper → OCI layer conversion, and docker-diff changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import { Readable, Writable } from 'node:stream';
import { applyLayer } from '../../src/archive/apply';
import { overlayUpperToLayer, tarDirectory, tarDirectoryProducer } from '../../src/archive/create';
import { changes, ChangeKind } from '../../src/archive/changes';
import * as native from '../../src/native';
import { TarReader, type TarHeader } from '../../src/archive/reader';
import { collect, listTar, sha256, tempDir } from './fixtures';

const LONG = `${'long-directory-name-'.repeat(4)}/${'x'.repeat(120)}`;

/** A tree with every kind of entry the writer has to handle. */
function buildTree(root: string): void {
  const p = (rel: string): string => path.join(root, rel);
  fs.mkdirSync(p('etc'), { mode: 0o755 });
  fs.writeFileSync(p('etc/hosts'), '127.0.0.1 localhost\n');
  fs.mkdirSync(p('bin'));
  fs.writeFileSync(p('bin/busybox'), Buffer.alloc(200_000, 7));
  fs.chmodSync(p('bin/busybox'), 0o4755);
  fs.linkSync(p('bin/busybox'), p('bin/ls'));
  fs.linkSync(p('bin/busybox'), p('bin/cat'));
  fs.symlinkSync('busybox', p('bin/sh'));
  fs.symlinkSync(`/${'t'.repeat(150)}`, p('bin/long-target'));
  fs.mkdirSync(p('dev'));
  native.mknod(p('dev/null'), fs.constants.S_IFCHR | 0o666, 1, 3);
  native.mknod(p('dev/sda'), fs.constants.S_IFBLK | 0o660, 8, 0);
  native.mknod(p('fifo'), fs.constants.S_IFIFO | 0o600, 0, 0);
  fs.mkdirSync(p('tmp'));
  fs.chmodSync(p('tmp'), 0o1777);
  fs.mkdirSync(path.dirname(p(LONG)), { recursive: true });
  fs.writeFileSync(p(LONG), 'deep');
  fs.writeFileSync(p('unicodé-ñame'), 'u');
  fs.writeFileSync(p('owned'), 'o');
  fs.chownSync(p('owned'), 1234, 5678);
  fs.writeFileSync(p('big-ids'), 'b');
  fs.chownSync(p('big-ids'), 3_000_000, 3_000_001); // beyond ustar's 7 octal digits
  native.lsetxattr(p('bin/busybox'), 'trusted.bin', Buffer.from([0x01, 0x00, 0xff, 0xfe])); // binary value
  native.lsetxattr(p('etc'), 'user.dir', Buffer.from('on a dir'));
  const old = new Date('2001-01-01T00:00:00Z');
  for (const rel of ['etc/hosts', 'etc', 'bin', 'tmp', 'dev']) fs.utimesSync(p(rel), old, old);
}

test('tarDirectory is deterministic and round-trips through applyLayer exactly', async (t) => {
  const base = tempDir(t, 'create');
  const src = path.join(base, 'src');
  const copy = path.join(base, 'copy');
  fs.mkdirSync(src);
  fs.mkdirSync(copy);
  buildTree(src);

  const first = await collect(tarDirectory(src));
  const second = await collect(tarDirectory(src));
  assert.equal(sha256(first), sha256(second), 'same tree, same bytes');

  const applied = await applyLayer(Readable.from([first]), copy);
  assert.equal(applied.diffID, sha256(first));
  const third = await collect(tarDirectory(copy));
  assert.equal(sha256(third), sha256(first), 'tar(apply(tar(tree))) == tar(tree)');

  const st = (rel: string): fs.Stats => fs.lstatSync(path.join(copy, rel));
  assert.equal(st('bin/ls').ino, st('bin/busybox').ino);
  assert.equal(st('bin/cat').ino, st('bin/busybox').ino);
  assert.equal(st('bin/busybox').mode & 0o7777, 0o4755);
  assert.deepEqual(native.lgetxattr(path.join(copy, 'bin/busybox'), 'trusted.bin'), Buffer.from([0x01, 0x00, 0xff, 0xfe]));
  assert.deepEqual(native.lgetxattr(path.join(copy, 'etc'), 'user.dir'), Buffer.from('on a dir'));
  assert.equal(fs.readlinkSync(path.join(copy, 'bin/long-target')), `/${'t'.repeat(150)}`);
  assert.equal(fs.readFileSync(path.join(copy, LONG), 'utf8'), 'deep');
  assert.equal(fs.readFileSync(path.join(copy, 'unicodé-ñame'), 'utf8'), 'u');
  assert.deepEqual([st('owned').uid, st('owned').gid], [1234, 5678]);
  assert.deepEqual([st('big-ids').uid, st('big-ids').gid], [3_000_000, 3_000_001]);
  assert.equal(st('dev/sda').rdev, 8 << 8);
  assert.equal(st('tmp').mode & 0o7777, 0o1777);
  assert.equal(st('etc').mtime.toISOString(), '2001-01-01T00:00:00.000Z');

  // Hardlinks point at the first path in sorted order; entries come in sorted order.
  const entries = await listTar(first);
  const names = entries.map((e) => e.name);
  assert.ok(names.indexOf('bin/') < names.indexOf('bin/busybox'));
  assert.deepEqual(entries.find((e) => e.name === 'bin/cat'), { name: 'bin/cat', type: 'link', linkname: 'bin/busybox', pax: null });
  assert.ok(!names.includes('./'), 'no root entry by default');
});

test('GNU tar reads tarDirectory output (long names, xattrs, devices)', async (t) => {
  const base = tempDir(t, 'create');
  const src = path.join(base, 'src');
  const out = path.join(base, 'gnu');
  fs.mkdirSync(src);
  fs.mkdirSync(out);
  buildTree(src);
  const archive = path.join(base, 'a.tar');
  fs.writeFileSync(archive, await collect(tarDirectory(src)));
  const res = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', archive, '-C', out], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  assert.equal(fs.readFileSync(path.join(out, LONG), 'utf8'), 'deep');
  assert.equal(fs.lstatSync(path.join(out, 'bin/ls')).ino, fs.lstatSync(path.join(out, 'bin/busybox')).ino);
  assert.deepEqual(native.lgetxattr(path.join(out, 'bin/busybox'), 'trusted.bin'), Buffer.from([0x01, 0x00, 0xff, 0xfe]));
  assert.equal(fs.lstatSync(path.join(out, 'big-ids')).uid, 3_000_000);
  assert.ok(fs.lstatSync(path.join(out, 'dev/null')).isCharacterDevice());
});

test('overlayUpperToLayer turns whiteout devices and opaque dirs into OCI whiteouts, and back', async (t) => {
  const base = tempDir(t, 'create');
  const upper = path.join(base, 'upper');
  const again = path.join(base, 'again');
  fs.mkdirSync(upper);
  fs.mkdirSync(again);
  fs.mkdirSync(path.join(upper, 'etc'));
  fs.writeFileSync(path.join(upper, 'etc/new.conf'), 'new');
  native.mknod(path.join(upper, 'etc/removed.conf'), fs.constants.S_IFCHR, 0, 0);
  fs.mkdirSync(path.join(upper, 'var'));
  native.lsetxattr(path.join(upper, 'var'), 'trusted.overlay.opaque', Buffer.from('y'));
  fs.writeFileSync(path.join(upper, 'var/only'), 'only');
  native.mknod(path.join(upper, 'dev-null'), fs.constants.S_IFCHR | 0o666, 1, 3); // a real device stays a device

  const layer = await collect(overlayUpperToLayer(upper));
  const entries = await listTar(layer);
  assert.deepEqual(entries.map((e) => `${e.type} ${e.name}`), [
    'character-device dev-null',
    'directory etc/',
    'file etc/new.conf',
    'file etc/.wh.removed.conf', // sorted by the original name, removed.conf
    'directory var/',
    'file var/.wh..wh..opq',
    'file var/only',
  ]);
  assert.ok(entries.every((e) => !JSON.stringify(e.pax ?? {}).includes('trusted.overlay')), 'no overlay xattrs in the layer');

  const res = await applyLayer(Readable.from([layer]), again);
  assert.equal(res.diffID, sha256(layer));
  const wh = fs.lstatSync(path.join(again, 'etc/removed.conf'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
  assert.deepEqual(native.lgetxattr(path.join(again, 'var'), 'trusted.overlay.opaque'), Buffer.from('y'));
  assert.equal(sha256(await collect(overlayUpperToLayer(again))), sha256(layer));
});

test('changes reports added, modified and deleted paths like docker diff', async (t) => {
  const base = tempDir(t, 'create');
  const lower = path.join(base, 'lower');
  const upper = path.join(base, 'upper');
  const merged = path.join(base, 'merged');
  const work = path.join(base, 'work');
  for (const d of [lower, upper, merged, work]) fs.mkdirSync(d);
  fs.mkdirSync(path.join(lower, 'etc'));
  fs.writeFileSync(path.join(lower, 'etc/hosts'), 'old');
  fs.writeFileSync(path.join(lower, 'etc/motd'), 'hello');
  fs.mkdirSync(path.join(lower, 'var/cache'), { recursive: true });
  fs.writeFileSync(path.join(lower, 'var/cache/a'), 'a');
  fs.mkdirSync(path.join(lower, 'untouched'));
  fs.writeFileSync(path.join(lower, 'untouched/file'), 'same');

  // Make the changes through a real overlay mount, as a container would.
  native.mount('overlay', merged, 'overlay', 0, `lowerdir=${lower},upperdir=${upper},workdir=${work}`);
  t.after(() => { try { native.umount2(merged, native.MNT_DETACH); } catch {} });
  fs.writeFileSync(path.join(merged, 'etc/hosts'), 'new');
  fs.rmSync(path.join(merged, 'etc/motd'));
  fs.mkdirSync(path.join(merged, 'app/data'), { recursive: true });
  fs.writeFileSync(path.join(merged, 'app/data/x'), 'x');
  fs.rmSync(path.join(merged, 'var/cache'), { recursive: true });
  fs.mkdirSync(path.join(merged, 'var/cache'));
  fs.writeFileSync(path.join(merged, 'var/cache/b'), 'b');
  fs.readFileSync(path.join(merged, 'untouched/file'));
  native.umount2(merged, 0);

  assert.deepEqual(changes(upper, [lower]), [
    { Path: '/app', Kind: ChangeKind.Added },
    { Path: '/app/data', Kind: ChangeKind.Added },
    { Path: '/app/data/x', Kind: ChangeKind.Added },
    { Path: '/etc', Kind: ChangeKind.Modified },
    { Path: '/etc/hosts', Kind: ChangeKind.Modified },
    { Path: '/etc/motd', Kind: ChangeKind.Deleted },
    { Path: '/var', Kind: ChangeKind.Modified },
    { Path: '/var/cache', Kind: ChangeKind.Modified },
    { Path: '/var/cache/a', Kind: ChangeKind.Deleted },
    { Path: '/var/cache/b', Kind: ChangeKind.Added },
  ]);
});

/** Open file descriptors of this process. */
function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Files below dir this process has open. */
function filesOpenIn(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) out.push(target);
    } catch {}
  }
  return out;
}

test('TarProducer.writeTo writes the same bytes as the stream, reusing a few chunks', async (t) => {
  const dir = tempDir(t, 'create-writeto');
  buildTree(dir);
  // Enough data for many 1 MiB chunks, with bodies crossing chunk boundaries.
  for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(dir, `blob-${i}`), Buffer.alloc(700_000 + i * 1000, i));
  const expected = sha256(await collect(tarDirectory(dir)));

  const hash = createHash('sha256');
  const arrayBuffers = new Set<ArrayBufferLike>();
  let chunks = 0;
  // A slow consumer: each chunk is "written" a tick later, as a socket would.
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      arrayBuffers.add(chunk.buffer);
      chunks++;
      setImmediate(cb);
    },
  });
  const fdsBefore = openFds();
  await tarDirectoryProducer(dir).writeTo(sink);
  assert.equal(`sha256:${hash.digest('hex')}`, expected);
  assert.ok(chunks >= 8, `${chunks} chunks`);
  assert.ok(arrayBuffers.size <= 5, `${arrayBuffers.size} buffers for ${chunks} chunks: chunks are not reused`);
  assert.equal(openFds(), fdsBefore);
});

test('TarProducer.writeTo stops reading and closes its file when the destination fails', async (t) => {
  const dir = tempDir(t, 'create-writeto-fail');
  fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(20 << 20, 1));
  const fdsBefore = openFds();
  let written = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      written += chunk.length;
      if (written > 3 << 20) cb(new Error('client went away'));
      else setImmediate(cb);
    },
  });
  await assert.rejects(tarDirectoryProducer(dir).writeTo(sink), /client went away/);
  assert.ok(written < 10 << 20, `kept producing after the failure: ${written} bytes`);
  assert.equal(openFds(), fdsBefore, 'the file being read was closed');
});

/**
 * A connected pair of unix sockets: the server end's descriptor (a duplicate, as sendTar uses)
 * and the client end, paused.
 */
async function socketPair(t: { after(fn: () => void): void }): Promise<{ fd: number; server: net.Socket; client: net.Socket }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-sock-'));
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(path.join(dir, 's'), resolve));
  const accepted = new Promise<net.Socket>((resolve) => srv.once('connection', resolve));
  const client = net.connect(path.join(dir, 's'));
  client.pause();
  const server = await accepted;
  const fd = native.dup(native.socketFd(server)!);
  t.after(() => {
    client.destroy();
    server.destroy();
    srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { fd, server, client };
}

function readAllFrom(sock: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  sock.on('data', (b: Buffer) => parts.push(b));
  sock.resume();
  return new Promise((resolve, reject) => {
    sock.on('end', () => resolve(Buffer.concat(parts)));
    sock.on('error', reject);
  });
}

test('TarProducer.writeToSocket: the same bytes, big bodies by sendfile, a shrunk file padded with zeros', async (t) => {
  const dir = tempDir(t, 'create-socket');
  buildTree(dir);
  const big = Buffer.alloc(3 << 20);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
  fs.writeFileSync(path.join(dir, 'a-big'), big);
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(dir, `small-${i}`), Buffer.alloc(100 + i * 3000, i));
  const expected = sha256(await collect(tarDirectory(dir)));

  const { fd, client } = await socketPair(t);
  const sent = tarDirectoryProducer(dir).writeToSocket(fd).finally(() => fs.closeSync(fd));
  const got = readAllFrom(client);
  await sent;
  client.end();
  assert.equal(sha256(await got), expected);
  assert.deepEqual(filesOpenIn(dir), [], 'every file closed');

  // The client stops reading while the big file goes out; the file shrinks meanwhile.
  const pair = await socketPair(t);
  const sending = tarDirectoryProducer(dir).writeToSocket(pair.fd).finally(() => fs.closeSync(pair.fd));
  await new Promise((r) => setTimeout(r, 200)); // the socket (~200 KB) is full by now
  fs.truncateSync(path.join(dir, 'a-big'), 1 << 20);
  const out = readAllFrom(pair.client);
  await sending;
  pair.client.end();
  const bodies = new Map<string, Buffer[]>();
  let current: Buffer[] = [];
  const reader = new TarReader({
    entry(h: TarHeader) { current = []; bodies.set(h.name, current); },
    data(chunk: Buffer) { current.push(Buffer.from(chunk)); },
    end() {},
  });
  reader.write(await out);
  reader.finish();
  const body = Buffer.concat(bodies.get('a-big') ?? []);
  assert.equal(body.length, big.length, 'the size its header gave');
  assert.ok(body.subarray(0, 1 << 20).equals(big.subarray(0, 1 << 20)));
  assert.ok(body.subarray(1 << 20).equals(Buffer.alloc(big.length - (1 << 20))), 'zeros past the new end');
  assert.ok(bodies.has('small-39'), 'the entries after it follow');
});

test('TarProducer.writeToSocket rejects when the client goes away, and closes its files', async (t) => {
  const dir = tempDir(t, 'create-socket-gone');
  fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(30 << 20, 1));
  const { fd, client } = await socketPair(t);
  const sending = tarDirectoryProducer(dir).writeToSocket(fd);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(filesOpenIn(dir), [path.join(dir, 'big')], 'sending the big file');
  client.destroy();
  await assert.rejects(sending, (err: NodeJS.ErrnoException) => err.code === 'EPIPE' || err.code === 'ECONNRESET');
  assert.deepEqual(filesOpenIn(dir), []);
  fs.closeSync(fd);
});
