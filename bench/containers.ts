// Container benchmarks: what running containers through berthd costs compared with the floor
// underneath it (bare `crun run` of the same rootfs, the same shell pipeline without a
// container), measured in the same run on the same machine.
//
// These are measurements, not tests: each figure is printed beside a baseline from this run, with
// the target from the issue and PASS/MISS. The machine is shared and noisy, so repeated steps
// report their median, and only ratios within one run mean much.
//
//   run --rm busybox true      berthd (docker CLI, and the berth CLI when it works) vs crun run
//   start 50, 1 and 8 at once  `docker run -d busybox sleep 1000`, then one `docker rm -f` of all
//   memory per container       conmon's RSS (and any other process berth adds), berthd's growth
//   ps with 50 running         the docker CLI, and GET /containers/json over the socket
//   200 MB to stdout           vs the same pipeline without a container; `docker logs` of it
//
// `--compare` also installs Moby (docker.io) and Podman from Debian and measures them the same
// way, each in its own roots; it installs a second engine, so it is never the default.
//
// Run: `npx tsc -p tsconfig.json && node dist/bench/containers.js` (as root; see bench/README.md).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { berth, docker, type TestDaemon } from '../test/helpers/daemon';
import { busyboxTar, setupDaemon, type CtrEnv } from '../test/containers/fixtures';
import { log, median, MiB, parseArgs, pool, printTable, ratio, sleep, timed, verdict, type Row } from './lib';

interface Options {
  /** Containers in the start/ps/memory steps. */
  count: number;
  /** Parallelism of the concurrent start step. */
  parallel: number;
  /** Repetitions of the short steps (the median counts). */
  runs: number;
  /** Bytes the container writes to stdout. */
  outputBytes: number;
  compare: boolean;
  /** Steps to run (default all): run (run --rm true), start (start, memory, ps, rm -f), output. */
  only: Set<string>;
}

const STEPS = ['run', 'start', 'output'];

function parseOptions(argv: string[]): Options {
  const opts: Options = { count: 50, parallel: 8, runs: 7, outputBytes: 200_000_000, compare: false, only: new Set(STEPS) };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--only') rest.push(argv[i]);
    else {
      const steps = (argv[++i] ?? '').split(',');
      if (!steps.every((x) => STEPS.includes(x))) throw new Error(`--only takes some of ${STEPS.join(',')}`);
      opts.only = new Set(steps);
    }
  }
  parseArgs(rest, `usage: node dist/bench/containers.js [--count N] [--parallel N] [--runs N] [--output-mb N] [--only ${STEPS.join(',')}] [--compare]`, (a, value) => {
    if (a === '--count') opts.count = value();
    else if (a === '--parallel') opts.parallel = value();
    else if (a === '--runs') opts.runs = value();
    else if (a === '--output-mb') opts.outputBytes = value() * 1_000_000;
    else if (a === '--compare') opts.compare = true;
    else return false;
    return true;
  });
  return opts;
}

// ---- helpers --------------------------------------------------------------------------------

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`;
const sec = (s: number): string => `${s.toFixed(2)} s`;
const mb = (bytes: number): string => `${(bytes / MiB).toFixed(2)} MB`;

/** Runs a command with stdout and stderr going to /dev/null (or stdout kept), failing loudly. */
function exec(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; keepStdout?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', opts.keepStdout ? 'pipe' : 'ignore', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout?.on('data', (b: Buffer) => out.push(b));
    p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}: ${err.slice(0, 500)}`));
    });
  });
}

