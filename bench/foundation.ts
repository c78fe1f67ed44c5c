// Foundation benchmarks: how fast berthd imports and loads a large layer compared with `tar -x`
// of the same bytes, and how much memory an idle berthd holds.
//
// These are measurements, not tests: each figure is printed beside a baseline measured in the
// same run on the same file system (the machine is shared and noisy, so only ratios within one
// run mean anything), with the target from the issue and PASS/MISS. Every timed step runs twice
// and the better run counts: the first run of anything pays for cold caches and lazy code.
//
// Run: `npx tsc -p tsconfig.json && node dist/bench/foundation.js` (as root; see bench/README.md).
// import and load are driven through the docker CLI (/usr/local/bin/docker), as a user runs them.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { bridgeConfig } from '../test/containers/fixtures';
import { destroyDaemon, startDaemon, type TestDaemon } from '../test/helpers/daemon';
import { log, MiB, sleep, sync } from './lib';

interface Options {
  /** Total bytes of file data in the generated layer. */
  layerBytes: number;
  /** Timed repetitions of each step (the best counts). */
  runs: number;
  /** Seconds berthd sits idle before its RSS is read. */
  idleSeconds: number;
  /** Reuse (or create) the generated layer and archive here instead of a fresh temp dir. */
  cacheDir?: string;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { layerBytes: 512 * MiB, runs: 3, idleSeconds: 5 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--layer-mb') opts.layerBytes = Number(value()) * MiB;
    else if (a === '--runs') opts.runs = Number(value());
    else if (a === '--idle-seconds') opts.idleSeconds = Number(value());
    else if (a === '--cache-dir') opts.cacheDir = value();
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node dist/bench/foundation.js [--layer-mb N] [--runs N] [--idle-seconds N] [--cache-dir DIR]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(opts.layerBytes > 0) || !(opts.runs >= 1) || !(opts.idleSeconds >= 0)) throw new Error('invalid options');
  return opts;
}

// ---- the data set ---------------------------------------------------------------------------

/** A small deterministic PRNG (mulberry32), so every run measures the same tree. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Generates a tree shaped like a distribution's /usr: tens of thousands of small files (most
 * under 8 KiB) in a few thousand directories, a thousand medium ones, a few big ones making up
 * the rest, plus symlinks, hardlinks and some names longer than ustar's 100 bytes. File bodies
 * are random bytes (incompressible, like the binaries that dominate real layers).
 */
function generateTree(root: string, totalBytes: number): { files: number; bytes: number } {
  const rand = prng(0xbe47);
  // One random pool that file bodies are sliced from at random offsets: cheap, and no two
  // files share their content by accident at the same offset.
  const pool = Buffer.alloc(64 * MiB);
  for (let off = 0; off < pool.length; off += 4) pool.writeUInt32LE((rand() * 4294967296) >>> 0, off);
  const body = (size: number): Buffer => {
    const start = Math.floor(rand() * (pool.length - size));
    return pool.subarray(start, start + size);
  };

  const dirs: string[] = [];
  for (let a = 0; a < 40; a++) {
    for (let b = 0; b < 50; b++) dirs.push(`lib${a}/pkg-${b}`);
  }
  for (const d of dirs) fs.mkdirSync(path.join(root, d), { recursive: true });
  const longDir = `share/${'very-long-directory-name-'.repeat(5)}end`;
  fs.mkdirSync(path.join(root, longDir), { recursive: true });

  let bytes = 0;
  let files = 0;
  const write = (rel: string, size: number): void => {
    fs.writeFileSync(path.join(root, rel), body(size));
    bytes += size;
    files++;
  };
  // Small files (32 B to 16 KiB, log-uniform, ~2.6 KiB on average): ~20% of the bytes.
  const smallBudget = totalBytes * 0.2;
  for (let i = 0; bytes < smallBudget; i++) {
    const size = Math.floor(32 * Math.exp(rand() * Math.log(512)));
    write(`${dirs[i % dirs.length]}/f${i}.so`, size);
  }
  // Medium files (64 KiB to 1 MiB): ~40%.
  const mediumBudget = totalBytes * 0.6;
  for (let i = 0; bytes < mediumBudget; i++) {
    const size = 64 * 1024 + Math.floor(rand() * 960 * 1024);
    write(`${dirs[(i * 7) % dirs.length]}/m${i}.bin`, size);
  }
  for (let i = 0; i < 200; i++) write(`${longDir}/${'long-file-name-'.repeat(8)}${i}`, 100 + Math.floor(rand() * 2000));
  // Big files: the rest, at most 64 MiB each.
  fs.mkdirSync(path.join(root, 'big'));
  for (let i = 0; bytes < totalBytes; i++) write(`big/b${i}.dat`, Math.min(64 * MiB, totalBytes - bytes, pool.length - 1));
  for (let i = 0; i < 500; i++) {
    fs.symlinkSync(`../pkg-${i % 50}/f${i}.so`, path.join(root, dirs[i % dirs.length], `link${i}`));
  }
  for (let i = 0; i < 200; i++) {
    const target = path.join(root, dirs[i % dirs.length], `f${i}.so`);
    if (fs.existsSync(target)) fs.linkSync(target, path.join(root, dirs[i % dirs.length], `hard${i}`));
  }
  return { files, bytes };
}

