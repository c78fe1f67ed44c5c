// Build benchmarks: `docker build` of one 10-step Dockerfile through the docker CLI, cold (no
// built images, no build cache) and fully cached, against berthd; with --compare also against
// Moby's classic builder and Moby's built-in BuildKit, measured in the same run on the same machine.
//
// These are measurements, not tests: each figure is printed with its baseline from this run, the
// target from the issue and PASS/MISS. The machine is shared and noisy, so the engines take turns
// round by round (a busy spell slows all of them) and each figure is the median of the rounds.
//
// Targets:
//   berth, cached rebuild end to end through the CLI     <= 0.3 s
//   berth cached                                         <= Moby classic builder cached
//   berth cold                                           <= BuildKit cold
//
// --compare installs docker.io from Debian (dockerd 20.10, containerd, runc, and a 20.10 docker
// CLI at /usr/bin/docker). Debian packages no BuildKit daemon (buildkitd) nor buildx, and the
// CLI at /usr/local/bin/docker (the client for berth and the classic builder) needs buildx for
// BuildKit; the 20.10 CLI still has BuildKit's client built in, so BuildKit is measured as dockerd's
// own BuildKit driven by /usr/bin/docker with DOCKER_BUILDKIT=1. dockerd runs in its own roots,
// socket, pidfile, cgroup parent and containerd namespace, over a private containerd with its own
// root, state and sockets; everything is stopped by PID and removed at the end.
//
// Run: `npx tsc -p tsconfig.json && node dist/bench/build.js [--runs N] [--compare]` (as root).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { setupDaemon, type CtrEnv } from '../test/containers/fixtures';
import { cgroupDirsOf, mountsUnder, pidsMentioning, rmCgroupTree } from '../test/helpers/cleanup';
import { log, median, printTable, ratio, sleep, verdict, type Row } from './lib';

/** The client for berth and the classic builder; docker.io's /usr/bin/docker must not replace it. */
const DOCKER_CLI = '/usr/local/bin/docker';
/** docker.io's 20.10 CLI: the only client here with BuildKit built in (no buildx). */
const DOCKER_CLI_BUILDKIT = '/usr/bin/docker';
const DOCKERD = '/usr/sbin/dockerd';
const CONTAINERD = '/usr/bin/containerd';

interface Options {
  /** Timed rounds (cold build then cached rebuild, each engine in turn); the median counts. */
  runs: number;
  compare: boolean;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { runs: 5, compare: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error('--runs needs a positive whole number');
      opts.runs = v;
    } else if (a === '--compare') opts.compare = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node dist/bench/build.js [--runs N] [--compare]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

// ---- the build ------------------------------------------------------------------------------

/**
 * Ten steps (FROM included, as the classic builder counts them: "Step 1/10"): three small RUNs,
 * two COPYs of a few files, ENV, WORKDIR, LABEL and CMD.
 */
const DOCKERFILE = `FROM busybox
LABEL org.example.bench=build
ENV APP_HOME=/app GREETING=hello
WORKDIR /app
COPY a.txt b.txt ./
RUN echo "$GREETING" > greeting && cat a.txt b.txt > both
COPY conf/ /etc/app/
RUN mkdir -p data && ls /etc/app > data/conf-list
RUN for i in 1 2 3; do echo "line $i"; done > data/lines && wc -l data/lines
CMD ["sh", "-c", "cat greeting data/lines"]
`;
const STEPS = 10;

function writeContext(dir: string): void {
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'Dockerfile'), DOCKERFILE);
  fs.writeFileSync(path.join(dir, 'a.txt'), 'alpha\n'.repeat(50));
  fs.writeFileSync(path.join(dir, 'b.txt'), 'bravo\n'.repeat(500));
  for (const n of ['app.conf', 'log.conf', 'net.conf']) fs.writeFileSync(path.join(dir, 'conf', n), `# ${n}\nkey=value\n`);
}

// ---- helpers --------------------------------------------------------------------------------

const sec = (s: number): string => `${s.toFixed(3)} s`;
const list = (xs: number[]): string => xs.map((t) => t.toFixed(3)).join('/');

interface Result {
  code: number;
  out: string;
  seconds: number;
}

/** Runs a command to completion, timing it from spawn to exit, output collected. */
function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const p = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => chunks.push(b));
    p.stderr.on('data', (b: Buffer) => chunks.push(b));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), out: Buffer.concat(chunks).toString(), seconds: Number(process.hrtime.bigint() - start) / 1e9 });
    });
  });
}

