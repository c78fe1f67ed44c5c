// The log drivers' option checks (docker's wording) and the reader of a log across its files:
// rotated (plain and gzip), held, current; tail counted backwards across files, since/until,
// follow over a replacement of the current file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { detailsPrefix, logAttributes, parseHumanSize, resolveLogConfig, daemonLogConfig, logPolicy } from '../../src/logs/config';
import { conmonCap } from '../../src/logs/rotate';
import { readContainerLog } from '../../src/logs/reader';
import { generationPath, generationsDir, logSize } from '../../src/logs/files';
import { isKind } from '../../src/common/errors';

const DEF = { Type: 'json-file', Config: {} };

function badCreate(cfg: { Type?: string; Config?: Record<string, string> }, message: string): void {
  assert.throws(() => resolveLogConfig({ Type: cfg.Type ?? '', Config: cfg.Config ?? {} }, DEF), (err: unknown) => {
    assert.ok(isKind(err, 'InvalidParameter'), String(err));
    assert.equal((err as Error).message, message);
    return true;
  });
}

test('sizes parse as go-units FromHumanSize (decimal), with its errors', () => {
  assert.equal(parseHumanSize('1m'), 1_000_000);
  assert.equal(parseHumanSize('10k'), 10_000);
  assert.equal(parseHumanSize('1.5MB'), 1_500_000);
  assert.equal(parseHumanSize('2MiB'), 2_000_000);
  assert.equal(parseHumanSize('123'), 123);
  assert.throws(() => parseHumanSize('abc'), /^Error: invalid size: 'abc'$/);
  assert.throws(() => parseHumanSize('1x'), /^Error: invalid suffix: 'x'$/);
});

test('create-time checks: drivers, options and values, in dockerd\'s words', () => {
  badCreate({ Type: 'foo' }, "logger: no log driver named 'foo' is registered");
  badCreate({ Config: { foo: 'bar' } }, "unknown log opt 'foo' for json-file log driver");
  badCreate({ Type: 'local', Config: { foo: 'bar' } }, "unknown log opt 'foo' for log driver local");
  badCreate({ Config: { 'max-size': 'abc' } }, "invalid size: 'abc'");
  badCreate({ Config: { 'max-size': '1m', 'max-file': 'x' } }, 'strconv.Atoi: parsing "x": invalid syntax');
  badCreate({ Config: { 'max-size': '1m', 'max-file': '0' } }, 'max-file cannot be less than 1');
  badCreate({ Config: { compress: 'true', 'max-size': '1m' } }, 'compress cannot be true when max-file is less than 2 or max-size is not set');
  badCreate({ Type: 'local', Config: { 'max-file': '1' } }, 'compression cannot be enabled when max file count is 1');
  // none takes anything, as dockerd's ValidateLogOpts.
  assert.deepEqual(resolveLogConfig({ Type: 'none', Config: { foo: 'x' } }, DEF), { Type: 'none', Config: { foo: 'x' } });
  // An empty Type takes the daemon's driver and options; a container's own options win.
  const daemon = { Type: 'local', Config: { 'max-size': '5m' } };
  assert.deepEqual(resolveLogConfig({ Type: '', Config: { 'max-file': '2' } }, daemon), { Type: 'local', Config: { 'max-file': '2', 'max-size': '5m' } });
  assert.deepEqual(resolveLogConfig({ Type: 'json-file', Config: {} }, daemon), { Type: 'json-file', Config: {} });
  assert.throws(() => daemonLogConfig('json-file', { 'max-size': 'zz' }), /^Error: failed to set log opts: invalid size: 'zz'$/);
});

test('policies: local defaults, and conmon\'s cap keeps max-size x max-file', () => {
  assert.deepEqual(logPolicy({ Type: 'local', Config: {} }), { readable: true, maxSize: 20 * 1024 * 1024, maxFile: 5, compress: true });
  assert.deepEqual(logPolicy({ Type: 'json-file', Config: { 'max-file': '3' } }), { readable: true, maxSize: -1, maxFile: 1, compress: false });
  const p = logPolicy({ Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '3' } });
  const cap = conmonCap(p)!;
  // At most max-file + 2 files exist while berthd has not caught up with conmon.
  assert.ok(cap * (p.maxFile + 2) <= p.maxSize * p.maxFile);
  assert.equal(conmonCap(logPolicy({ Type: 'json-file', Config: { 'max-size': '1m' } })), 1_000_000);
  assert.equal(conmonCap(logPolicy({ Type: 'json-file', Config: {} })), undefined);
});

