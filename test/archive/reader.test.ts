// The tar reader on archives written by GNU tar (gnu and posix formats) and by hand (pax global
// headers, base-256 numbers, bad checksums), fed in every chunking; and teeLayer, which stores
// and extracts a layer in one pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { PassThrough, Readable } from 'node:stream';
import { applyLayer } from '../../src/archive/apply';
import { encodePax } from '../../src/archive/pax';
import { TarHeader, TarReader } from '../../src/archive/reader';
import { teeLayer } from '../../src/archive/tee';
import { isKind } from '../../src/common/errors';
import * as native from '../../src/native';
import { makeTar, sha256, tempDir } from './fixtures';

interface Seen { header: TarHeader; body: Buffer }

/** Parses buf fed in pieces of the given sizes (cycled); returns the entries. */
function parse(buf: Buffer, pieces: number[] = [buf.length]): Seen[] {
  const seen: Seen[] = [];
  let body: Buffer[] = [];
  let ended = true;
  const reader = new TarReader({
    entry(header) {
      assert.ok(ended, 'entry() only after the previous end()');
      ended = false;
      body = [];
      seen.push({ header, body: Buffer.alloc(0) });
    },
    data(chunk) {
      body.push(Buffer.from(chunk)); // views are valid during the call only
    },
    end() {
      ended = true;
      seen[seen.length - 1].body = Buffer.concat(body);
    },
  });
  let pos = 0;
  for (let i = 0; pos < buf.length; i++) {
    const n = Math.max(1, pieces[i % pieces.length]);
    reader.write(buf.subarray(pos, pos + n));
    pos += n;
  }
  reader.finish();
  assert.ok(ended, 'the last entry ended');
  return seen;
}

const CHUNKINGS = [[1], [511], [512], [513], [7, 1000, 3], [65536]];