async function mustExec(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts?: { cwd?: string; timeoutMs?: number }): Promise<Result> {
  const r = await exec(cmd, args, env, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.out.slice(-2000)}`);
  return r;
}

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: socket, path: '/_ping', method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

// ---- engines --------------------------------------------------------------------------------

/** One builder under test, driven through a docker CLI. */
interface Builder {
  name: string;
  /** The CLI binary and its environment (DOCKER_HOST, DOCKER_CONFIG, DOCKER_BUILDKIT). */
  cli: string;
  env: NodeJS.ProcessEnv;
  /** Extra `docker build` flags (e.g. --progress=plain for BuildKit, so its output can be checked). */
  buildFlags: string[];
  tag: string;
  /** Steps of a build's output that came from the cache, and the steps the output shows. */
  cacheUse(out: string): { steps: number; cached: number };
}

/** Classic builder output: "Step n/N : X" blocks, cached ones say " ---> Using cache". */
function classicCacheUse(out: string): { steps: number; cached: number } {
  const blocks = out.split(/^Step \d+\/\d+ : /m).slice(1).filter((b) => !b.startsWith('FROM'));
  return { steps: blocks.length, cached: blocks.filter((b) => b.includes(' ---> Using cache')).length };
}

/**
 * BuildKit's plain progress: "#7 [3/6] COPY ..." names a step's vertex, "#7 CACHED" says it came
 * from the cache. ENV, LABEL and CMD only change the image config and have no vertex.
 */
function buildkitCacheUse(out: string): { steps: number; cached: number } {
  const ids = new Set<string>();
  for (const m of out.matchAll(/^#(\d+) \[(?:[^\]]* )?\d+\/\d+\] (\S+)/gm)) if (m[2] !== 'FROM') ids.add(m[1]);
  let cached = 0;
  for (const id of ids) if (new RegExp(`^#${id} CACHED$`, 'm').test(out)) cached++;
  return { steps: ids.size, cached };
}

function classicBuilder(name: string, host: string, configDir: string, tag: string): Builder {
  return { name, cli: DOCKER_CLI, env: { DOCKER_HOST: host, DOCKER_CONFIG: configDir, DOCKER_BUILDKIT: '0' }, buildFlags: [], tag, cacheUse: classicCacheUse };
}

/**
 * Back to the state before the first build: the built image and its (untagged) intermediate
 * images removed, dangling images and the build cache pruned. Only the base image remains, which
 * is checked, so that a "cold" build really starts cold.
 */
async function reset(b: Builder): Promise<void> {
  await exec(b.cli, ['rmi', '-f', b.tag], b.env);
  await mustExec(b.cli, ['image', 'prune', '-f'], b.env);
  await mustExec(b.cli, ['builder', 'prune', '-af'], b.env);
}

async function imageCount(b: Builder): Promise<number> {
  return (await mustExec(b.cli, ['images', '-aq'], b.env)).out.split('\n').filter((l) => /^[0-9a-f]{12}$/.test(l)).length;
}

async function build(b: Builder, context: string, expect: 'cold' | 'cached'): Promise<number> {
  // The previous builder's dirty pages are written back now, not charged to this build's fsyncs.
  execFileSync('sync');
  const r = await mustExec(b.cli, ['build', ...b.buildFlags, '--network', 'none', '-t', b.tag, context], b.env);
  const use = b.cacheUse(r.out);
  const ok = use.steps > 0 && (expect === 'cold' ? use.cached === 0 : use.cached === use.steps);
  if (!ok) throw new Error(`${b.name}: a ${expect} build used the cache for ${use.cached} of ${use.steps} steps:\n${r.out}`);
  return r.seconds;
}

/** The median start-up of a CLI binary (`--version`, no daemon contact), for scale. */
async function cliStartup(cli: string, env: NodeJS.ProcessEnv, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await mustExec(cli, ['--version'], env)).seconds);
  return median(times);
}

// ---- --compare: Moby --------------------------------------------------------------------------

function installMoby(): void {
  if (fs.existsSync(DOCKERD) && fs.existsSync(CONTAINERD) && fs.existsSync(DOCKER_CLI_BUILDKIT)) return;
  log('installing docker.io from Debian (--compare)');
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'docker.io'], { stdio: ['ignore', process.stderr, process.stderr], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  // Where an init system honours it, the package starts docker and containerd system-wide; this
  // bench wants only its own private ones.
  for (const svc of ['docker.socket', 'docker', 'containerd']) {
    try { execFileSync('systemctl', ['stop', svc], { stdio: 'ignore' }); } catch {}
  }
}

interface Moby {
  host: string;
  stop(): Promise<void>;
}

