// Registry benchmark: push and pull through berthd (the docker CLI) against `berth registry serve`,
// beside skopeo against Debian's docker-registry (distribution 2.8), and beside the floor of a
// pull (Node's sha256 and gunzip of the same bytes), all measured in the same run.
//
//   big     one image with a single 256 MB layer of gzip-compressed random data (incompressible,
//           so a pull really gunzips 256 MB)
//   small   one image with 200 small layers (per-request cost dominates)
//   ingest  one 256 MB blob PUT monolithically by curl (a separate process), registry side only
//
// These are measurements, not tests: each figure is printed beside its baseline from this run,
// with the target from the issue and PASS/MISS. Each run starts both registries on fresh roots, so
// nothing is ever found "already exists"; berthd's copy is removed (docker rmi) before each pull.
//
// distribution is installed from Debian (`apt-get install docker-registry`) unless --no-compare;
// the package's own service is never left running (see ensureDistribution).
//
// Run: `npx tsc -p tsconfig.json && node dist/bench/registry.js` (as root; see bench/README.md).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough, Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { BERTH } from '../test/helpers/daemon';
import { setupDaemon, type CtrEnv } from '../test/containers/fixtures';
import { best, freePort, log, MiB, parseArgs, printTable, ratio, runMain, sleep, sync, timed, verdict, type Row } from './lib';

interface Options {
  bigMB: number;
  smallLayers: number;
  runs: number;
  compare: boolean;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { bigMB: 256, smallLayers: 200, runs: 1, compare: true };
  parseArgs(argv, 'usage: node dist/bench/registry.js [--big-mb N] [--layers N] [--runs N] [--no-compare]', (a, value) => {
    if (a === '--big-mb') opts.bigMB = value();
    else if (a === '--layers') opts.smallLayers = value();
    else if (a === '--runs') opts.runs = value();
    else if (a === '--compare') opts.compare = true;
    else if (a === '--no-compare') opts.compare = false;
    else return false;
    return true;
  });
  return opts;
}

// ---- helpers --------------------------------------------------------------------------------