interface DataSet {
  dir: string;
  layerTar: string;
  layerSize: number;
  files: number;
}

export function prepareData(dir: string, layerBytes: number): DataSet {
  const stamp = path.join(dir, `dataset-${layerBytes}.json`);
  if (fs.existsSync(stamp)) return JSON.parse(fs.readFileSync(stamp, 'utf8')) as DataSet;
  fs.mkdirSync(dir, { recursive: true });
  const tree = path.join(dir, 'tree');
  fs.rmSync(tree, { recursive: true, force: true });
  fs.mkdirSync(tree);
  log(`generating a ${Math.round(layerBytes / MiB)} MiB tree in ${tree}`);
  const { files } = generateTree(tree, layerBytes);
  const layerTar = path.join(dir, 'layer.tar');
  // GNU tar's default format: what `tar -c ... | docker import -` sends in practice.
  execFileSync('tar', ['--sort=name', '--numeric-owner', '-C', tree, '-cf', layerTar, '.']);
  fs.rmSync(tree, { recursive: true, force: true });
  const data: DataSet = { dir, layerTar, layerSize: fs.statSync(layerTar).size, files };
  fs.writeFileSync(stamp, JSON.stringify(data));
  return data;
}

// ---- request bodies -------------------------------------------------------------------------
//
// Every timed run sends a layer of its own: the data set's tar with one small file put in front
// (tars concatenate when the first has no end-of-archive blocks). A layer seen before would be
// found unpacked already (snapshots are shared by chain ID), and removing the previous run's
// image instead would make this run pay for that: ext4 skips recently freed inodes when it
// allocates new ones, which made file creation measurably slower right after a big delete.

/** A ustar header block for a regular file. */
function ustarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const octal = (value: number, offset: number, width: number): void => {
    h.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'latin1');
  };
  if (Buffer.byteLength(name) > 100) throw new Error(`name too long for ustar: ${name}`);
  h.write(name, 0, 100, 'utf8');
  octal(0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(1704067200, 136, 12);
  h.write('0', 156, 1, 'latin1');
  h.write('ustar\x0000', 257, 8, 'latin1');
  h.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

function padding(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512);
}

/** The tar entry put in front of the data set's layer for one run. */
function runMarker(label: string): Buffer {
  const body = Buffer.from(`${label}\n`);
  return Buffer.concat([ustarHeader(`.bench-${label}`, body.length), body, padding(body.length)]);
}

/** A body: buffers and files, in order. */
type Part = Buffer | { file: string };

function partsSize(parts: Part[]): number {
  return parts.reduce((n, p) => n + (Buffer.isBuffer(p) ? p.length : fs.statSync(p.file).size), 0);
}