test('--details attributes: labels, env, tag; sorted and query-escaped', () => {
  const attrs = logAttributes(
    { Type: 'json-file', Config: { labels: 'app,missing', env: 'FOO', 'env-regex': '^RE', tag: '{{.Name}}/{{.ID}}' } },
    { id: 'a'.repeat(64), name: '/web', imageId: 'sha256:' + 'b'.repeat(64), imageName: 'busybox', labels: { app: 'x y', other: '1' }, env: ['FOO=a,b', 'REX=1', 'NO=2'], hostname: 'h', command: 'sh' },
  );
  assert.deepEqual(attrs, { app: 'x y', FOO: 'a,b', REX: '1', tag: `web/${'a'.repeat(12)}` });
  assert.equal(detailsPrefix(attrs), `FOO=a%2Cb,REX=1,app=x+y,tag=web%2F${'a'.repeat(12)} `);
  assert.equal(detailsPrefix({}), ' ');
});

function rec(n: number, t = `2024-05-01T10:00:${String(n % 60).padStart(2, '0')}.000000000Z`): string {
  return `${t} stdout F line${n}\n`;
}

async function collect(file: string, opts: Parameters<typeof readContainerLog>[1] = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of readContainerLog(file, opts)) for (const r of batch) out.push(r.line.toString());
  return out;
}

function tmpLog(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-logs-'));
  return path.join(dir, 'container.log');
}

test('reading across generations (plain and gzip) and the current file; tail across files; since', async (t) => {
  const log = tmpLog();
  t.after(() => fs.rmSync(path.dirname(log), { recursive: true, force: true }));
  const lines = (from: number, to: number): string => Array.from({ length: to - from + 1 }, (_, i) => rec(from + i)).join('');
  fs.mkdirSync(generationsDir(log));
  fs.writeFileSync(`${generationPath(log, 7)}.gz`, zlib.gzipSync(lines(1, 10)));
  fs.writeFileSync(generationPath(log, 8), lines(11, 20));
  fs.writeFileSync(`${generationPath(log, 9)}.gz`, zlib.gzipSync(lines(21, 30)));
  // A plain file conmon made itself (no arm in place), already linked as generation 10, then
  // replaced by the armed generation 11 (the log's symlink now points at it).
  fs.writeFileSync(generationPath(log, 10), lines(31, 40));
  fs.writeFileSync(generationPath(log, 11), lines(41, 45));
  fs.symlinkSync(path.relative(path.dirname(log), generationPath(log, 11)), log);
  // The armed, empty next generation and a stray compression temp file are not part of the log.
  fs.writeFileSync(generationPath(log, 12), '');
  fs.symlinkSync(path.relative(path.dirname(log), generationPath(log, 12)), `${log}.tmp`);
  fs.writeFileSync(`${generationPath(log, 8)}.tmp-gz`, 'junk');
  const all = await collect(log);
  assert.deepEqual(all, Array.from({ length: 45 }, (_, i) => `line${i + 1}`));
  assert.deepEqual(await collect(log, { tail: 3 }), ['line43', 'line44', 'line45']);
  assert.deepEqual(await collect(log, { tail: 12 }), Array.from({ length: 12 }, (_, i) => `line${34 + i}`));
  assert.deepEqual((await collect(log, { tail: 27 }))[0], 'line19');
  assert.equal((await collect(log, { tail: 1000 })).length, 45);
  assert.deepEqual(await collect(log, { tail: 0 }), []);
  // since/until in seconds (line n is at second n % 60).
  const base = Date.UTC(2024, 4, 1, 10, 0, 0) / 1000;
  assert.deepEqual(await collect(log, { since: base + 38, until: base + 42 }), ['line38', 'line39', 'line40', 'line41']);
  // conmon's own plain file as the current one, also linked as a generation: read once.
  fs.rmSync(log);
  fs.linkSync(generationPath(log, 10), log);
  fs.rmSync(generationPath(log, 11));
  assert.equal((await collect(log)).length, 40);
  assert.equal(logSize(log), lines(1, 10).length - lines(1, 10).length + fs.statSync(generationPath(log, 8)).size + fs.statSync(generationPath(log, 10)).size + fs.statSync(`${generationPath(log, 7)}.gz`).size + fs.statSync(`${generationPath(log, 9)}.gz`).size);
});

