// The k8s-file log reader: parsing, since/until, tail (backwards, bounded reads), follow.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseK8sRecord, parseRfc3339Nano, formatRfc3339NanoUTC, tailOffset, type LogRecord } from '../../src/runtime/k8slog';
import { readContainerLogRecords } from '../../src/logs/reader';

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync('/tmp/berth-runtime-test-');
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const rec = (sec: number, stream: string, tag: string, data: string): string =>
  `2024-05-01T10:00:${String(sec).padStart(2, '0')}.000000001+00:00 ${stream} ${tag} ${data}\n`;

async function all(it: AsyncIterable<LogRecord>): Promise<string[]> {
  const out: string[] = [];
  for await (const r of it) out.push(`${r.stream}:${r.partial ? 'P' : 'F'}:${r.line.toString()}`);
  return out;
}

test('times: RFC3339 with nanoseconds and offsets', () => {
  assert.equal(parseRfc3339Nano('1970-01-01T00:00:01.000000002Z'), 1_000_000_002n);
  assert.equal(parseRfc3339Nano('1970-01-01T01:00:01.5+01:00'), 1_500_000_000n);
  assert.equal(parseRfc3339Nano('1970-01-01T00:00:00-00:30'), 1800n * 1_000_000_000n);
  assert.equal(parseRfc3339Nano('garbage'), undefined);
  assert.equal(formatRfc3339NanoUTC(1_714_557_600_000_000_123n), '2024-05-01T10:00:00.000000123Z');
});

test('parseK8sRecord: streams, tags, empty lines, data with spaces; malformed lines', () => {
  const r = parseK8sRecord(Buffer.from('2024-05-01T12:00:00.123456789+02:00 stderr P a b  c'))!;
  assert.equal(r.stream, 'stderr');
  assert.equal(r.partial, true);
  assert.equal(r.line.toString(), 'a b  c');
  assert.equal(r.timestamp, '2024-05-01T10:00:00.123456789Z');
  assert.equal(r.time.toISOString(), '2024-05-01T10:00:00.123Z');
  assert.equal(parseK8sRecord(Buffer.from('2024-05-01T12:00:00.1Z stdout F'))!.line.length, 0);
  assert.equal(parseK8sRecord(Buffer.from('2024-05-01T12:00:00.1Z stdin F x')), undefined);
  assert.equal(parseK8sRecord(Buffer.from('nonsense')), undefined);
});

test('readK8sLog: all records, since/until, tail counting lines made of P records', async (t) => {
  const d = tmpdir(t);
  const f = path.join(d, 'log');
  fs.writeFileSync(f, rec(1, 'stdout', 'F', 'one') + rec(2, 'stderr', 'F', 'two') + rec(3, 'stdout', 'P', 'thr') + rec(3, 'stdout', 'F', 'ee') + rec(4, 'stdout', 'F', 'four') + '2024-05-01T10:00:05.0Z stdout F incompl');
  assert.deepEqual(await all(readContainerLogRecords(f)), ['stdout:F:one', 'stderr:F:two', 'stdout:P:thr', 'stdout:F:ee', 'stdout:F:four']);
  const t2 = Date.UTC(2024, 4, 1, 10, 0, 2) / 1000;
  assert.deepEqual(await all(readContainerLogRecords(f, { since: t2, until: t2 + 2 })), ['stderr:F:two', 'stdout:P:thr', 'stdout:F:ee']);
  assert.deepEqual(await all(readContainerLogRecords(f, { tail: 2 })), ['stdout:P:thr', 'stdout:F:ee', 'stdout:F:four']);
  assert.deepEqual(await all(readContainerLogRecords(f, { tail: 1 })), ['stdout:F:four']);
  assert.deepEqual(await all(readContainerLogRecords(f, { tail: 0 })), []);
  assert.equal((await all(readContainerLogRecords(f, { tail: 100 }))).length, 5);
  // A trailing P record (output without a newline yet) is a line of its own.
  fs.writeFileSync(f, rec(1, 'stdout', 'F', 'a') + rec(2, 'stdout', 'P', 'prompt$ '));
  assert.deepEqual(await all(readContainerLogRecords(f, { tail: 1 })), ['stdout:P:prompt$ ']);
  assert.deepEqual(await all(readContainerLogRecords(path.join(d, 'missing'))), []);
});