/** Runs a command, failing loudly; resolves with its stdout. */
function exec(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}: ${err.slice(0, 800)}`));
    });
  });
}

const sec = (s: number): string => (Number.isFinite(s) ? `${s.toFixed(2)} s` : '-');
const rate = (bytes: number, s: number): string => (Number.isFinite(s) ? `${(bytes / MiB / s).toFixed(0)} MB/s` : '-');

async function waitForHttp(url: string, proc: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`registry exited ${proc.exitCode}: ${output()}`);
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.status === 200 || r.status === 401) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`no answer from ${url}: ${output()}`);
    await sleep(50);
  }
}

// ---- the images -----------------------------------------------------------------------------

interface Blob {
  digest: string;
  size: number;
}

interface GeneratedImage {
  /** OCI layout directory (skopeo's oci: transport reads it). */
  layout: string;
  /** The same layout as a tar, for docker load. */
  archive: string;
  /** Name the archive loads as. */
  name: string;
  layers: Blob[];
  /** Total bytes of the layers as stored (gzip). */
  layerBytes: number;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function putBlob(layout: string, data: Buffer): Blob {
  const digest = sha256(data);
  fs.writeFileSync(path.join(layout, 'blobs', 'sha256', digest.slice(7)), data);
  return { digest, size: data.length };
}

/** Writes config, manifest and index for layers already in the layout's blobs, then tars it. */
async function finishImage(layout: string, name: string, layers: (Blob & { diffID: string })[]): Promise<GeneratedImage> {
  const config = Buffer.from(JSON.stringify({
    architecture: process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch,
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
    history: layers.map(() => ({ created_by: 'berth registry bench' })),
  }));
  const cfg = putBlob(layout, config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
  }));
  const man = putBlob(layout, manifest);
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...man, annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': 'latest' } }],
  }));
  const archive = `${layout}.tar`;
  await exec('tar', ['-C', layout, '-cf', archive, '.']);
  return { layout, archive, name, layers, layerBytes: layers.reduce((a, l) => a + l.size, 0) };
}

function newLayout(dir: string): string {
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  return dir;
}

/** Hashes and counts what flows through. */
class Digester extends Writable {
  private hash = createHash('sha256');
  size = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb();
  }
  private result?: string;
  digest(): string {
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    return this.result;
  }
}

/**
 * The big image: one layer holding one file of random bytes, gzipped at level 1 (random data
 * does not shrink, so the layer is as big compressed as not). The uncompressed tar is kept too:
 * it is the blob of the ingest step, which must not be one the pushes already stored.
 */
async function makeBigImage(dir: string, mb: number): Promise<{ image: GeneratedImage; rawTar: string; rawDigest: string }> {
  const layout = newLayout(path.join(dir, 'big'));
  const rawTar = path.join(dir, 'big-layer.tar');
  const gzTmp = path.join(dir, 'big-layer.tar.gz');
  // First the tar (hashed for the diffID), then its gzip (hashed for the layer digest).
  const pack = tar.pack();
  const raw = new Digester();
  const rawTee = new PassThrough();
  rawTee.on('data', (c: Buffer) => raw.write(c));
  const packed = pipeline(pack, rawTee, fs.createWriteStream(rawTar));
  const size = mb * MiB;
  const entry = pack.entry({ name: 'big.bin', size, mode: 0o644, mtime: new Date(0) }) as unknown as NodeJS.WritableStream;
  for (let left = size; left > 0; left -= MiB) {
    if (!entry.write(randomBytes(Math.min(MiB, left)))) await new Promise((r) => entry.once('drain', r));
  }
  entry.end();
  pack.finalize();
  await packed;
  const gzDigest = new Digester();
  const gzTee = new PassThrough();
  gzTee.on('data', (c: Buffer) => gzDigest.write(c));
  await pipeline(fs.createReadStream(rawTar, { highWaterMark: MiB }), zlib.createGzip({ level: 1 }), gzTee, fs.createWriteStream(gzTmp));
  const gzD = gzDigest.digest();
  fs.renameSync(gzTmp, path.join(layout, 'blobs', 'sha256', gzD.slice(7)));
  const image = await finishImage(layout, 'bench/big:latest', [{ digest: gzD, size: gzDigest.size, diffID: raw.digest() }]);
  return { image, rawTar, rawDigest: raw.digest() };
}

/** The small image: `count` layers, each a tar of one small random file, gzipped. */
async function makeSmallImage(dir: string, count: number): Promise<GeneratedImage> {
  const layout = newLayout(path.join(dir, 'small'));
  const layers: (Blob & { diffID: string })[] = [];
  for (let i = 0; i < count; i++) {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c) => {
      chunks.push(c as Buffer);
    });
    const ended = new Promise<void>((r) => pack.on('end', () => r()));
    pack.entry({ name: `f${i}.bin`, mode: 0o644, mtime: new Date(0) }, randomBytes(1024 + (i * 97) % 8192));
    pack.finalize();
    await ended;
    const rawBuf = Buffer.concat(chunks);
    layers.push({ ...putBlob(layout, zlib.gzipSync(rawBuf)), diffID: sha256(rawBuf) });
  }
  return finishImage(layout, 'bench/small:latest', layers);
}

// ---- the registries -------------------------------------------------------------------------

interface RunningReg {
  host: string;
  stop(): Promise<void>;
}

async function startProcess(cmd: string, args: string[], host: string): Promise<RunningReg> {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  p.stdout!.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-4000)));
  p.stderr!.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-4000)));
  const stop = async (): Promise<void> => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForHttp(`http://${host}/v2/`, p, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, stop };
}

/** `berth registry serve` as its own process, as users run it. */
async function startBerthRegistry(root: string): Promise<RunningReg> {
  const host = `127.0.0.1:${await freePort()}`;
  return startProcess(process.execPath, [BERTH, 'registry', 'serve', '--addr', host, '--root', root, '--log-level', 'error'], host);
}

const DISTRIBUTION = '/usr/bin/docker-registry';
const DISTRIBUTION_DEFAULT_CONFIG = '/etc/docker/registry/config.yml';

/** PIDs of distribution processes serving the package's default configuration. */
function defaultDistributionPids(): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv[0] === DISTRIBUTION && (argv.length < 3 || argv.includes(DISTRIBUTION_DEFAULT_CONFIG))) pids.push(Number(e));
    } catch {}
  }
  return pids;
}

/**
 * Installs Debian's docker-registry if it is missing. The package enables a service on :5000; in
 * a container policy-rc.d usually stops it from starting, but under systemd it would start, so
 * the service is stopped and disabled, and any default instance that appeared during the install
 * is killed by PID. One that was running before the bench is left alone (it is not ours).
 */