function stopProcess(p: ChildProcess, timeoutMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/**
 * A private containerd (own root, state, sockets; the CRI plugin off) and a dockerd on it with its
 * own data root, exec root, socket, pidfile, empty config file, cgroup parent and containerd
 * namespace; no bridge, no iptables.
 */
async function startMoby(dir: string): Promise<Moby> {
  const root = path.join(dir, 'moby');
  const ctrd = path.join(root, 'ctrd');
  fs.mkdirSync(ctrd, { recursive: true });
  const ctrdSock = path.join(ctrd, 'containerd.sock');
  const cgroupParent = `berth-bench-build-moby-${process.pid}`;
  const logFile = path.join(root, 'daemons.log');
  const logFd = fs.openSync(logFile, 'a');
  fs.writeFileSync(path.join(ctrd, 'config.toml'), [
    'version = 2',
    `root = ${JSON.stringify(path.join(ctrd, 'root'))}`,
    `state = ${JSON.stringify(path.join(ctrd, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]',
    '[grpc]',
    `  address = ${JSON.stringify(ctrdSock)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(ctrdSock + '.ttrpc')}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    // The opt plugin would otherwise make /opt/containerd.
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(path.join(ctrd, 'opt'))}`,
    '',
  ].join('\n'));
  // dockerd and the shims make these host-wide dirs whatever their roots; removed after if this
  // run made them and they are empty again (rmdir never takes another engine's contents).
  const hostDirs = ['/run/docker/plugins', '/run/docker', '/run/containerd/s', '/run/containerd'].filter((d) => !fs.existsSync(d));
  const procs: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await stopProcess(p, 20_000);
    // Shims and build containers left by a failure: they name the roots on their command lines.
    for (const pid of pidsMentioning(root)) try { process.kill(pid, 'SIGKILL'); } catch {}
    for (const d of cgroupDirsOf(cgroupParent)) rmCgroupTree(d);
    for (const line of mountsUnder(root).reverse()) {
      try { execFileSync('umount', ['-l', line.split(' ')[4]], { stdio: 'ignore' }); } catch {}
    }
    for (const d of hostDirs) try { fs.rmdirSync(d); } catch {}
    fs.closeSync(logFd);
  };
  try {
    procs.push(spawn(CONTAINERD, ['--config', path.join(ctrd, 'config.toml')], { stdio: ['ignore', logFd, logFd] }));
    for (let i = 0; !fs.existsSync(ctrdSock); i++) {
      if (i > 300 || procs[0].exitCode !== null) throw new Error(`containerd did not start; see ${logFile}`);
      await sleep(100);
    }
    const configFile = path.join(root, 'daemon.json');
    fs.writeFileSync(configFile, '{}\n');
    const socket = path.join(root, 'docker.sock');
    const dockerd = spawn(DOCKERD, [
      '-H', `unix://${socket}`, '--data-root', path.join(root, 'data'), '--exec-root', path.join(root, 'exec'),
      '--pidfile', path.join(root, 'dockerd.pid'), '--config-file', configFile, '--containerd', ctrdSock,
      '--containerd-namespace', `bench${process.pid}`, '--containerd-plugins-namespace', `bench${process.pid}p`,
      '--cgroup-parent', cgroupParent, '--bridge=none', '--iptables=false', '--ip-masq=false', '--log-level', 'warn',
    ], { stdio: ['ignore', logFd, logFd] });
    procs.push(dockerd);
    for (let i = 0; !(await ping(socket)); i++) {
      if (i > 300 || dockerd.exitCode !== null) throw new Error(`dockerd did not start; see ${logFile}:\n${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
      await sleep(100);
    }
    return { host: `unix://${socket}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- main -----------------------------------------------------------------------------------

interface Series {
  builder: Builder;
  cold: number[];
  cached: number[];
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: berthd mounts and makes cgroups');
  if (opts.compare) installMoby();
  log(`${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; ${opts.runs} rounds${opts.compare ? ', with Moby' : ''}`);
  let env: CtrEnv | undefined;
  let moby: Moby | undefined;
  try {
    env = await setupDaemon('bench-build');
    const context = path.join(env.d.dir, 'build-context');
    writeContext(context);
    const cliConfig = path.join(env.d.dir, 'cli-config');
    const builders: Builder[] = [classicBuilder('berth', env.d.host, cliConfig, 'bench-build:berth')];

    if (opts.compare) {
      moby = await startMoby(env.d.dir);
      // The same busybox image in both engines: saved from berthd, loaded into dockerd.
      const image = path.join(env.d.dir, 'busybox.tar');
      await mustExec(DOCKER_CLI, ['save', '-o', image, 'busybox:latest'], { DOCKER_HOST: env.d.host, DOCKER_CONFIG: cliConfig });
      const mobyConfig = path.join(env.d.dir, 'moby-cli-config');
      await mustExec(DOCKER_CLI, ['load', '-i', image], { DOCKER_HOST: moby.host, DOCKER_CONFIG: mobyConfig });
      builders.push(classicBuilder('moby classic', moby.host, mobyConfig, 'bench-build:classic'));
      builders.push({
        name: 'moby buildkit', cli: DOCKER_CLI_BUILDKIT, env: { DOCKER_HOST: moby.host, DOCKER_CONFIG: mobyConfig, DOCKER_BUILDKIT: '1' },
        buildFlags: ['--progress=plain'], tag: 'bench-build:buildkit', cacheUse: buildkitCacheUse,
      });
    }

    // One untimed round first (page cache, lazily loaded code in the daemons), then the timed
    // rounds; within a round each engine does its cold build and then its cached rebuild.
    const series: Series[] = builders.map((builder) => ({ builder, cold: [], cached: [] }));
    for (let round = 0; round <= opts.runs; round++) {
      for (const s of series) {
        await reset(s.builder);
        const left = await imageCount(s.builder);
        if (left !== 1) throw new Error(`${s.builder.name}: ${left} images left after the reset, expected only busybox`);
        const cold = await build(s.builder, context, 'cold');
        const cached = await build(s.builder, context, 'cached');
        // Moby's two builders share one dockerd: neither may leave images for the other's check.
        await reset(s.builder);
        if (round > 0) {
          s.cold.push(cold);
          s.cached.push(cached);
        }
      }
      log(`round ${round}${round === 0 ? ' (warm-up)' : ''}: ${series.map((s) => `${s.builder.name} ${s.cold.at(-1)?.toFixed(3) ?? '-'}/${s.cached.at(-1)?.toFixed(3) ?? '-'}`).join(', ')}`);
    }

    const startup = await cliStartup(DOCKER_CLI, { DOCKER_CONFIG: cliConfig }, opts.runs);
    const berthSeries = series[0];
    const berthCold = median(berthSeries.cold);
    const berthCached = median(berthSeries.cached);
    const classic = series.find((s) => s.builder.name === 'moby classic');
    const buildkit = series.find((s) => s.builder.name === 'moby buildkit');
    const rows: Row[] = [];
    rows.push({ figure: `berth: cached rebuild, ${STEPS} steps (CLI)`, value: sec(berthCached), baseline: `${sec(startup)} CLI start-up`, ratio: ratio(berthCached, startup), target: '<= 0.3 s', result: verdict(berthCached <= 0.3) });
    if (classic) {
      const c = median(classic.cached);
      rows.push({ figure: 'berth: cached rebuild vs Moby classic', value: sec(berthCached), baseline: `${sec(c)} classic cached`, ratio: ratio(berthCached, c), target: '<= 1.00x', result: verdict(berthCached <= c) });
    }
    if (buildkit) {
      const c = median(buildkit.cold);
      rows.push({ figure: 'berth: cold build vs BuildKit', value: sec(berthCold), baseline: `${sec(c)} BuildKit cold`, ratio: ratio(berthCold, c), target: '<= 1.00x', result: verdict(berthCold <= c) });
    } else {
      rows.push({ figure: `berth: cold build, ${STEPS} steps (CLI)`, value: sec(berthCold), baseline: `${sec(startup)} CLI start-up`, ratio: ratio(berthCold, startup), target: '(needs --compare)', result: '-' });
    }
    if (classic) {
      const c = median(classic.cold);
      rows.push({ figure: 'berth: cold build vs Moby classic', value: sec(berthCold), baseline: `${sec(c)} classic cold`, ratio: ratio(berthCold, c), target: '(report)', result: '-' });
    }
    if (buildkit) {
      const c = median(buildkit.cached);
      rows.push({ figure: 'berth: cached rebuild vs BuildKit', value: sec(berthCached), baseline: `${sec(c)} BuildKit cached`, ratio: ratio(berthCached, c), target: '(report)', result: '-' });
    }
    printTable(`docker build, ${STEPS}-step Dockerfile, median of ${opts.runs} rounds`, rows);
    process.stdout.write(`\n  ${'builder'.padEnd(14)}  ${'cold median'.padEnd(11)}  ${'cached median'.padEnd(13)}  runs (cold; cached), s\n`);
    for (const s of series) {
      process.stdout.write(`  ${s.builder.name.padEnd(14)}  ${sec(median(s.cold)).padEnd(11)}  ${sec(median(s.cached)).padEnd(13)}  ${list(s.cold)}; ${list(s.cached)}\n`);
    }
    process.stdout.write(`  CLI start-up (\`docker --version\`): ${sec(startup)} ${DOCKER_CLI}`);
    if (buildkit) process.stdout.write(`, ${sec(await cliStartup(DOCKER_CLI_BUILDKIT, { DOCKER_CONFIG: cliConfig }, opts.runs))} ${DOCKER_CLI_BUILDKIT} (BuildKit's client)`);
    process.stdout.write(`\n  load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
  } finally {
    await moby?.stop();
    await env?.cleanup();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