async function* partsStream(parts: Part[]): AsyncGenerator<Buffer> {
  for (const p of parts) {
    if (Buffer.isBuffer(p)) yield p;
    else for await (const c of fs.createReadStream(p.file, { highWaterMark: MiB })) yield c as Buffer;
  }
}

function sha256Parts(parts: Part[]): Promise<string> {
  return (async () => {
    const h = createHash('sha256');
    for await (const c of partsStream(parts)) h.update(c);
    return `sha256:${h.digest('hex')}`;
  })();
}

function importBody(data: DataSet, label: string): Part[] {
  return [runMarker(label), { file: data.layerTar }];
}

/**
 * A `docker save` archive in the legacy layout `docker load` has always read, made on the fly:
 * the layer first, then its config, then manifest.json (the order docker save writes).
 */
async function loadBody(data: DataSet, label: string, tag: string): Promise<Part[]> {
  const layer = importBody(data, label);
  const layerSize = partsSize(layer);
  const config = Buffer.from(JSON.stringify({
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [await sha256Parts(layer)] },
    history: [{ created: '2024-01-01T00:00:00Z', comment: label }],
  }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: ['layer/layer.tar'] }]));
  return [
    ustarHeader('layer/layer.tar', layerSize), ...layer, padding(layerSize),
    ustarHeader(configName, config.length), config, padding(config.length),
    ustarHeader('manifest.json', manifest.length), manifest, padding(manifest.length),
    Buffer.alloc(1024),
  ];
}

// ---- measuring ------------------------------------------------------------------------------

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/**
 * Runs tar -x and returns the CPU seconds (user + system) it used, which bash's `times` reports
 * for its children; the shell itself costs a millisecond or two of the wall time.
 */
function runTarExtract(tarFile: string, dest: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const script = 'tar -x --numeric-owner -f "$1" -C "$2" || exit; times';
    const p = spawn('bash', ['-c', script, 'bench', tarFile, dest], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`tar -x exited ${code}: ${err}`));
        return;
      }
      // Second line of `times`: the children's user and system time, as "0m1.234s 0m5.678s".
      const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/m.exec(out.trim().split('\n')[1] ?? '');
      resolve(m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN);
    });
  });
}

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSecondsOf(pid: number): number {
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Per-thread user and system CPU seconds so far, by thread ID (with the thread's name). */
function threadCpuOf(pid: number): Map<number, { name: string; user: number; sys: number }> {
  const out = new Map<number, { name: string; user: number; sys: number }>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), { name, user: Number(fields[11]) / CLOCK_TICKS, sys: Number(fields[12]) / CLOCK_TICKS });
  }
  return out;
}

/**
 * The threads that used at least 0.05 CPU-s between two threadCpuOf() readings, busiest first:
 * "main" for the main thread, otherwise the thread's name and ID; user+system each.
 */
function threadDeltas(pid: number, before: ReturnType<typeof threadCpuOf>, after: ReturnType<typeof threadCpuOf>): string {
  const rows: { label: string; user: number; sys: number }[] = [];
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { user: 0, sys: 0 };
    const user = a.user - b.user;
    const sys = a.sys - b.sys;
    if (user + sys < 0.05) continue;
    rows.push({ label: tid === pid ? 'main' : `${a.name}:${tid}`, user, sys });
  }
  rows.sort((x, y) => y.user + y.sys - (x.user + x.sys));
  return rows.map((r) => `${r.label} ${r.user.toFixed(2)}u+${r.sys.toFixed(2)}s`).join(', ');
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** The client whose `docker import` and `docker load` are timed. */
const DOCKER_CLI = '/usr/local/bin/docker';

/** Writes a body to a file (before a timed step: the CLI reads it from the page cache). */
async function writeParts(parts: Part[], file: string): Promise<void> {
  await pipeline(Readable.from(partsStream(parts)), fs.createWriteStream(file));
}