function ensureDistribution(): boolean {
  if (fs.existsSync(DISTRIBUTION)) return true;
  const before = new Set(defaultDistributionPids());
  log('installing docker-registry (distribution 2.8) from Debian');
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'docker-registry'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (err) {
    log(`apt-get install docker-registry failed: ${(err as Error).message.slice(0, 300)}`);
    return false;
  }
  const pid1 = fs.readFileSync('/proc/1/comm', 'utf8').trim();
  if (pid1 === 'systemd') {
    try { execFileSync('systemctl', ['disable', '--now', 'docker-registry'], { stdio: 'ignore' }); } catch {}
  }
  for (const pid of defaultDistributionPids()) {
    if (before.has(pid)) continue;
    log(`stopping the package's own registry (pid ${pid})`);
    try { process.kill(pid, 'SIGTERM'); } catch {}
  }
  return fs.existsSync(DISTRIBUTION);
}

async function startDistribution(dir: string): Promise<RunningReg> {
  const host = `127.0.0.1:${await freePort()}`;
  const root = path.join(dir, 'root');
  fs.mkdirSync(root, { recursive: true });
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${root}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    '',
  ].join('\n'));
  return startProcess(DISTRIBUTION, ['serve', config], host);
}

// ---- the steps ------------------------------------------------------------------------------

/** Node's floor for a pull of this layer: read it, sha256 the compressed bytes, gunzip them. */
async function pullFloor(file: string): Promise<number> {
  const t = await timed(async () => {
    const hash = createHash('sha256');
    const gunzip = zlib.createGunzip();
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const tee = new PassThrough();
    tee.on('data', (c: Buffer) => hash.update(c));
    await pipeline(fs.createReadStream(file, { highWaterMark: MiB }), tee, gunzip, sink);
    hash.digest();
  });
  return t.seconds;
}

/** A monolithic blob upload by curl: POST for a session, then one PUT of the whole blob. */
async function curlIngest(host: string, repo: string, file: string, digest: string): Promise<number> {
  const headers = await exec('curl', ['-sS', '-o', '/dev/null', '-D', '-', '-X', 'POST', `http://${host}/v2/${repo}/blobs/uploads/`]);
  const loc = /^location:\s*(\S+)/im.exec(headers)?.[1];
  if (!loc) throw new Error(`no Location from ${host}: ${headers}`);
  const url = new URL(loc, `http://${host}`);
  url.searchParams.set('digest', digest);
  const out = await exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', '-X', 'PUT', '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`, url.toString()]);
  const [code, seconds] = out.trim().split(' ');
  if (code !== '201') throw new Error(`PUT blob to ${host} answered ${code}`);
  return Number(seconds);
}

interface Engine {
  push(image: GeneratedImage, host: string): Promise<number>;
  pull(image: GeneratedImage, host: string): Promise<number>;
}

function berthEngine(env: CtrEnv): Engine {
  const dockerOk = async (args: string[]): Promise<string> => {
    const r = await env.docker(args, { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const remote = (image: GeneratedImage, host: string): string => `${host}/${image.name.replace(/:.*/, '')}:latest`;
  return {
    async push(image, host) {
      await dockerOk(['tag', image.name, remote(image, host)]);
      sync();
      const t = await timed(() => dockerOk(['push', remote(image, host)]));
      await dockerOk(['rmi', remote(image, host)]);
      return t.seconds;
    },
    async pull(image, host) {
      // Removed by ID with -f: every tag and repo digest (a push records one) goes with it, so the
      // image is deleted with its layers and the pull downloads and unpacks every layer again.
      const id = (await dockerOk(['image', 'inspect', '-f', '{{.Id}}', image.name])).trim();
      await dockerOk(['rmi', '-f', id]);
      sync();
      const t = await timed(() => dockerOk(['pull', remote(image, host)]));
      if (/already exists/i.test(t.value)) throw new Error(`pull found layers already present:\n${t.value}`);
      await dockerOk(['tag', remote(image, host), image.name]);
      await dockerOk(['rmi', remote(image, host)]);
      return t.seconds;
    },
  };
}

function skopeoEngine(dir: string): Engine {
  let n = 0;
  return {
    async push(image, host) {
      sync();
      const t = await timed(() => exec('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${image.layout}:latest`, `docker://${host}/${image.name.replace(/:.*/, '')}:latest`]));
      return t.seconds;
    },
    async pull(image, host) {
      // dir: keeps the layers compressed: skopeo verifies digests but does not gunzip.
      const out = path.join(dir, `skopeo-pull-${n++}`);
      sync();
      const t = await timed(() => exec('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${host}/${image.name.replace(/:.*/, '')}:latest`, `dir:${out}`]));
      fs.rmSync(out, { recursive: true, force: true });
      return t.seconds;
    },
  };
}