function request(socket: string, method: string, urlPath: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: urlPath, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** VmRSS and (from smaps_rollup) Pss of a process, in bytes. */
function memOf(pid: number): { rss: number; pss: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN) * 1024;
  let pss = NaN;
  try {
    pss = Number(/^Pss:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN) * 1024;
  } catch {}
  return { rss, pss };
}

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      out.push({ pid: Number(e), ppid, comm: stat.slice(stat.indexOf('(') + 1, close), cmdline: fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// ---- the floor: bare crun -------------------------------------------------------------------

/**
 * An OCI bundle of the same busybox rootfs berthd runs, with a minimal config much like
 * `crun spec`'s (same namespaces as a berth container with --network none), so `crun run` of it
 * is the least any engine on crun can take.
 */
function makeFloorBundle(dir: string, tarFile: string, cgroupParent: string): { bundle: string; config: (id: string, args: string[]) => void } {
  const bundle = path.join(dir, 'floor-bundle');
  const rootfs = path.join(bundle, 'rootfs');
  fs.mkdirSync(rootfs, { recursive: true });
  execFileSync('tar', ['-x', '--numeric-owner', '-f', tarFile, '-C', rootfs]);
  for (const d of ['proc', 'sys', 'dev']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  const config = (id: string, args: string[]): void => {
    const spec = {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args,
        env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        cwd: '/',
        capabilities: Object.fromEntries(['bounding', 'effective', 'permitted'].map((k) => [k, ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW', 'CAP_SYS_CHROOT', 'CAP_MKNOD', 'CAP_AUDIT_WRITE', 'CAP_SETFCAP']])),
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
        noNewPrivileges: true,
      },
      root: { path: 'rootfs', readonly: false },
      hostname: 'floor',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
        { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      ],
      linux: {
        // Under the daemon's cgroup parent, so that the daemon's clean-up removes it too.
        cgroupsPath: `/${cgroupParent}/${id}`,
        resources: { devices: [{ allow: false, access: 'rwm' }] },
        namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((type) => ({ type })),
        maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
        readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      },
    };
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  };
  return { bundle, config };
}

// ---- engines --------------------------------------------------------------------------------

/** One engine under test, driven through its CLI (and its API socket when it has one). */
interface Engine {
  name: string;
  cli(args: string[], opts?: { keepStdout?: boolean; timeoutMs?: number }): Promise<string>;
  /** The API socket for GET /containers/json, if any. */
  socket?: string;
  /** The daemon's pid, for its RSS growth per container (none for podman). */
  daemonPid?: number;
  /** True when a process belongs to this engine's per-container machinery (conmon, shim). */
  isMonitor(p: ProcInfo): boolean;
  /** True when a process was started by this engine (mentions its roots), monitor or not. */
  isOwn(p: ProcInfo): boolean;
  /** The stdout log file of a container (for its size), if the engine keeps one. */
  logFile?(id: string): string | undefined;
  /** CPU time used so far by the engine's processes (daemon, monitors, runtime, netavark), in ms. */
  cpuMs?(): number;
}

/** CPU of the children this process has reaped (cutime+cstime of /proc/self/stat), in ms. */
function childrenCpuMs(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** A cpuacct cgroup's usage in ms; NaN when it cannot be read. */
function cpuacctMs(dir: string): number {
  try {
    return Number(fs.readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8').trim()) / 1e6;
  } catch {
    return NaN;
  }
}

function berthEngine(d: TestDaemon, cgroup?: string): Engine {
  return {
    cpuMs: cgroup ? () => cpuacctMs(cgroup) : undefined,
    name: 'berth',
    cli: async (args, opts) => {
      const r = await docker(d, args, { timeoutMs: opts?.timeoutMs ?? 120_000 });
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(0, 500)}`);
      return opts?.keepStdout ? r.stdout : '';
    },
    socket: d.socket,
    daemonPid: d.proc.pid,
    isMonitor: (p) => p.comm === 'conmon' && p.cmdline.includes(d.dir),
    isOwn: (p) => p.cmdline.includes(d.dir),
  };
}

// ---- the figures ----------------------------------------------------------------------------

interface Figures {
  rows: Row[];
  notes: string[];
}

async function measureEngine(e: Engine, opts: Options, floor: { runTrue: number; pipeline: number }, extra: { berthCli?: () => Promise<boolean> }): Promise<Figures> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const runs = opts.runs;
  // Engine CPU per step: on a shared machine wall times swing with the load, CPU much less.
  const cpu: string[] = [];
  const cpuStep = async <T>(what: string, items: number, fn: () => Promise<T>): Promise<T> => {
    const c0 = e.cpuMs?.() ?? NaN;
    const value = await fn();
    const used = (e.cpuMs?.() ?? NaN) - c0;
    if (Number.isFinite(used)) cpu.push(`${what} ${(used / items).toFixed(1)} ms`);
    return value;
  };

  let runTrue = NaN;
  if (opts.only.has('run')) {
    // run --rm true: one untimed warm-up (page cache, lazy code in the daemon), then the median.
    await e.cli(['run', '--rm', 'busybox', 'true']);
    const runTimes: number[] = [];
    await cpuStep('run --rm true', runs, async () => {
      for (let i = 0; i < runs; i++) runTimes.push((await timed(() => e.cli(['run', '--rm', 'busybox', 'true']))).seconds);
    });
    runTrue = median(runTimes);
    rows.push({ figure: `${e.name}: docker run --rm busybox true`, value: ms(runTrue), baseline: `${ms(floor.runTrue)} crun run`, ratio: ratio(runTrue, floor.runTrue), target: '<= 2x crun + 60 ms', result: verdict(runTrue <= 2 * floor.runTrue + 0.06) });
    notes.push(`${e.name} run --rm true: ${runTimes.map((t) => (t * 1000).toFixed(0)).join('/')} ms`);

    if (extra.berthCli) {
      if (await extra.berthCli()) {
        const times: number[] = [];
        for (let i = 0; i < runs; i++) times.push((await timed(extra.berthCli)).seconds);
        const t = median(times);
        rows.push({ figure: `${e.name}: berth run --rm busybox true`, value: ms(t), baseline: `${ms(floor.runTrue)} crun run`, ratio: ratio(t, floor.runTrue), target: '<= 2x crun + 60 ms', result: verdict(t <= 2 * floor.runTrue + 0.06) });
      } else {
        notes.push('berth run --rm busybox true does not work yet: skipped');
      }
    }
  }

  if (opts.only.has('start')) {
    // 50 started one at a time, then 50 more 8 at a time; the daemon's RSS is read before and after.
    const rssBefore = e.daemonPid ? memOf(e.daemonPid).rss : NaN;
    const procsBefore = new Set(processes().map((p) => p.pid));
    const ids: string[] = [];
    const startOne = async (): Promise<void> => {
      ids.push((await e.cli(['run', '-d', 'busybox', 'sleep', '1000'], { keepStdout: true })).trim());
    };
    const serial = await cpuStep('start, one at a time', opts.count, () => timed(async () => {
      for (let i = 0; i < opts.count; i++) await startOne();
    }));
    rows.push({ figure: `${e.name}: start ${opts.count}, one at a time`, value: sec(serial.seconds), baseline: `${sec(opts.count * floor.runTrue)} ${opts.count}x crun run`, ratio: ratio(serial.seconds, opts.count * floor.runTrue), target: '<= 4 s', result: verdict(serial.seconds <= 4) });

    // Memory with the first batch idle for a moment (conmon settles after start-up).
    await sleep(2000);
    const added = processes().filter((p) => !procsBefore.has(p.pid));
    const monitors = added.filter((p) => e.isMonitor(p));
    const perMonitor = monitors.map((p) => memOf(p.pid));
    // Anything new that is neither a monitor nor below one (the container's own processes).
    const monitorPids = new Set(monitors.map((p) => p.pid));
    const below = (p: ProcInfo): boolean => {
      const byPid = new Map(added.map((x) => [x.pid, x]));
      for (let q: ProcInfo | undefined = p; q; q = byPid.get(q.ppid)) if (monitorPids.has(q.ppid)) return true;
      return false;
    };
    // Other engineers' daemons may run on the machine too: only this engine's processes count.
    const others = added.filter((p) => e.isOwn(p) && !monitorPids.has(p.pid) && !below(p));
    const othersRss = others.reduce((n, p) => {
      try {
        return n + (memOf(p.pid).rss || 0);
      } catch {
        return n; // exited meanwhile
      }
    }, 0);
    const rssPer = mean(perMonitor.map((m) => m.rss)) + othersRss / opts.count;
    const pssPer = mean(perMonitor.map((m) => m.pss));
    rows.push({ figure: `${e.name}: memory per idle container (monitor RSS)`, value: mb(rssPer), baseline: `${monitors.length} monitors`, ratio: '-', target: '<= 2 MB', result: verdict(rssPer <= 2 * MiB) });
    notes.push(`${e.name}: ${monitors.length} monitor processes for ${opts.count} containers, mean RSS ${mb(mean(perMonitor.map((m) => m.rss)))}, mean PSS ${mb(pssPer)} (PSS shares libc etc. between them); other new processes: ${others.length ? others.map((p) => `${p.comm}[${p.pid}]`).join(', ') : 'none'}`);
    if (e.daemonPid) {
      const growth = (memOf(e.daemonPid).rss - rssBefore) / opts.count;
      rows.push({ figure: `${e.name}: daemon RSS growth per container`, value: mb(growth), baseline: `${mb(rssBefore)} before`, ratio: '-', target: '(report)', result: '-' });
    }

    // ps with the batch running: the CLI (its own start-up dominates; `docker version` client-only
    // is its baseline) and the API call alone (GET /_ping is its baseline).
    await e.cli(['ps', '-q']);
    const cliBase: number[] = [];
    const psTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      cliBase.push((await timed(() => e.cli(['version', '--format', '{{.Client.Version}}']))).seconds);
      psTimes.push((await timed(() => e.cli(['ps']))).seconds);
    }
    const ps = mean(psTimes);
    rows.push({ figure: `${e.name}: docker ps, ${opts.count} running (CLI)`, value: ms(ps), baseline: `${ms(mean(cliBase))} CLI start-up`, ratio: ratio(ps, mean(cliBase)), target: '<= 25 ms', result: verdict(ps <= 0.025) });
    if (e.socket) {
      const socket = e.socket;
      const pingTimes: number[] = [];
      const listTimes: number[] = [];
      let count = 0;
      for (let i = 0; i < 3; i++) await request(socket, 'GET', '/containers/json');
      for (let i = 0; i < runs * 4; i++) {
        pingTimes.push((await timed(() => request(socket, 'GET', '/_ping'))).seconds);
        const r = await timed(() => request(socket, 'GET', '/containers/json'));
        listTimes.push(r.seconds);
        count = (JSON.parse(r.value.body.toString()) as unknown[]).length;
      }
      const list = mean(listTimes);
      rows.push({ figure: `${e.name}: GET /containers/json, ${count} running`, value: ms(list), baseline: `${ms(mean(pingTimes))} GET /_ping`, ratio: ratio(list, mean(pingTimes)), target: '<= 25 ms', result: verdict(list <= 0.025) });
    }

    // The second batch, `parallel` at a time.
    const parallel = await cpuStep(`start, ${opts.parallel} at a time`, opts.count, () => timed(() => pool(Array.from({ length: opts.count }, (_, i) => i), opts.parallel, startOne)));
    rows.push({ figure: `${e.name}: start ${opts.count}, ${opts.parallel} at a time`, value: sec(parallel.seconds), baseline: `${sec(serial.seconds)} one at a time`, ratio: ratio(parallel.seconds, serial.seconds), target: '<= 2.5 s', result: verdict(parallel.seconds <= 2.5) });

    // Removal: one `docker rm -f` of the first batch (the CLI removes them concurrently), then the rest.
    const first = ids.slice(0, opts.count);
    const rm = await cpuStep('rm -f', first.length, () => timed(() => e.cli(['rm', '-f', ...first], { timeoutMs: 300_000 })));
    rows.push({ figure: `${e.name}: docker rm -f of ${first.length} running`, value: sec(rm.seconds), baseline: `${sec(serial.seconds)} to start them`, ratio: ratio(rm.seconds, serial.seconds), target: '<= 2 s', result: verdict(rm.seconds <= 2) });
    await e.cli(['rm', '-f', ...ids.slice(opts.count)], { timeoutMs: 300_000 });
  }

  if (opts.only.has('output')) {
    // 200 MB to stdout, through the CLI's attach to /dev/null, vs the same pipeline on the host.
    // Lines of 100 characters: a realistic log (yes' two-byte lines would make 100 M log entries).
    const name = `bench-output-${process.pid}`;
    const out = await cpuStep(`${(opts.outputBytes / 1e6).toFixed(0)} MB output run`, 1, () => timed(() => e.cli(['run', '--name', name, 'busybox', 'sh', '-c', pipelineScript(opts.outputBytes)], { timeoutMs: 600_000 })));
    rows.push({ figure: `${e.name}: run writing ${(opts.outputBytes / 1e6).toFixed(0)} MB to stdout`, value: sec(out.seconds), baseline: `${sec(floor.pipeline)} no container`, ratio: ratio(out.seconds, floor.pipeline), target: '<= 1.3x', result: verdict(out.seconds <= 1.3 * floor.pipeline) });
    notes.push(`${e.name}: the output run minus run --rm true: ${sec(out.seconds - runTrue)} (${((opts.outputBytes / 1e6) / Math.max(out.seconds - runTrue, 1e-3)).toFixed(0)} MB/s)`);
    const logs = await timed(() => e.cli(['logs', name], { timeoutMs: 600_000 }));
    rows.push({ figure: `${e.name}: docker logs of it to /dev/null`, value: sec(logs.seconds), baseline: `${sec(out.seconds)} to write it`, ratio: ratio(logs.seconds, out.seconds), target: '<= 3 s', result: verdict(logs.seconds <= 3) });
    await e.cli(['rm', '-f', name]);
  }
  if (cpu.length > 0) notes.push(`${e.name} engine CPU (daemon, conmon, runtime, netavark; per item): ${cpu.join('; ')}`);
  return { rows, notes };
}

function pipelineScript(bytes: number): string {
  return `yes ${'x'.repeat(99)} | head -c ${bytes}`;
}

/** The floor figures: crun run of the bundle, and the pipeline on the host. */
async function measureFloor(dir: string, cgroupParent: string, opts: Options): Promise<{ runTrue: number; pipeline: number; notes: string[] }> {
  const tarFile = path.join(dir, 'busybox.tar');
  fs.writeFileSync(tarFile, await busyboxTar());
  const { bundle, config } = makeFloorBundle(dir, tarFile, cgroupParent);
  const crunRoot = path.join(dir, 'crun-root');
  const runOnce = async (i: number): Promise<number> => {
    const id = `bench-floor-${process.pid}-${i}`;
    config(id, ['true']);
    return (await timed(() => exec('crun', ['--root', crunRoot, 'run', '--bundle', bundle, id]))).seconds;
  };
  await runOnce(0);
  const times: number[] = [];
  const c0 = childrenCpuMs();
  for (let i = 1; i <= opts.runs; i++) times.push(await runOnce(i));
  const crunCpu = (childrenCpuMs() - c0) / opts.runs;

  const pipeTimes: number[] = [];
  for (let i = 0; i < 3; i++) pipeTimes.push((await timed(() => exec('/bin/busybox', ['sh', '-c', pipelineScript(opts.outputBytes)]))).seconds);
  return {
    runTrue: median(times),
    pipeline: median(pipeTimes),
    notes: [`crun run true: ${times.map((t) => (t * 1000).toFixed(0)).join('/')} ms (${crunCpu.toFixed(1)} ms CPU each); pipeline without a container: ${pipeTimes.map((t) => t.toFixed(2)).join('/')} s`],
  };
}

// ---- --compare: Moby and Podman -------------------------------------------------------------

/** Installs docker.io and podman from Debian (only with --compare). */
function installOthers(): void {
  log('installing docker.io and podman from Debian (--compare)');
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'docker.io', 'podman'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** dockerd in its own roots and socket, networking off (as berth's default), busybox imported. */
async function startMoby(dir: string, tarFile: string): Promise<{ engine: Engine; stop: () => Promise<void> }> {
  const root = path.join(dir, 'moby');
  fs.mkdirSync(root, { recursive: true });
  const socket = path.join(root, 'docker.sock');
  const p: ChildProcess = spawn('/usr/sbin/dockerd', [
    '-H', `unix://${socket}`, '--data-root', path.join(root, 'data'), '--exec-root', path.join(root, 'exec'),
    '--pidfile', path.join(root, 'dockerd.pid'), '--bridge', 'none', '--iptables=false', '--ip6tables=false',
    '--containerd-namespace', `bench${process.pid}`, '--containerd-plugins-namespace', `bench${process.pid}p`,
  ], { stdio: ['ignore', fs.openSync(path.join(root, 'dockerd.log'), 'a'), fs.openSync(path.join(root, 'dockerd.log'), 'a')] });
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(root, 'cli') };
  for (let i = 0; ; i++) {
    if (fs.existsSync(socket) && (await request(socket, 'GET', '/_ping').then((r) => r.status === 200, () => false))) break;
    if (i > 300 || p.exitCode !== null) throw new Error(`dockerd did not start; see ${path.join(root, 'dockerd.log')}`);
    await sleep(100);
  }
  const cli = (args: string[], o?: { keepStdout?: boolean; timeoutMs?: number }): Promise<string> => exec('docker', args[0] === 'run' ? ['run', '--network', 'none', ...args.slice(1)] : args, { env, ...o });
  await exec('docker', ['import', '--change', 'CMD ["sh"]', tarFile, 'busybox:latest'], { env });
  return {
    engine: { name: 'moby', cli, socket, daemonPid: p.pid, isMonitor: (x) => x.comm.startsWith('containerd-shim'), isOwn: (x) => x.cmdline.includes(root) || x.comm.startsWith('containerd') },
    stop: async () => {
      await exec('docker', ['rm', '-f', ...(await exec('docker', ['ps', '-aq'], { env, keepStdout: true })).split('\n').filter(Boolean)], { env }).catch(() => {});
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
    },
  };
}

/** podman in its own roots (no daemon), networking off, busybox imported. */
async function podmanEngine(dir: string, tarFile: string): Promise<{ engine: Engine; stop: () => Promise<void> }> {
  const root = path.join(dir, 'podman');
  const base = ['--root', path.join(root, 'root'), '--runroot', path.join(root, 'run'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
  const cli = (args: string[], o?: { keepStdout?: boolean; timeoutMs?: number }): Promise<string> => exec('podman', [...base, ...(args[0] === 'run' ? ['run', '--network', 'none', ...args.slice(1)] : args)], o);
  await exec('podman', [...base, 'import', '--change', 'CMD ["sh"]', tarFile, 'busybox:latest']);
  return {
    engine: { name: 'podman', cli, isMonitor: (x) => x.comm === 'conmon' && x.cmdline.includes(root), isOwn: (x) => x.cmdline.includes(root) },
    stop: async () => {
      await exec('podman', [...base, 'rm', '-af', '-t', '0']).catch(() => {});
      await exec('podman', [...base, 'system', 'reset', '-f']).catch(() => {});
    },
  };
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: berthd and crun need to mount and make cgroups');
  log(`${os.cpus().length} CPUs; ${opts.count} containers, ${opts.parallel} at a time, ${opts.runs} runs of short steps`);
  let env: CtrEnv | undefined;
  const cgroup = `/sys/fs/cgroup/cpuacct/berth-bench-containers-${process.pid}`;
  try {
    // A default bridge of its own (bridge name and subnet no other berthd holds), removed after.
    env = await setupDaemon('bench');
    const d = env.d;
    // berthd into a cpuacct cgroup of its own: the conmons, runtimes and netavarks it starts
    // inherit it (the containers move to theirs), so its usage is the engine's CPU.
    try {
      fs.mkdirSync(cgroup);
      fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), String(d.proc.pid));
    } catch (err) {
      log(`no engine CPU figures: ${(err as Error).message}`);
    }
    const floor = await measureFloor(d.dir, d.cgroupParent, opts);
    log(floor.notes[0]);
    const daemon = d;
    const berthCli = async (): Promise<boolean> => (await berth(daemon, ['run', '--rm', 'busybox', 'true'])).code === 0;
    const figures = await measureEngine(berthEngine(d, fs.existsSync(cgroup) ? cgroup : undefined), opts, floor, { berthCli });
    printTable('berth', figures.rows);
    for (const n of [...floor.notes, ...figures.notes]) process.stdout.write(`  ${n}\n`);

    if (opts.compare) {
      installOthers();
      const tarFile = path.join(d.dir, 'busybox.tar');
      for (const start of [startMoby, podmanEngine]) {
        const other = await start(d.dir, tarFile);
        try {
          const f = await measureEngine(other.engine, opts, floor, {});
          printTable(other.engine.name, f.rows);
          for (const n of f.notes) process.stdout.write(`  ${n}\n`);
        } finally {
          await other.stop();
        }
      }
    }
  } finally {
    // Also removes what an interrupted `crun run` of the floor left: its cgroups sit below the
    // daemon's cgroup parent and its processes mention the daemon's temp dir.
    await env?.cleanup();
    for (let i = 0; i < 50 && fs.existsSync(cgroup); i++) {
      try {
        fs.rmdirSync(cgroup);
      } catch {
        await sleep(100);
      }
    }
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