/** Runs the docker CLI against the daemon; rejects with its output unless it exits 0. */
function dockerCli(socket: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(DOCKER_CLI, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOCKER_HOST: `unix://${socket}` } });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker ${args.join(' ')} exited ${code}: ${out.slice(0, 500)}`))));
  });
}

/** Streams a body to the daemon and returns the response. */
function post(socket: string, urlPath: string, parts: Part[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: urlPath, method: 'POST', headers: { 'Content-Type': 'application/x-tar', 'Content-Length': String(partsSize(parts)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    pipeline(Readable.from(partsStream(parts)), req).catch((err: unknown) => req.destroy(err as Error));
  });
}

function request(socket: string, method: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: urlPath, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A JSON-stream response carries errors inside a 200; either way is a failed step. */
function checkResponse(what: string, r: { status: number; body: string }): void {
  if (r.status !== 200 || /"error(Detail)?"\s*:/.test(r.body)) throw new Error(`${what} failed (${r.status}): ${r.body.slice(0, 500)}`);
}

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The RSS of a bare, idle node process: what any Node daemon costs before doing anything. */
async function bareNodeRss(idleSeconds: number): Promise<number> {
  const p = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(idleSeconds * 1000);
    return rssOf(p.pid!);
  } finally {
    p.kill('SIGKILL');
  }
}

interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: number;
  target: string;
  pass: boolean;
}

function printTable(rows: Row[]): void {
  const header = ['figure', 'value', 'baseline', 'ratio', 'target', 'result'];
  const cells = rows.map((r) => [r.figure, r.value, r.baseline, `${(r.ratio * 100).toFixed(0)}%`, r.target, r.pass ? 'PASS' : 'MISS']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string => c.map((s, i) => s.padEnd(widths[i])).join('  ').trimEnd();
  process.stdout.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${cells.map(line).join('\n')}\n`);
}