test('tail of a huge log reads only the end of the file', async (t) => {
  const d = tmpdir(t);
  const f = path.join(d, 'big.log');
  // 4 GiB of log: 16 MiB of records at the start, then a sparse hole (garbage: no newline in 4 GiB),
  // then the last records. Reading it from the start would take far longer than the bound below.
  const line = rec(1, 'stdout', 'F', 'x'.repeat(100));
  fs.writeFileSync(f, line.repeat(Math.floor((16 << 20) / line.length)));
  fs.truncateSync(f, 4 * 1024 ** 3 - 1);
  const lastRecords = Array.from({ length: 5000 }, (_, i) => rec(9, 'stdout', 'F', `last-${i}`)).join('');
  fs.appendFileSync(f, '\n' + lastRecords);
  // Count the bytes the reader reads (the module object itself, not TypeScript's read-only view of it).
  const fsModule = require('node:fs') as { readSync: typeof fs.readSync };
  const realRead = fsModule.readSync;
  let bytes = 0;
  fsModule.readSync = ((...args: Parameters<typeof fs.readSync>) => {
    const n = realRead(...args);
    bytes += n;
    return n;
  }) as typeof fs.readSync;
  t.after(() => (fsModule.readSync = realRead));
  const started = Date.now();
  const got = await all(readContainerLogRecords(f, { tail: 3 }));
  fsModule.readSync = realRead;
  assert.deepEqual(got, ['stdout:F:last-4997', 'stdout:F:last-4998', 'stdout:F:last-4999']);
  assert.ok(bytes < 1 << 20, `read ${bytes} bytes`);
  assert.ok(Date.now() - started < 2000);
  const fd = fs.openSync(f, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    assert.equal(size - tailOffset(fd, size, 5000), Buffer.byteLength(lastRecords));
  } finally {
    fs.closeSync(fd);
  }
});

test('follow: yields records as they are appended, stops when followUntil resolves or on abort', async (t) => {
  const d = tmpdir(t);
  const f = path.join(d, 'log');
  fs.writeFileSync(f, rec(1, 'stdout', 'F', 'first'));
  let finish!: () => void;
  const exited = new Promise<void>((r) => (finish = r));
  const seen: string[] = [];
  const reader = (async () => {
    for await (const r of readContainerLogRecords(f, { follow: true, followUntil: exited })) {
      seen.push(r.line.toString());
      if (seen.length === 1) {
        // Written in two pieces: the reader must wait for the newline.
        fs.appendFileSync(f, rec(2, 'stdout', 'F', 'sec').slice(0, 20));
        setTimeout(() => fs.appendFileSync(f, rec(2, 'stdout', 'F', 'sec').slice(20)), 50);
      }
      if (seen.length === 2) {
        fs.appendFileSync(f, rec(3, 'stderr', 'F', 'third'));
        finish();
      }
    }
  })();
  await Promise.race([reader, new Promise((_r, rej) => setTimeout(() => rej(new Error('follow did not end')), 5000))]);
  assert.deepEqual(seen, ['first', 'sec', 'third']);

  const ac = new AbortController();
  const got: string[] = [];
  const r2 = (async () => {
    for await (const r of readContainerLogRecords(f, { follow: true, tail: 1, signal: ac.signal })) {
      got.push(r.line.toString());
      ac.abort();
    }
  })();
  await Promise.race([r2, new Promise((_r, rej) => setTimeout(() => rej(new Error('abort did not end follow')), 5000))]);
  assert.deepEqual(got, ['third']);
});

test('tail across block boundaries matches a forward count, for many sizes of n', async (t) => {
  const d = tmpdir(t);
  const f = path.join(d, 'log');
  // Records of varied length (some P pieces), so that records straddle the 64 KiB blocks.
  let text = '';
  const lines: string[][] = [];
  let cur: string[] = [];
  for (let i = 0; i < 6000; i++) {
    const partial = i % 7 === 3;
    const data = `${i}-` + 'y'.repeat((i * 37) % 300);
    text += rec(i % 60, i % 2 ? 'stderr' : 'stdout', partial ? 'P' : 'F', data);
    cur.push(data);
    if (!partial) {
      lines.push(cur);
      cur = [];
    }
  }
  fs.writeFileSync(f, text);
  for (const n of [1, 2, 3, 100, 1234, 4999, lines.length, lines.length + 10]) {
    const got = (await all(readContainerLogRecords(f, { tail: n }))).map((s) => s.split(':').slice(2).join(':'));
    assert.deepEqual(got, lines.slice(-n).flat(), `tail ${n}`);
  }
});
