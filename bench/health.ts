// Health-check benchmark: what it costs to probe N containers every second, everything counted
// (berthd, the runtime processes, the probe commands), against the floor underneath it: a bare
// `crun exec <id> true` per probe, measured in the same run.
//
// These are measurements, not tests. Over a window of --seconds (default 20) with N (--count,
// default 100) containers probing `true` every second, it reads:
//   berthd        utime+stime of berthd itself (/proc/<pid>/stat)
//   conmon        utime+stime of the N containers' long-lived conmons (/proc/<pid>/stat)
//   probe tree    cpuacct of a cgroup holding berthd and so every process it starts: the runtime
//                 execs of the probes (and any conmon: those daemonize away from berthd and
//                 cannot be read by pid once gone); the part of a probe that runs after it joined
//                 the container's cgroup is counted in the next row
//   probe commands cpuacct of the daemon's cgroup parent: every container's cgroup, where the
//                 probe commands (and the tail of each runtime exec) run
//   probes        exec_die events in the window
// and prints each as a share of one core and per probe, beside the floor (CPU of a bare
// `crun exec <id> true`, and of the same run from a sealed memfd copy of crun, as berthd runs it).
// Target: the total (probe tree + probe commands) well under one core for N=100 at 1 s.
//
// Run: `npx tsc -p tsconfig.json && node dist/bench/health.js [--count N] [--seconds S]` (as root).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { api, startDaemon, type TestDaemon } from '../test/helpers/daemon';
import { bridgeConfig, cleanupNetworking, importBusybox } from '../test/containers/fixtures';
import { mountsUnder } from '../test/helpers/cleanup';
import { pool } from './lib';

interface Options {
  count: number;
  seconds: number;
  intervalMs: number;
  /** Exec root on a tmpfs, as /run is on a systemd host (the test helpers put it on /tmp's disk). */
  tmpfsExecRoot: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { count: 100, seconds: 20, intervalMs: 1000, tmpfsExecRoot: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--count') o.count = Math.floor(next());
    else if (a === '--seconds') o.seconds = next();
    else if (a === '--interval-ms') o.intervalMs = Math.floor(next());
    else if (a === '--disk-exec-root') o.tmpfsExecRoot = false;
    else throw new Error(`unknown option ${a} (use --count N, --seconds S, --interval-ms MS, --disk-exec-root)`);
  }
  return o;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const CPUACCT = '/sys/fs/cgroup/cpuacct';

/** utime+stime of a process in ms; 0 when it is gone. */
function procCpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5), counted from the state field (3).
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Pids whose command line mentions s and whose name is comm. */
function pidsOf(comm: string, s: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() !== comm) continue;
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(s)) out.push(Number(p));
    } catch {}
  }
  return out;
}