test('follow goes on across a replacement of the current file, without gap or repeat', async (t) => {
  const log = tmpLog();
  t.after(() => fs.rmSync(path.dirname(log), { recursive: true, force: true }));
  fs.writeFileSync(log, rec(1));
  let finish!: () => void;
  const followUntil = new Promise<void>((r) => (finish = r));
  const seen: string[] = [];
  const reading = (async () => {
    for await (const batch of readContainerLog(log, { follow: true, followUntil })) for (const r of batch) seen.push(r.line.toString());
  })();
  let n = 1;
  const write = (count: number): void => {
    for (let i = 0; i < count; i++) fs.appendFileSync(log, rec(++n));
  };
  for (let round = 0; round < 5; round++) {
    write(50);
    await new Promise((r) => setTimeout(r, 20));
    // conmon's switch: the finished file keeps a name (a generation), a new one takes the log's.
    fs.mkdirSync(generationsDir(log), { recursive: true });
    fs.renameSync(log, generationPath(log, round + 1));
    fs.writeFileSync(`${log}.tmp`, '');
    fs.renameSync(`${log}.tmp`, log);
    write(10);
  }
  write(5);
  await new Promise((r) => setTimeout(r, 300));
  finish();
  await reading;
  assert.deepEqual(seen, Array.from({ length: n }, (_, i) => `line${i + 1}`));
});

test('follow goes on by number when retention dropped the file being read: no generation skipped', async (t) => {
  const log = tmpLog();
  t.after(() => fs.rmSync(path.dirname(log), { recursive: true, force: true }));
  const lines = (from: number, to: number): string => Array.from({ length: to - from + 1 }, (_, i) => rec(from + i)).join('');
  const pointAt = (seq: number): void => {
    fs.symlinkSync(path.relative(path.dirname(log), generationPath(log, seq)), `${log}.lnk`);
    fs.renameSync(`${log}.lnk`, log);
  };
  fs.mkdirSync(generationsDir(log));
  fs.writeFileSync(generationPath(log, 1), lines(1, 10));
  pointAt(1);
  let finish!: () => void;
  const followUntil = new Promise<void>((r) => (finish = r));
  const seen: string[] = [];
  const reading = (async () => {
    for await (const batch of readContainerLog(log, { follow: true, followUntil })) for (const r of batch) seen.push(r.line.toString());
  })();
  while (seen.length < 10) await new Promise((r) => setTimeout(r, 5));
  // While the follower waits at the end of generation 1, conmon fills 2 and 3 and moves on to 4
  // (the numbers skip 5: berthd leaves one free below each arm), and retention (max-file 3)
  // drops 1. The follower, holding 1 open, finds it gone from the listing.
  fs.writeFileSync(generationPath(log, 2), lines(11, 20));
  fs.writeFileSync(generationPath(log, 3), lines(21, 30));
  fs.writeFileSync(generationPath(log, 4), lines(31, 35));
  pointAt(4);
  fs.rmSync(generationPath(log, 1));
  await new Promise((r) => setTimeout(r, 400));
  fs.appendFileSync(generationPath(log, 4), lines(36, 40));
  fs.writeFileSync(generationPath(log, 6), lines(41, 42));
  pointAt(6);
  await new Promise((r) => setTimeout(r, 400));
  finish();
  await reading;
  assert.deepEqual(seen, Array.from({ length: 42 }, (_, i) => `line${i + 1}`));
});
