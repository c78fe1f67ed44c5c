// The keeper of a rotating log's files, driven as conmon drives them (append through the log's
// name; switch = close, open <log>.tmp with O_TRUNC, rename it over the log): generations, the
// arm, retention, compression, a switch berthd did not arm, and the reader over the result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogFilesKeeper, LogRotation, conmonCap } from '../../src/logs/rotate';
import { silentLogger } from '../../src/common/logger';
import { allGenerations, armedTarget, generationsDir, logSize } from '../../src/logs/files';
import { logPolicy } from '../../src/logs/config';
import { readContainerLog } from '../../src/logs/reader';

const quiet = { warn: () => {}, debug: () => {} };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** conmon's side: appends records through the log's name, switches files as conmon does. */
class FakeConmon {
  private fd: number;
  n = 0;
  constructor(private readonly logPath: string) {
    this.fd = fs.openSync(logPath, 'a');
  }
  write(count: number): void {
    let s = '';
    for (let i = 0; i < count; i++) s += `2024-05-01T10:00:00.000000000Z stdout F ${++this.n}\n`;
    fs.writeSync(this.fd, s);
  }
  switch(): void {
    fs.closeSync(this.fd);
    this.fd = fs.openSync(`${this.logPath}.tmp`, fs.constants.O_WRONLY | fs.constants.O_TRUNC | fs.constants.O_CREAT, 0o600);
    fs.renameSync(`${this.logPath}.tmp`, this.logPath);
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

async function lines(logPath: string): Promise<number[]> {
  const out: number[] = [];
  for await (const b of readContainerLog(logPath)) for (const r of b) out.push(Number(r.line.toString()));
  return out;
}

function nonEmptyGenerations(logPath: string): string[] {
  return allGenerations(logPath).filter((g) => fs.statSync(g.path).size > 0).map((g) => path.basename(g.path));
}

test('switches land in numbered generations; max-file are kept; a switch before the arm loses nothing', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rotate-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logPath = path.join(dir, 'container.log');
  const cfg = { Type: 'json-file', Config: { 'max-size': '10k', 'max-file': '3' } };
  const keeper = new LogFilesKeeper(quiet, new Int32Array(new SharedArrayBuffer(4)));
  // A log from before (a plain file) is kept as the oldest generation.
  fs.writeFileSync(logPath, '2024-05-01T09:00:00.000000000Z stdout F 0\n');
  const opts = keeper.beforeStart(logPath, cfg);
  assert.deepEqual(opts, { none: false, logSizeMax: conmonCap(logPolicy(cfg)) });
  assert.ok(fs.lstatSync(logPath).isSymbolicLink());
  const conmon = new FakeConmon(logPath);
  t.after(() => conmon.close());
  keeper.watch('c1', logPath, cfg);
  t.after(() => keeper.close());
  assert.ok(armedTarget(logPath), 'the next switch is armed');

  conmon.write(10);
  conmon.switch();
  assert.ok(fs.lstatSync(logPath).isSymbolicLink(), 'conmon renamed the arm (a symlink) over the log');
  await sleep(100);
  conmon.write(10);
  // Two switches before berthd reacts: the second makes a plain file, which berthd links in.
  conmon.switch();
  conmon.write(10);
  conmon.switch();
  assert.ok(fs.lstatSync(logPath).isFile());
  conmon.write(10);
  await sleep(100);
  assert.ok(armedTarget(logPath), 're-armed');
  assert.deepEqual(await lines(logPath), Array.from({ length: 30 }, (_, i) => 11 + i), 'the newest 3 generations, in order, nothing lost');
  assert.equal(nonEmptyGenerations(logPath).length, 3);

  // Stop: the arm and its empty generation go; the files stay readable.
  keeper.unwatch('c1');
  assert.equal(armedTarget(logPath), undefined);
  assert.equal(fs.existsSync(`${logPath}.tmp`), false);
  assert.equal(allGenerations(logPath).filter((g) => fs.statSync(g.path).size === 0).length, 0);
  assert.equal((await lines(logPath)).length, 30);
  // A new run starts a generation of its own; the old ones count against max-file.
  keeper.beforeStart(logPath, cfg);
  assert.equal(fs.statSync(logPath).size, 0);
  assert.deepEqual(await lines(logPath), Array.from({ length: 20 }, (_, i) => 21 + i));
  assert.ok(logSize(logPath) > 0);
});

test('compress=true gzips finished generations; the reader inflates them', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rotate-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logPath = path.join(dir, 'container.log');
  const cfg = { Type: 'local', Config: { 'max-size': '10k', 'max-file': '4' } };
  const keeper = new LogFilesKeeper(quiet, new Int32Array(new SharedArrayBuffer(4)));
  keeper.beforeStart(logPath, cfg);
  const conmon = new FakeConmon(logPath);
  t.after(() => conmon.close());
  keeper.watch('c2', logPath, cfg);
  t.after(() => keeper.close());
  for (let i = 0; i < 5; i++) {
    conmon.write(100);
    conmon.switch();
    await sleep(50);
  }
  conmon.write(5);
  const deadline = Date.now() + 5000;
  while (fs.readdirSync(generationsDir(logPath)).filter((f) => f.endsWith('.gz')).length < 3 && Date.now() < deadline) await sleep(20);
  const gz = fs.readdirSync(generationsDir(logPath)).filter((f) => f.endsWith('.gz'));
  assert.equal(gz.length, 3, fs.readdirSync(generationsDir(logPath)).join(' '));
  assert.deepEqual(await lines(logPath), Array.from({ length: 305 }, (_, i) => 201 + i));
  const tail: number[] = [];
  for await (const b of readContainerLog(logPath, { tail: 150 })) for (const r of b) tail.push(Number(r.line.toString()));
  assert.deepEqual(tail, Array.from({ length: 150 }, (_, i) => 356 + i));
});

test('logs that do not rotate cost no worker thread and no message', async () => {
  const rot = new LogRotation(silentLogger);
  try {
    rot.watch('a'.repeat(64), '/nonexistent/container.log', { Type: 'json-file', Config: {} });
    rot.watch('b'.repeat(64), '/nonexistent/container.log', { Type: 'json-file', Config: { 'max-size': '10m' } });
    assert.equal((rot as unknown as { worker?: unknown }).worker, undefined, 'no worker started');
    await rot.unwatch('a'.repeat(64));
  } finally {
    rot.close();
  }
});
