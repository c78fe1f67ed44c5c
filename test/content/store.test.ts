// The content store on a real directory: verified, atomic, resumable ingests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { ContentStore } from '../../src/content/store';
import { FileDigest } from '../../src/content/filedigest';
import { validateDigest } from '../../src/content/digest';
import { isKind } from '../../src/common/errors';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-storage-test-content-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function readAll(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

test('digest strings are validated strictly', () => {
  const good = `sha256:${'a'.repeat(64)}`;
  assert.equal(validateDigest(good), good);
  for (const bad of ['', 'sha256:', `sha256:${'A'.repeat(64)}`, `sha512:${'a'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `sha256:${'a'.repeat(64)}\n`, `sha256:../${'a'.repeat(61)}`, 42]) {
    assert.throws(() => validateDigest(bad), (err: unknown) => isKind(err, 'InvalidParameter'));
  }
});

test('ingest with the right digest and size becomes visible and readable', async (t) => {
  const store = new ContentStore(tempDir(t));
  const data = randomBytes(300_000);
  const digest = digestOf(data);
  assert.equal(await store.info(digest), undefined);
  const w = await store.writer('ref-good', { digest, size: data.length });
  await w.write(data.subarray(0, 1000));
  assert.equal(await store.info(digest), undefined, 'not visible before commit');
  await w.write(data.subarray(1000));
  assert.equal(w.offset, data.length);
  assert.equal(await w.commit(), digest);
  assert.deepEqual(await store.info(digest), { digest, size: data.length });
  assert.deepEqual(await readAll(await store.createReadStream(digest)), data);
  assert.deepEqual(await readAll(await store.createReadStream(digest, { start: 10, end: 19 })), data.subarray(10, 20));
  assert.deepEqual(fs.readFileSync(await store.blobPath(digest)), data);
  assert.deepEqual(await store.list(), [{ digest, size: data.length }]);
  assert.deepEqual(await store.ingests(), [], 'the ingest directory is gone');
  await store.delete(digest);
  assert.equal(await store.info(digest), undefined);
  await assert.rejects(store.delete(digest), (err: unknown) => isKind(err, 'NotFound'));
  await assert.rejects(store.createReadStream(digest), (err: unknown) => isKind(err, 'NotFound'));
});

test('wrong digest or wrong size: InvalidParameter, nothing visible, temp data removed', async (t) => {
  const root = tempDir(t);
  const store = new ContentStore(root);
  const data = Buffer.from('hello world');
  const other = digestOf(Buffer.from('something else'));

  const w1 = await store.writer('ref-bad-digest', { digest: other });
  await w1.write(data);
  await assert.rejects(w1.commit(), (err: unknown) => isKind(err, 'InvalidParameter') && /unexpected commit digest/.test((err as Error).message));
  assert.equal(await store.info(other), undefined);
  assert.equal(await store.info(digestOf(data)), undefined);

  const w2 = await store.writer('ref-bad-size');
  await w2.write(data);
  await assert.rejects(w2.commit({ size: data.length + 1 }), (err: unknown) => isKind(err, 'InvalidParameter') && /unexpected commit size 11, expected 12/.test((err as Error).message));
  assert.equal(await store.info(digestOf(data)), undefined);

  assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
  assert.deepEqual(fs.readdirSync(path.join(root, 'blobs', 'sha256')), []);
  await assert.rejects(store.writer('x', { digest: 'sha256:nope' }), (err: unknown) => isKind(err, 'InvalidParameter'));
  await assert.rejects(store.info('md5:abc'), (err: unknown) => isKind(err, 'InvalidParameter'));
});

test('two ingests of the same blob at once both succeed, one blob results', async (t) => {
  const root = tempDir(t);
  const store = new ContentStore(root);
  const data = randomBytes(2_000_000);
  const digest = digestOf(data);
  const ingest = async (ref: string): Promise<string> => {
    const w = await store.writer(ref, { digest, size: data.length });
    for (let off = 0; off < data.length; off += 65536) {
      await w.write(data.subarray(off, off + 65536));
      await new Promise((r) => setImmediate(r)); // interleave the two writers
    }
    return w.commit();
  };
  assert.deepEqual(await Promise.all([ingest('a'), ingest('b'), store.ingestStream('c', [data], { digest })]), [digest, digest, digest]);
  assert.deepEqual(await store.list(), [{ digest, size: data.length }]);
  assert.deepEqual(fs.readFileSync(await store.blobPath(digest)), data);
  assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
});

test('writers on the same ref are serialised: the second continues where the first closed', async (t) => {
  const store = new ContentStore(tempDir(t));
  const data = randomBytes(100_000);
  const w1 = await store.writer('same-ref');
  let secondOpened = false;
  const second = store.writer('same-ref').then((w) => { secondOpened = true; return w; });
  await w1.write(data.subarray(0, 40_000));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(secondOpened, false, 'second writer waits for the lock');
  await w1.close();
  const w2 = await second;
  assert.equal(w2.offset, 40_000);
  await w2.write(data.subarray(40_000));
  assert.equal(await w2.commit({ digest: digestOf(data), size: data.length }), digestOf(data));
});

for (const hashInBackground of [false, true]) {
const mode = hashInBackground ? ' (hashing on the worker thread)' : '';
const opts = { hashInBackground };

test(`resume after a crash: a new store re-hashes the partial ingest and continues at its offset${mode}`, async (t) => {
  const root = tempDir(t);
  const data = randomBytes(1_500_000);
  const digest = digestOf(data);
  {
    const store = new ContentStore(root);
    const w = await store.writer('pull-layer-1', { digest, size: data.length }, opts);
    await w.write(data.subarray(0, 1_000_000));
    // Simulated crash: the writer is never committed or aborted; the process "dies". (Its file
    // handle is closed at the end only to keep Node from warning about a leaked handle.)
    t.after(() => w.close());
  }
  const store = new ContentStore(root);
  assert.equal(await store.info(digest), undefined, 'nothing visible after the crash');
  assert.deepEqual((await store.ingests()).map((s) => [s.ref, s.offset]), [['pull-layer-1', 1_000_000]]);
  const w = await store.writer('pull-layer-1', { digest, size: data.length }, opts);
  assert.equal(w.offset, 1_000_000);
  assert.equal(await w.digest(), digestOf(data.subarray(0, 1_000_000)));
  await w.write(data.subarray(w.offset));
  assert.equal(await w.commit(), digest);
  assert.deepEqual(fs.readFileSync(await store.blobPath(digest)), data);
});

test(`resume with corrupted partial data fails the digest check and leaves nothing${mode}`, async (t) => {
  const root = tempDir(t);
  const data = randomBytes(10_000);
  const digest = digestOf(data);
  const store = new ContentStore(root);
  const w = await store.writer('r', { digest }, opts);
  await w.write(data.subarray(0, 5000));
  await w.close();
  const [dir] = fs.readdirSync(path.join(root, 'ingest'));
  const fd = fs.openSync(path.join(root, 'ingest', dir, 'data'), 'r+');
  fs.writeSync(fd, Buffer.from('X'), 0, 1, 10);
  fs.closeSync(fd);
  const w2 = await store.writer('r', { digest }, opts);
  await w2.write(data.subarray(w2.offset));
  await assert.rejects(w2.commit(), (err: unknown) => isKind(err, 'InvalidParameter'));
  assert.equal(await store.info(digest), undefined);
  assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
});

test(`a digest can be asked mid-way; truncate restarts the hash; many writes hash in order${mode}`, async (t) => {
  const root = tempDir(t);
  const store = new ContentStore(root);
  const data = randomBytes(3_000_000);
  const w = await store.writer('mid', {}, opts);
  await w.write(Buffer.from('garbage'));
  await w.truncate();
  for (let off = 0; off < 1_000_000; off += 65_536) await w.write(data.subarray(off, Math.min(off + 65_536, 1_000_000)));
  assert.equal(await w.digest(), digestOf(data.subarray(0, 1_000_000)));
  await w.write(data.subarray(1_000_000));
  assert.equal(await w.commit({ size: data.length }), digestOf(data));
  assert.deepEqual(fs.readFileSync(await store.blobPath(digestOf(data))), data);
});
}

test('abort removes the ingest; truncate restarts it; stale ingests are removed on open', async (t) => {
  const root = tempDir(t);
  const store = new ContentStore(root);
  const w = await store.writer('to-abort');
  await w.write(Buffer.from('partial'));
  await w.abort();
  assert.deepEqual(await store.ingests(), []);

  const w2 = await store.writer('to-truncate');
  await w2.write(Buffer.from('garbage'));
  await w2.truncate();
  assert.equal(w2.offset, 0);
  await w2.write(Buffer.from('good'));
  assert.equal(await w2.commit(), digestOf(Buffer.from('good')));

  const w3 = await store.writer('stale');
  await w3.write(Buffer.from('old'));
  await w3.close();
  const [dir] = fs.readdirSync(path.join(root, 'ingest'));
  const old = new Date(Date.now() - 2 * 24 * 3600 * 1000);
  fs.utimesSync(path.join(root, 'ingest', dir, 'data'), old, old);
  new ContentStore(root);
  assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
});

test('writeBlob stores small blobs and is idempotent', async (t) => {
  const store = new ContentStore(tempDir(t));
  const data = Buffer.from('{"schemaVersion":2}');
  const d = await store.writeBlob(data);
  assert.equal(d, digestOf(data));
  assert.equal(await store.writeBlob(data), d);
  assert.deepEqual(await store.readBlob(d), data);
  await assert.rejects(store.writeBlob(Buffer.from('x'), { digest: d }), (err: unknown) => isKind(err, 'InvalidParameter'));
  assert.equal(fs.statSync(await store.blobPath(d)).mode & 0o777, 0o444);
});

test('the digest worker: a missing file or one shorter than the size asked fails the digest, and the worker goes on', async (t) => {
  const root = tempDir(t);
  await assert.rejects(new FileDigest(path.join(root, 'missing')).digest(10), /hashing failed: ENOENT/);
  const file = path.join(root, 'short');
  fs.writeFileSync(file, 'twelve bytes');
  const short = new FileDigest(file);
  short.advance(12);
  await assert.rejects(short.digest(20), /hashing failed: file ended at 12 bytes, before 20/);
  const ok = new FileDigest(file);
  ok.advance(5);
  assert.equal(await ok.digest(12), digestOf(Buffer.from('twelve bytes')));
  const dropped = new FileDigest(file);
  dropped.drop();
  await assert.rejects(dropped.digest(12), /already finished/);
});

test('background hashing takes shared buffers in place (not read back), mixed in order with others; a buffer is free again once write() resolves', async (t) => {
  const root = tempDir(t);
  const store = new ContentStore(root);
  const w = await store.writer('shared', {}, { hashInBackground: true });
  const batch = Buffer.from(new SharedArrayBuffer(1 << 20));
  const parts: Buffer[] = [];
  for (let i = 0; i < 6; i++) {
    // The same shared buffer is refilled for every write, as the tee reuses its batches: a hash
    // still reading it after write() resolved would see the next fill.
    const piece = i % 3 === 2 ? randomBytes(70_000) : batch.subarray(0, (i + 1) * 100_000);
    if (piece.buffer instanceof SharedArrayBuffer) piece.set(randomBytes(piece.length));
    parts.push(Buffer.from(piece));
    await w.write(piece);
  }
  assert.equal(await w.digest(), digestOf(Buffer.concat(parts)), 'a digest mid-way');
  const last = batch.subarray(0, 300_000);
  last.set(randomBytes(last.length));
  parts.push(Buffer.from(last));
  await w.write(last);
  // Changing the file behind the writer's back after the shared write does not change the
  // digest: those bytes were hashed as they were handed to write(2), not read back.
  const [dir] = fs.readdirSync(path.join(root, 'ingest'));
  const fd = fs.openSync(path.join(root, 'ingest', dir, 'data'), 'r+');
  const end = parts.reduce((n, p) => n + p.length, 0);
  fs.writeSync(fd, Buffer.from('X'), 0, 1, end - 1);
  fs.closeSync(fd);
  assert.equal(await w.commit(), digestOf(Buffer.concat(parts)));
});

test('the digest worker refuses shared bytes for an offset it has passed', async (t) => {
  const root = tempDir(t);
  const file = path.join(root, 'f');
  fs.writeFileSync(file, 'abcdef');
  const job = new FileDigest(file);
  const bytes = Buffer.from(new SharedArrayBuffer(3));
  bytes.write('abc');
  await job.hashBytes(bytes, 0);
  await job.hashBytes(bytes, 0);
  await assert.rejects(job.digest(6), /hashing failed: bytes for offset 0 came after offset 3 was hashed/);
  const other = new FileDigest(file);
  assert.equal(other.hashBytes(Buffer.from('abc'), 0), undefined, 'other buffers are read back from the file');
  other.advance(6);
  assert.equal(await other.digest(6), digestOf(Buffer.from('abcdef')));
});

test('syncAhead: early syncs while writing; commit, abort and close wait for one in flight', async (t) => {
  const root = tempDir(t);
  const store = new ContentStore(root);
  const opts = { hashInBackground: true, syncAhead: true };
  const chunk = Buffer.from(new SharedArrayBuffer(1 << 20));
  const parts: Buffer[] = [];
  const w = await store.writer('ahead', {}, opts);
  for (let i = 0; i < 70; i++) {
    chunk.set(randomBytes(chunk.length));
    parts.push(Buffer.from(chunk));
    await w.write(chunk);
  }
  const all = Buffer.concat(parts);
  assert.equal(await w.commit({ size: all.length }), digestOf(all));
  assert.deepEqual(fs.readFileSync(await store.blobPath(digestOf(all))), all);

  // Ended right after the write that starts an early sync (the 32nd MiB): nothing is left open.
  const aborted = await store.writer('ahead-abort', {}, opts);
  for (let i = 0; i < 32; i++) await aborted.write(chunk);
  await aborted.abort();
  assert.deepEqual(await store.ingests(), []);
  const closed = await store.writer('ahead-close', {}, opts);
  for (let i = 0; i < 32; i++) await closed.write(chunk);
  await closed.close();
  const resumed = await store.writer('ahead-close', {}, opts);
  assert.equal(resumed.offset, 32 << 20);
  await resumed.write(Buffer.from('tail'));
  assert.equal(await resumed.commit(), digestOf(Buffer.concat([...Array<Buffer>(32).fill(chunk), Buffer.from('tail')])));
});

/** Bytes of file that are in the page cache (util-linux fincore). */
function cachedBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

test('uncached writer: the blob goes around the page cache whatever the pieces\' sizes and offsets; resumes; leaves no fd open', async (t) => {
  const root = tempDir(t);
  const store = new ContentStore(root);
  const fdsBefore = openFds();
  const opts = { hashInBackground: true, syncAhead: true, uncached: true };
  const batch = Buffer.from(new SharedArrayBuffer(1 << 20));
  const parts: Buffer[] = [];
  const write = async (w: Awaited<ReturnType<ContentStore['writer']>>, piece: Buffer): Promise<void> => {
    parts.push(Buffer.from(piece));
    await w.write(piece);
  };
  const w = await store.writer('uncached', {}, opts);
  // Whole batches at aligned offsets, then a piece that puts every later one off the 4 KiB grid,
  // then small and odd-sized ones, as short batches do.
  for (let i = 0; i < 6; i++) {
    batch.set(randomBytes(batch.length));
    await write(w, batch);
  }
  await write(w, randomBytes(70_001));
  for (let i = 0; i < 6; i++) {
    batch.set(randomBytes(batch.length));
    await write(w, batch);
  }
  await write(w, randomBytes(100));
  await write(w, randomBytes(300_000));
  // Only the pieces' unaligned heads and tails went through the cache, and the pieces that are
  // not shared memory, which the digest worker reads back (a resumed ingest reads all).
  const [ingest] = fs.readdirSync(path.join(root, 'ingest'));
  const written = parts.reduce((n, p) => n + p.length, 0);
  const resident = cachedBytes(path.join(root, 'ingest', ingest, 'data'));
  await w.close();
  // A resumed uncached ingest goes on at an offset off the grid.
  const resumed = await store.writer('uncached', {}, opts);
  assert.equal(resumed.offset, parts.reduce((n, p) => n + p.length, 0));
  for (let i = 0; i < 3; i++) {
    batch.set(randomBytes(batch.length));
    await write(resumed, batch);
  }
  await write(resumed, randomBytes(12_345));
  const all = Buffer.concat(parts);
  const digest = await resumed.commit({ size: all.length });
  assert.equal(digest, digestOf(all));
  const blob = await store.blobPath(digest);
  assert.deepEqual(fs.readFileSync(blob), all);

  // The same bytes written buffered stay in the cache: the check above can tell them apart.
  const buffered = await store.writer('buffered', {}, { hashInBackground: true, syncAhead: true });
  const other = Buffer.concat([all, Buffer.from('x')]);
  for (let off = 0; off < other.length; off += 1 << 20) await buffered.write(other.subarray(off, off + (1 << 20)));
  const otherBlob = await store.blobPath(await buffered.commit());
  assert.ok(cachedBytes(otherBlob) > other.length * 0.9, `a buffered blob is cached: ${cachedBytes(otherBlob)} of ${other.length}`);
  assert.ok(resident < written * 0.1, `an uncached blob is not: ${resident} of ${written} bytes in the page cache`);

  // Ended early, either way: nothing left open or behind.
  const aborted = await store.writer('uncached-abort', {}, opts);
  await aborted.write(batch);
  await aborted.abort();
  assert.deepEqual(await store.ingests(), []);
  assert.equal(openFds(), fdsBefore);
});