const mbps = (bytes: number, seconds: number): number => bytes / MiB / seconds;

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: berthd needs to mount and chown');
  let d: TestDaemon | undefined;
  try {
    // A default bridge of its own (never berth0), though no container runs.
    d = await startDaemon({ name: 'bench', config: bridgeConfig() });
    const socket = d.socket;
    // The data sits beside the daemon's data root, so tar -x and berthd write to one file system.
    const data = prepareData(opts.cacheDir ?? path.join(d.dir, 'dataset'), opts.layerBytes);
    log(`layer: ${(data.layerSize / MiB).toFixed(0)} MiB tar, ${data.files} regular files`);

    // The three steps take turns, so that a busy spell on this shared machine slows all of them
    // rather than one; nothing is deleted until the end (see "request bodies" above).
    const times = { tar: [] as number[], import: [] as number[], load: [] as number[] };
    // CPU seconds of tar, and of berthd during each step: steadier than wall time when the
    // machine is busy, so printed beside it.
    const cpu = { tar: [] as number[], import: [] as number[], load: [] as number[] };
    // Per-thread figures of each step, to tell the main thread's share from the workers'.
    const threads = { import: [] as string[], load: [] as string[] };
    const daemonCpu = async (fn: () => Promise<void>, into: string[]): Promise<number> => {
      const pid = d!.proc.pid!;
      const before = cpuSecondsOf(pid);
      const beforeThreads = threadCpuOf(pid);
      await fn();
      into.push(threadDeltas(pid, beforeThreads, threadCpuOf(pid)));
      return cpuSecondsOf(pid) - before;
    };
    for (let i = 0; i < opts.runs; i++) {
      const dest = path.join(d.dir, `tar-x-${i}`);
      fs.mkdirSync(dest);
      sync();
      times.tar.push(await timed(async () => { cpu.tar.push(await runTarExtract(data.layerTar, dest)); }));

      // Each body is written to a file first (untimed) and removed after its step: one file,
      // so its removal frees no inodes the next step would have to skip.
      const body = path.join(d.dir, 'body.tar');
      await writeParts(importBody(data, `import-${i}`), body);
      sync();
      times.import.push(await timed(async () => {
        cpu.import.push(await daemonCpu(() => dockerCli(socket, ['import', body, `bench/imported:run${i}`]), threads.import));
      }));

      await writeParts(await loadBody(data, `load-${i}`, `bench/loaded:run${i}`), body);
      sync();
      times.load.push(await timed(async () => {
        cpu.load.push(await daemonCpu(() => dockerCli(socket, ['load', '-q', '-i', body]), threads.load));
      }));
      fs.rmSync(body);
      log(`run ${i + 1}: tar -x ${times.tar[i].toFixed(2)} s, import ${times.import[i].toFixed(2)} s, load ${times.load[i].toFixed(2)} s`);
    }
    // The import and load bodies are one marker entry longer; not worth counting.
    const rate = (t: number[]): number => mbps(data.layerSize, Math.min(...t));
    const tarRate = rate(times.tar);
    const rows: Row[] = [];
    const tarCell = `${tarRate.toFixed(0)} MB/s tar -x`;
    const layerName = `${Math.round(opts.layerBytes / MiB)}MB`;
    for (const [what, t] of [['import', times.import], ['load', times.load]] as const) {
      const r = rate(t);
      rows.push({ figure: `${what} 1x${layerName} layer`, value: `${r.toFixed(0)} MB/s`, baseline: tarCell, ratio: r / tarRate, target: '>= 70% of tar', pass: r / tarRate >= 0.7 });
    }

    // Idle RSS: a daemon that holds a few images, freshly started (a daemon's idle footprint,
    // not the high-water mark of the work above), left alone for a while.
    const rssAfterWork = rssOf(d.proc.pid!);
    const small = [ustarHeader('etc/hostname', 6), Buffer.from('bench\n'), padding(6), Buffer.alloc(1024)];
    for (const name of ['a', 'b', 'c']) {
      checkResponse('import', await post(socket, `/images/create?fromSrc=-&repo=bench/${name}&tag=latest&message=${name}`, small));
    }
    await d.restart();
    const images = await request(d.socket, 'GET', '/images/json');
    checkResponse('list', images);
    const count = (JSON.parse(images.body) as unknown[]).length;
    log(`berthd restarted with ${count} images; idle for ${opts.idleSeconds} s`);
    await sleep(opts.idleSeconds * 1000);
    const rss = rssOf(d.proc.pid!);
    const bare = await bareNodeRss(opts.idleSeconds);
    rows.push({ figure: `idle RSS (${count} images)`, value: `${(rss / MiB).toFixed(1)} MB`, baseline: `${(bare / MiB).toFixed(1)} MB bare node`, ratio: rss / bare, target: '<= 60 MB', pass: rss <= 60 * MiB });

    printTable(rows);
    const list = (t: number[]): string => t.map((x) => x.toFixed(2)).join('/');
    const bestCpu = (t: number[]): number => Math.min(...t);
    process.stdout.write([
      '',
      `${(data.layerSize / MiB).toFixed(0)} MiB tar of ${data.files} files; best of ${opts.runs} runs.`,
      `wall seconds: tar -x ${list(times.tar)}, import ${list(times.import)}, load ${list(times.load)}`,
      `CPU seconds:  tar -x ${list(cpu.tar)}, import ${list(cpu.import)}, load ${list(cpu.load)} (berthd's, all threads)`,
      `by CPU time (less noisy on a busy machine): import ${(bestCpu(cpu.tar) / bestCpu(cpu.import) * 100).toFixed(0)}% of tar, load ${(bestCpu(cpu.tar) / bestCpu(cpu.load) * 100).toFixed(0)}% of tar`,
      'berthd per thread (CPU-s, user+system), each run:',
      ...threads.import.map((t, i) => `  import ${i + 1}: ${t}`),
      ...threads.load.map((t, i) => `  load ${i + 1}: ${t}`),
      `berthd RSS right after that work: ${(rssAfterWork / MiB).toFixed(1)} MB`,
      '',
    ].join('\n'));
  } finally {
    await destroyDaemon(d);
    if (opts.cacheDir !== undefined) log(`kept the data set in ${opts.cacheDir}`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