function cpuacctMs(dir: string): number {
  try {
    return Number(fs.readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8').trim()) / 1e6;
  } catch {
    return NaN;
  }
}

/** CPU of the children this process has reaped (cutime+cstime), in ms. */
function selfChildrenCpuMs(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
}

/** CPU per `crun exec <id> true` run from a sealed memfd copy of crun, if the addon can make one. */
function sealedFloorMs(runtimeRoot: string, ids: string[], runs: number): number | undefined {
  let fd: number;
  try {
    // Loaded by path so that this bench also runs against older builds without sealedCopy.
    const native = require('../src/native') as { sealedCopy?: (file: string, name: string) => number };
    if (!native.sealedCopy) return undefined;
    fd = native.sealedCopy('/usr/bin/crun', 'crun');
  } catch {
    return undefined;
  }
  try {
    const c0 = selfChildrenCpuMs();
    for (let i = 0; i < runs; i++) {
      const r = spawnSync(`/proc/${process.pid}/fd/${fd}`, [`--root=${runtimeRoot}`, 'exec', ids[i % ids.length], 'true'], { stdio: 'ignore', argv0: 'crun' });
      if (r.status !== 0) throw new Error(`crun exec (memfd) failed (${r.status})`);
    }
    return (selfChildrenCpuMs() - c0) / runs;
  } finally {
    fs.closeSync(fd);
  }
}

/** Counts exec_die events while it runs. */
function countExecDies(d: TestDaemon): { count(): number; stop(): void } {
  let n = 0;
  let buf = '';
  const filters = encodeURIComponent(JSON.stringify({ type: ['container'], event: ['exec_die'] }));
  const req = http.request({ socketPath: d.socket, path: `/events?filters=${filters}`, method: 'GET' }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (s: string) => {
      buf += s;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      n += lines.filter((l) => l.trim() !== '').length;
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end();
  return { count: () => n, stop: () => req.destroy() };
}

function pct(ms: number, windowMs: number): string {
  return `${((100 * ms) / windowMs).toFixed(1)}%`;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  let d: TestDaemon | undefined;
  const benchCgroup = path.join(CPUACCT, `berth-bench-health-${process.pid}`);
  const net = bridgeConfig();
  const tmpfs = o.tmpfsExecRoot ? fs.mkdtempSync('/tmp/berth-bench-health-run-') : undefined;
  try {
    if (tmpfs) execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0700', 'tmpfs', tmpfs]);
    // A later --exec-root wins over the helper's.
    // A default bridge and subnet of its own, never the host's berth0.
    d = await startDaemon({ name: 'bench-health', config: net, args: tmpfs ? ['--exec-root', tmpfs] : [] });
    if (tmpfs) d.execRoot = tmpfs;
    await importBusybox(d);
    // berthd into a cgroup of its own, before it starts any conmon: they all inherit it.
    fs.mkdirSync(benchCgroup);
    fs.writeFileSync(path.join(benchCgroup, 'cgroup.procs'), String(d.proc.pid));

    console.log(`starting ${o.count} containers probing \`true\` every ${o.intervalMs} ms ...`);
    const ids: string[] = [];
    await pool(Array.from({ length: o.count }, (_v, i) => i), 4, async (i) => {
      const c = await api(d!.socket, 'POST', `/containers/create?name=hb${i}`, {
        Image: 'busybox', Cmd: ['sleep', '100000'],
        Healthcheck: { Test: ['CMD', 'true'], Interval: o.intervalMs * 1e6, Retries: 3 },
      });
      if (c.status !== 201) throw new Error(`create: ${c.status} ${c.body.toString()}`);
      const id = c.json<{ Id: string }>().Id;
      const s = await api(d!.socket, 'POST', `/containers/${id}/start`);
      if (s.status !== 204) throw new Error(`start: ${s.status} ${s.body.toString()}`);
      ids.push(id);
    });
    // Let every container pass its first probe before measuring.
    const settleUntil = Date.now() + 60_000;
    for (;;) {
      const r = await api(d.socket, 'GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ health: ['healthy'] }))}`);
      const healthy = r.json<unknown[]>().length;
      if (healthy === o.count) break;
      if (Date.now() > settleUntil) {
        console.log(`only ${healthy}/${o.count} healthy after 60 s; measuring anyway`);
        break;
      }
      await new Promise((r2) => setTimeout(r2, 500));
    }

    const berthdPid = d.proc.pid!;
    const conmons = pidsOf('conmon', d.dir);
    const ctrCgroup = path.join(CPUACCT, d.cgroupParent);
    const events = countExecDies(d);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const b0 = procCpuMs(berthdPid);
    const c0 = conmons.reduce((n, p) => n + procCpuMs(p), 0);
    const g0 = cpuacctMs(benchCgroup);
    const k0 = cpuacctMs(ctrCgroup);
    const e0 = events.count();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const windowMs = Date.now() - t0;
    const berthd = procCpuMs(berthdPid) - b0;
    const conmon = conmons.reduce((n, p) => n + procCpuMs(p), 0) - c0;
    const tree = cpuacctMs(benchCgroup) - g0;
    const ctr = cpuacctMs(ctrCgroup) - k0;
    const probes = events.count() - e0;
    events.stop();

    // The floor: what one bare `crun exec <id> true` costs (crun's CPU, as a reaped child of this process).
    const runtimeRoot = path.join(d.execRoot, 'runtime', 'runtime-crun');
    const floorRuns = 30;
    const f0 = selfChildrenCpuMs();
    const ft0 = Date.now();
    for (let i = 0; i < floorRuns; i++) {
      const r = spawnSync('/usr/bin/crun', [`--root=${runtimeRoot}`, 'exec', ids[i % ids.length], 'true'], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`crun exec failed (${r.status})`);
    }
    const floorMs = (selfChildrenCpuMs() - f0) / floorRuns;
    const floorWall = (Date.now() - ft0) / floorRuns;
    // The same from a sealed memfd copy (crun then skips copying itself before the exec).
    const memfdMs = sealedFloorMs(runtimeRoot, ids, floorRuns);

    const per = (ms: number): string => (probes > 0 ? `${(ms / probes).toFixed(2)} ms/probe` : '-');
    console.log(`\nexec root on ${tmpfs ? 'tmpfs' : 'disk (/tmp)'}; window ${(windowMs / 1000).toFixed(1)} s, ${o.count} containers, ${probes} probes (${((probes * 1000) / windowMs).toFixed(1)}/s, expected ~${((o.count * 1000) / (o.intervalMs + floorWall)).toFixed(0)}/s)`);
    console.log('                      CPU          of one core   per probe');
    console.log(`berthd                ${berthd.toFixed(0).padStart(7)} ms   ${pct(berthd, windowMs).padStart(9)}   ${per(berthd)}`);
    console.log(`container conmons     ${conmon.toFixed(0).padStart(7)} ms   ${pct(conmon, windowMs).padStart(9)}   ${per(conmon)}`);
    console.log(`probe tree (cgroup)   ${tree.toFixed(0).padStart(7)} ms   ${pct(tree, windowMs).padStart(9)}   ${per(tree)}   berthd + everything it starts (runtime execs, conmons)`);
    console.log(`probe commands        ${ctr.toFixed(0).padStart(7)} ms   ${pct(ctr, windowMs).padStart(9)}   ${per(ctr)}   in the containers' cgroups`);
    console.log(`floor: bare crun exec ${floorMs.toFixed(2)} ms CPU per exec (${floorWall.toFixed(1)} ms wall), i.e. ${pct(floorMs * probes, windowMs)} of a core at this probe rate`);
    if (memfdMs !== undefined) console.log(`       the same from a sealed memfd copy of crun: ${memfdMs.toFixed(2)} ms CPU per exec`);
    const total = tree + ctr;
    // On a loaded machine probes start slower than the interval asks (the monitor starts at most a
    // few at once, so a busy machine gets fewer probes, not a pile-up): project to the nominal rate.
    const nominal = (o.count * 1000) / o.intervalMs;
    const projected = probes > 0 ? (total / probes) * nominal : NaN;
    console.log(`\ntotal (probe tree + probe commands) ${pct(total, windowMs)} of one core at the achieved ${((probes * 1000) / windowMs).toFixed(1)} probes/s, ${per(total)}`);
    console.log(`projected at the nominal ${nominal.toFixed(0)} probes/s: ${(projected / 10).toFixed(0)}% of one core, of which the bare runtime exec floor is ${((floorMs * nominal) / 10).toFixed(0)}% and berthd ${(((berthd / Math.max(1, probes)) * nominal) / 10).toFixed(0)}%: ${projected < 1000 ? 'PASS' : 'MISS'} (target: under one core)`);
    console.log(`berthd's own share: ${per(berthd)} (berth's overhead beside the runtime's ${floorMs.toFixed(2)} ms floor)`);
  } finally {
    if (d) await cleanupNetworking(d, { bridges: [net.bridge], subnets: [net.bip.replace(/\.1\/24$/, '.0/24')] });
    if (tmpfs) {
      // Container rootfs mounts live under the exec root, outside the helper's temp dir.
      for (const line of mountsUnder(tmpfs).reverse()) {
        try { execFileSync('umount', ['-l', line.split(' ')[4]], { stdio: 'ignore' }); } catch {}
      }
      try { fs.rmdirSync(tmpfs); } catch {}
    }
    for (let i = 0; i < 50 && fs.existsSync(benchCgroup); i++) {
      try {
        fs.rmdirSync(benchCgroup);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