interface Figures {
  floor: number[];
  berthIngest: number[];
  distIngest: number[];
  berthPushBig: number[];
  berthPullBig: number[];
  skopeoPushBig: number[];
  skopeoPullBig: number[];
  berthPushSmall: number[];
  berthPullSmall: number[];
  skopeoPushSmall: number[];
  skopeoPullSmall: number[];
  /** berthd against distribution: tells the client's share from the server's. */
  berthPullBigFromDist: number[];
  berthPushSmallToDist: number[];
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-registry-'));
  const running: RunningReg[] = [];
  let env: CtrEnv | undefined;
  const stopAll = async (): Promise<void> => {
    for (const r of running.splice(0)) await r.stop().catch(() => {});
  };
  const onSignal = (): void => {
    void stopAll().then(() => env?.cleanup()).finally(() => {
      fs.rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const haveDistribution = opts.compare && ensureDistribution();
    if (opts.compare && !haveDistribution) log('distribution is not available: skopeo figures are skipped');

    log(`generating a ${opts.bigMB} MB random layer and ${opts.smallLayers} small layers in ${dir}`);
    const big = await makeBigImage(dir, opts.bigMB);
    const small = await makeSmallImage(dir, opts.smallLayers);
    const bigLayerFile = path.join(big.image.layout, 'blobs', 'sha256', big.image.layers[0].digest.slice(7));
    const bigBytes = big.image.layerBytes;
    const rawBytes = fs.statSync(big.rawTar).size;

    log('starting berthd');
    env = await setupDaemon('bench-registry');
    for (const img of [big.image, small]) {
      const r = await env.docker(['load', '-q', '-i', img.archive], { timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(`docker load ${img.archive}: ${r.stderr}`);
    }
    const berthd = berthEngine(env);
    const skopeo = skopeoEngine(dir);

    const f: Figures = {
      floor: [], berthIngest: [], distIngest: [], berthPushBig: [], berthPullBig: [], skopeoPushBig: [], skopeoPullBig: [],
      berthPushSmall: [], berthPullSmall: [], skopeoPushSmall: [], skopeoPullSmall: [], berthPullBigFromDist: [], berthPushSmallToDist: [],
    };
    for (let run = 0; run < opts.runs; run++) {
      log(`run ${run + 1}/${opts.runs}`);
      const runDir = path.join(dir, `run${run}`);
      fs.mkdirSync(path.join(runDir, 'dist'), { recursive: true });
      const reg = await startBerthRegistry(path.join(runDir, 'berth-root'));
      running.push(reg);
      const dist = haveDistribution ? await startDistribution(path.join(runDir, 'dist')) : undefined;
      if (dist) running.push(dist);

      // The steps take turns, so that a busy spell on the shared machine hits both sides.
      sync();
      f.berthIngest.push(await curlIngest(reg.host, 'ingest/raw', big.rawTar, big.rawDigest));
      if (dist) { sync(); f.distIngest.push(await curlIngest(dist.host, 'ingest/raw', big.rawTar, big.rawDigest)); }

      // Within a pair, who goes first alternates from run to run.
      const turns = async (steps: (() => Promise<unknown>)[]): Promise<void> => {
        for (const step of run % 2 ? [...steps].reverse() : steps) await step();
      };
      log('big image');
      await turns([
        async () => f.berthPushBig.push(await berthd.push(big.image, reg.host)),
        async () => dist && f.skopeoPushBig.push(await skopeo.push(big.image, dist.host)),
      ]);
      f.floor.push(await pullFloor(bigLayerFile));
      await turns([
        async () => f.berthPullBig.push(await berthd.pull(big.image, reg.host)),
        async () => dist && f.skopeoPullBig.push(await skopeo.pull(big.image, dist.host)),
        async () => dist && f.berthPullBigFromDist.push(await berthd.pull(big.image, dist.host)),
      ]);
      f.floor.push(await pullFloor(bigLayerFile));

      log('small layers');
      await turns([
        async () => f.berthPushSmall.push(await berthd.push(small, reg.host)),
        async () => dist && f.skopeoPushSmall.push(await skopeo.push(small, dist.host)),
        async () => {
          if (!dist) return;
          // A repository name of its own on distribution, so nothing is found there already.
          const copy = { ...small, name: `bench/small-copy${run}:latest` };
          await env!.docker(['tag', small.name, copy.name]);
          f.berthPushSmallToDist.push(await berthd.push(copy, dist.host));
          await env!.docker(['rmi', copy.name]);
        },
      ]);
      await turns([
        async () => f.berthPullSmall.push(await berthd.pull(small, reg.host)),
        async () => dist && f.skopeoPullSmall.push(await skopeo.pull(small, dist.host)),
      ]);
      await stopAll();
      fs.rmSync(runDir, { recursive: true, force: true });
    }

    const floor = best(f.floor);
    const nan = (xs: number[]): number => (xs.length ? best(xs) : NaN);
    const rows: Row[] = [];
    const pullBig = best(f.berthPullBig);
    rows.push({ figure: `pull ${opts.bigMB} MB layer (berthd <- berth registry)`, value: `${sec(pullBig)} ${rate(bigBytes, pullBig)}`, baseline: `floor sha256+gunzip ${sec(floor)} ${rate(bigBytes, floor)}`, ratio: ratio(floor, pullBig), target: '>= 0.80x of floor', result: verdict(floor / pullBig >= 0.8) });
    const skPull = nan(f.skopeoPullBig);
    rows.push({ figure: `pull ${opts.bigMB} MB layer`, value: sec(pullBig), baseline: `skopeo <- distribution ${sec(skPull)}`, ratio: ratio(skPull, pullBig), target: 'faster (> 1x)', result: Number.isFinite(skPull) ? verdict(pullBig < skPull) : 'n/a' });
    rows.push({ figure: `  (berthd <- distribution, for scale)`, value: sec(nan(f.berthPullBigFromDist)), baseline: sec(pullBig), ratio: '-', target: '-', result: '-' });
    const pushBig = best(f.berthPushBig);
    const skPushBig = nan(f.skopeoPushBig);
    rows.push({ figure: `push ${opts.bigMB} MB layer (berthd -> berth registry)`, value: `${sec(pushBig)} ${rate(bigBytes, pushBig)}`, baseline: `skopeo -> distribution ${sec(skPushBig)}`, ratio: ratio(skPushBig, pushBig), target: '-', result: '-' });
    const pushSmall = best(f.berthPushSmall);
    rows.push({ figure: `push ${opts.smallLayers} small layers (berthd -> berth registry)`, value: sec(pushSmall), baseline: `skopeo -> distribution ${sec(nan(f.skopeoPushSmall))}`, ratio: ratio(nan(f.skopeoPushSmall), pushSmall), target: '<= 1.50 s', result: verdict(pushSmall <= 1.5) });
    rows.push({ figure: `  (berthd -> distribution, for scale)`, value: sec(nan(f.berthPushSmallToDist)), baseline: sec(pushSmall), ratio: '-', target: '-', result: '-' });
    const pullSmall = best(f.berthPullSmall);
    rows.push({ figure: `pull ${opts.smallLayers} small layers (berthd <- berth registry)`, value: sec(pullSmall), baseline: `skopeo <- distribution ${sec(nan(f.skopeoPullSmall))}`, ratio: ratio(nan(f.skopeoPullSmall), pullSmall), target: '-', result: '-' });
    const ingest = best(f.berthIngest);
    const distIngest = nan(f.distIngest);
    const ingestRate = rawBytes / MiB / ingest;
    rows.push({ figure: `ingest ${(rawBytes / MiB).toFixed(0)} MB blob, monolithic PUT by curl`, value: rate(rawBytes, ingest), baseline: `distribution ${rate(rawBytes, distIngest)}`, ratio: ratio(distIngest, ingest), target: '>= 250 MB/s', result: verdict(ingestRate >= 250) });
    printTable(`registry (best of ${opts.runs} run${opts.runs > 1 ? 's' : ''}; ratio > 1 means berth is faster)`, rows);
  } finally {
    await stopAll();
    await env?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