/** A ustar header block (for hand-made archives); typeflag as a character. */
function header(name: string, typeflag: string, size: number, fields: { uid?: Buffer; size?: Buffer } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  if (fields.uid) fields.uid.copy(h, 108); else h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  if (fields.size) fields.size.copy(h, 124); else h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('13600000000\0', 136);
  h.write(typeflag, 156);
  h.write('ustar\x0000', 257, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

function block(data: Buffer | string): Buffer {
  const b = Buffer.from(data);
  return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
}

test('GNU tar archives (gnu and posix formats) parse the same in any chunking', async (t) => {
  const dir = tempDir(t, 'reader');
  const src = path.join(dir, 'src');
  const longDir = `${'d'.repeat(120)}/${'e'.repeat(90)}`;
  fs.mkdirSync(path.join(src, longDir), { recursive: true });
  fs.writeFileSync(path.join(src, longDir, `${'f'.repeat(150)}.txt`), 'deep\n');
  fs.writeFileSync(path.join(src, 'big'), Buffer.alloc(300_000, 7));
  fs.writeFileSync(path.join(src, 'empty'), '');
  fs.symlinkSync(`${'t'.repeat(140)}/target`, path.join(src, 'long-link'));
  fs.linkSync(path.join(src, longDir, `${'f'.repeat(150)}.txt`), path.join(src, 'hard'));
  for (const format of ['gnu', 'posix']) {
    const archive = execFileSync('tar', [`--format=${format}`, '--sort=name', '-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 24 });
    const whole = parse(archive);
    const names = whole.map((e) => e.header.name);
    assert.ok(names.includes(`./${longDir}/${'f'.repeat(150)}.txt`), `${format}: long name in ${names.join(', ')}`);
    const link = whole.find((e) => e.header.name === './long-link')!;
    assert.equal(link.header.type, 'symlink');
    assert.equal(link.header.linkname, `${'t'.repeat(140)}/target`);
    const big = whole.find((e) => e.header.name === './big')!;
    assert.deepEqual(big.body, Buffer.alloc(300_000, 7));
    assert.equal(whole.find((e) => e.header.name === './empty')!.body.length, 0);
    const hard = whole.find((e) => e.header.type === 'link')!;
    assert.ok(hard.header.linkname.endsWith('.txt') || hard.header.name.endsWith('.txt'), 'hardlink pair kept');
    for (const pieces of CHUNKINGS) {
      assert.deepEqual(parse(archive, pieces), whole, `${format} in pieces of ${pieces.join(',')}`);
    }
    // And it extracts: the long name lands where it should.
    const out = path.join(dir, `out-${format}`);
    fs.mkdirSync(out);
    const res = await applyLayer(Readable.from([archive]), out);
    assert.equal(res.diffID, sha256(archive));
    assert.equal(fs.readFileSync(path.join(out, longDir, `${'f'.repeat(150)}.txt`), 'utf8'), 'deep\n');
    assert.equal(fs.readlinkSync(path.join(out, 'long-link')), `${'t'.repeat(140)}/target`);
  }
});

test('binary xattrs from GNU tar --xattrs survive byte for byte', async (t) => {
  const dir = tempDir(t, 'reader');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const file = path.join(src, 'capfile');
  fs.writeFileSync(file, 'x');
  const value = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x80, 0x00, 0x0a, 0x3d]);
  native.lsetxattr(file, 'user.binary', value);
  const archive = execFileSync('tar', ['--format=posix', '--xattrs', '--xattrs-include=user.*', '-C', src, '-cf', '-', 'capfile']);
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  await applyLayer(Readable.from([archive]), out);
  assert.deepEqual(native.lgetxattr(path.join(out, 'capfile'), 'user.binary'), value);
});

test('pax global records apply to every later entry; per-entry records win', () => {
  const global = encodePax([['uid', '5000'], ['mtime', '1600000000.25']]);
  const own = encodePax([['path', 'renamed/by/pax'], ['uid', '7000'], ['SCHILY.xattr.user.k', Buffer.from([0, 1, 2])]]);
  const archive = Buffer.concat([
    header('pax_global_header', 'g', global.length), block(global),
    header('first', '0', 2), block('hi'),
    header('PaxHeaders/second', 'x', own.length), block(own),
    header('second', '0', 0),
    Buffer.alloc(1024),
  ]);
  for (const pieces of CHUNKINGS) {
    const [first, second] = parse(archive, pieces);
    assert.equal(first.header.name, 'first');
    assert.equal(first.header.uid, 5000);
    assert.equal(first.header.mtime, 1600000000.25);
    assert.equal(first.body.toString(), 'hi');
    assert.equal(second.header.name, 'renamed/by/pax');
    assert.equal(second.header.uid, 7000);
    assert.equal(second.header.mtime, 1600000000.25);
  }
});

test('GNU base-256 numbers; a trailing-slash "file" is a directory; zero blocks are skipped', () => {
  const uid = Buffer.alloc(8);
  uid[0] = 0x80;
  uid.writeUInt32BE(3_000_000, 4);
  const size = Buffer.alloc(12);
  size[0] = 0x80;
  size.writeUInt32BE(3, 8);
  const archive = Buffer.concat([
    header('olddir/', '0', 0),
    Buffer.alloc(512), // a lone zero block between entries
    header('f', '0', 3, { uid, size }), block('abc'),
  ]);
  const [dir, f] = parse(archive);
  assert.equal(dir.header.type, 'directory');
  assert.equal(f.header.uid, 3_000_000);
  assert.equal(f.header.size, 3);
  assert.equal(f.body.toString(), 'abc');
});

test('malformed archives are refused: bad checksum, truncated header or body, bad pax', async (t) => {
  const good = Buffer.concat([header('a', '0', 3), block('abc'), Buffer.alloc(1024)]);
  const badSum = Buffer.from(good);
  badSum[0] ^= 1;
  assert.throws(() => parse(badSum), /checksum/);
  assert.throws(() => parse(good.subarray(0, 300)), /unexpected end/);
  assert.throws(() => parse(good.subarray(0, 514)), /unexpected end/);
  assert.doesNotThrow(() => parse(good.subarray(0, 1024)), 'an archive without its end blocks is fine');
  const badPax = Buffer.from('999 path=x\n');
  assert.throws(() => parse(Buffer.concat([header('p', 'x', badPax.length), block(badPax), header('a', '0', 0)])), /PAX/i);
  const badSize = encodePax([['size', '-1']]);
  assert.throws(() => parse(Buffer.concat([header('p', 'x', badSize.length), block(badSize), header('a', '0', 0)])), /invalid pax record size/);

  // Through applyLayer: InvalidParameter, and the target is left empty.
  const dir = tempDir(t, 'reader');
  const layer = Buffer.concat([header('ok', '0', 2), block('ok'), badSum]);
  await assert.rejects(applyLayer(Readable.from([layer]), dir), (err: unknown) => isKind(err, 'InvalidParameter') && /checksum/.test((err as Error).message));
  assert.deepEqual(fs.readdirSync(dir), []);
  const sparse = Buffer.concat([header('s', 'S', 0), Buffer.alloc(1024)]);
  await assert.rejects(applyLayer(Readable.from([sparse]), dir), /unsupported tar entry type/);
});

test('teeLayer stores every raw byte and extracts in the same pass', async (t) => {
  const tarball = await makeTar([{ name: 'etc/', mode: 0o755 }, { name: 'etc/os-release', body: 'ID=berth\n' }, { name: 'big', body: Buffer.alloc(200_000, 1) }]);
  for (const [what, raw] of [['plain', tarball], ['gzip', zlib.gzipSync(tarball)]] as const) {
    const dir = tempDir(t, 'tee');
    const stored: Buffer[] = [];
    const pieces = [raw.subarray(0, 3), raw.subarray(3, 700), raw.subarray(700)];
    const res = await teeLayer(Readable.from(pieces), async (c) => { stored.push(Buffer.from(c)); }, { extractTo: dir });
    assert.deepEqual(Buffer.concat(stored), raw, `${what}: stored bytes`);
    assert.equal(res.rawSize, raw.length);
    assert.equal(res.size, tarball.length);
    // A plain tar's diffID is the stored blob's digest, which the store computes.
    assert.equal(res.diffID, what === 'plain' ? undefined : sha256(tarball));
    assert.equal(res.compression, what === 'plain' ? 'none' : 'gzip');
    assert.equal(fs.readFileSync(path.join(dir, 'etc/os-release'), 'utf8'), 'ID=berth\n');
    assert.equal(fs.statSync(path.join(dir, 'big')).size, 200_000);
    // Without extraction: only the digest.
    const digestOnly = await teeLayer(Readable.from(pieces), async () => {});
    assert.equal(digestOnly.diffID, what === 'plain' ? undefined : sha256(tarball));
  }
});

test('teeLayer: a hostile entry fails as InvalidParameter, stops storing, and leaves the input readable', async (t) => {
  const dir = tempDir(t, 'tee');
  // 'fine' is bigger than the tee's 1 MiB batch, so storing has begun when the bad entry comes.
  const hostile = await makeTar([{ name: 'fine', body: Buffer.alloc(2 << 20, 'x') }, { name: '../escape', body: 'y' }]);
  const input = new PassThrough();
  const filler = Buffer.alloc(4 << 20); // more of the "upload" after the bad entry
  input.write(hostile.subarray(0, hostile.length - 1024));
  let stores = 0;
  let settled = false;
  const p = teeLayer(input, async () => { assert.ok(!settled, 'no store() after the promise settled'); stores++; }, { extractTo: dir });
  await assert.rejects(p, (err: unknown) => isKind(err, 'InvalidParameter') && /\.\.\/escape/.test((err as Error).message));
  settled = true;
  assert.ok(stores >= 1);
  assert.equal(input.destroyed, false, 'the input (an HTTP request) is not destroyed');
  // The rest of the upload is drained, not left to stall the client.
  const drained = new Promise((resolve) => input.on('end', resolve));
  input.end(filler);
  await drained;
  assert.equal(fs.existsSync(path.join(dir, '..', 'escape')), false);
});

test('header checksums: unsigned, or the signed sum old tars wrote; anything else is refused', () => {
  // A name with bytes above 127, where the two sums differ.
  const h = header('caf\u00e9', '0', 2);
  const sumOf = (signed: boolean): number => {
    let sum = 0;
    for (let i = 0; i < 512; i++) {
      const b = i >= 148 && i < 156 ? 0x20 : h[i];
      sum += signed && b > 127 ? b - 256 : b;
    }
    return sum;
  };
  assert.notEqual(sumOf(true), sumOf(false));
  for (const signed of [false, true]) {
    const b = Buffer.from(h);
    b.write(`${sumOf(signed).toString(8).padStart(6, '0')}\0 `, 148);
    const [e] = parse(Buffer.concat([b, block('ok')]));
    assert.equal(e.header.name, 'caf\u00e9');
    assert.equal(e.body.toString(), 'ok');
    b.write(`${(sumOf(signed) + 1).toString(8).padStart(6, '0')}\0 `, 148);
    assert.throws(() => parse(Buffer.concat([b, block('ok')])), /checksum/);
  }
});

test('teeLayer, plain tar: batches shared with the extraction thread; a pausing input and a slow store both finish', { timeout: 60_000 }, async (t) => {
  // More than the store's queue bound (16 MiB) of files, sent in socket-sized pieces with pauses
  // longer than the tee's wait for a whole batch, into a slow store: short batches go on while
  // the store's queue is full and a write waits for it (both must be woken; a lost waiter hung
  // the upload). Every stored byte and every file must come out right.
  const bodies = Array.from({ length: 80 }, (_, i) => randomBytes(((i * 7919) % 1024) * 1024 + i));
  const layer = await makeTar(bodies.map((body, i) => ({ name: `d/f${i}`, body })));
  assert.ok(layer.length > 32 << 20);
  async function* upload(): AsyncGenerator<Buffer> {
    for (let off = 0, n = 0; off < layer.length; off += 60_000, n++) {
      if (n % 100 === 99) await new Promise((r) => setTimeout(r, 40));
      yield layer.subarray(off, off + 60_000);
    }
  }
  const dir = tempDir(t, 'tee');
  const stored: Buffer[] = [];
  const res = await teeLayer(Readable.from(upload()), async (c) => {
    await new Promise((r) => setTimeout(r, 30));
    stored.push(Buffer.from(c));
  }, { extractTo: dir });
  assert.equal(res.rawSize, layer.length);
  assert.ok(Buffer.concat(stored).equals(layer), 'stored bytes');
  bodies.forEach((body, i) => assert.ok(fs.readFileSync(path.join(dir, 'd', `f${i}`)).equals(body), `f${i}`));
});
