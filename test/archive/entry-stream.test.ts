// tarEntries (archive/entry-stream.ts), which reads docker load's outer archive: entries and their
// bodies come out in order and intact whatever the input's chunking, a slow consumer pauses the
// input instead of letting it pile up, a bad archive fails with a 400-kind error, and a consumer
// that stops early leaves the input drained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { tarEntries } from '../../src/archive/entry-stream';
import { BerthError } from '../../src/common/errors';
import { collect, makeTar } from './fixtures';

/** The bytes as a stream of pieces of the given size (the last one shorter). */
function pieces(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let off = 0; off < buf.length; off += size) parts.push(buf.subarray(off, off + size));
  return Readable.from(parts, { objectMode: false });
}

test('entries and bodies come out in order, whatever the chunking', async () => {
  const small = Array.from({ length: 150 }, (_, i) => ({ name: `f${i}`, body: randomBytes(i * 37) }));
  const big = randomBytes((9 << 20) + 123);
  const tar = await makeTar([...small, { name: 'dir/', type: 'directory' }, { name: 'big.bin', body: big }, { name: 'link', type: 'symlink', linkname: 'big.bin' }]);
  for (const size of [tar.length, 65536, 511, 7]) {
    if (size === 7 && tar.length > 1 << 20) continue; // a 7-byte stream of 9 MB takes too long
    const got: { name: string; type: string; body: Buffer }[] = [];
    for await (const { header, body } of tarEntries(pieces(tar, size))) got.push({ name: header.name, type: header.type, body: await collect(body) });
    assert.deepEqual(got.map((g) => g.name), [...small.map((s) => s.name), 'dir/', 'big.bin', 'link']);
    small.forEach((s, i) => assert.ok(got[i].body.equals(s.body), `${s.name} at chunk size ${size}`));
    assert.ok(got[151].body.equals(big));
    assert.equal(got[152].type, 'symlink');
  }
});

test('a slow consumer pauses the input rather than buffering all of it', async () => {
  const big = randomBytes(32 << 20);
  const tar = await makeTar([{ name: 'big.bin', body: big }]);
  const input = new PassThrough({ highWaterMark: 64 << 10 });
  let written = 0;
  const feeding = (async () => {
    for (let off = 0; off < tar.length; off += 64 << 10) {
      if (!input.write(tar.subarray(off, off + (64 << 10)))) await new Promise((r) => input.once('drain', r));
      written = off;
    }
    input.end();
  })();
  const it = tarEntries(input);
  const first = await it.next();
  assert.equal(first.done, false);
  // Nobody reads the body for a while: the input must stop well short of the whole 32 MiB.
  await sleep(200);
  assert.ok(written < 12 << 20, `the input ran ahead by ${written} bytes`);
  assert.ok((await collect(first.value.body)).equals(big));
  assert.equal((await it.next()).done, true);
  await feeding;
});

test('a cut archive fails the body being read with a 400-kind error', async () => {
  const tar = await makeTar([{ name: 'a', body: randomBytes(100_000) }]);
  const entries = tarEntries(pieces(tar.subarray(0, 50_000), 4096));
  const first = await entries.next();
  assert.equal(first.done, false);
  await assert.rejects(collect(first.value.body), (err: unknown) => err instanceof BerthError && err.kind === 'InvalidParameter' && /unexpected end of tar data/.test(err.message));
  await assert.rejects(entries.next(), /unexpected end of tar data/);
});

test('a corrupt header is a 400-kind error from the iteration', async () => {
  const tar = Buffer.from(await makeTar([{ name: 'a', body: 'x' }, { name: 'b', body: 'y' }]));
  tar[1024 + 3] ^= 0xff; // the second header
  const names: string[] = [];
  await assert.rejects(async () => {
    for await (const { header, body } of tarEntries(pieces(tar, 300))) {
      names.push(header.name);
      await collect(body);
    }
  }, (err: unknown) => err instanceof BerthError && err.kind === 'InvalidParameter' && /checksum/.test(err.message));
  assert.deepEqual(names, ['a']);
});

test('a consumer that stops early leaves the input drained', async () => {
  const tar = await makeTar([{ name: 'a', body: 'x' }, { name: 'big', body: randomBytes(8 << 20) }, { name: 'c', body: 'z' }]);
  const input = pieces(tar, 65536);
  for await (const { header, body } of tarEntries(input)) {
    assert.equal(header.name, 'a');
    body.resume();
    break;
  }
  if (!input.readableEnded) await new Promise((r) => input.once('end', r));
  assert.ok(input.readableEnded);
});
