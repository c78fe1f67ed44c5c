// Container stats from a real cgroup: a busy shell moved into a test cgroup (v1 controllers, and
// the cgroup2 hierarchy for the v2 reader), read twice; and the HTTP streaming helper.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { detectCgroupLayout } from '../../src/runtime/cgroups';
import { readStats, writeStats, parseStatsQuery, parseNetDev, parseIoStatV2, parseProcStat, ZERO_TIME, type StatsResponse, type StatsTarget } from '../../src/stats';

const PARENT = `berth-test-stats-${process.pid}`;
const layout = detectCgroupLayout();
const CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'blkio', 'pids'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Hierarchy roots (deduplicated: cpu and cpuacct may share one) for our controllers. */
function v1Roots(): string[] {
  return [...new Set(CONTROLLERS.map((c) => layout.v1.get(c)).filter((r): r is string => r !== undefined))];
}

interface BusyCgroup {
  cgroupsPath: string;
  child: ChildProcess;
  dirs: string[];
}

/**
 * Makes <root>/PARENT/<name> in each given hierarchy and starts a busy shell that moves itself
 * there and then execs the loop (so its new memory is charged to the cgroup). Cleanup kills it by
 * PID and removes the cgroups, from t.after even on failure.
 */
async function busyCgroup(t: { after(fn: () => Promise<void> | void): void }, name: string, roots: string[], setup: (dirs: string[]) => void = () => {}): Promise<BusyCgroup> {
  const cgroupsPath = `/${PARENT}/${name}`;
  const dirs = roots.map((r) => path.join(r, PARENT, name));
  const started: { child?: ChildProcess } = {};
  t.after(async () => {
    const child = started.child;
    if (child?.pid && child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      try { process.kill(child.pid, 'SIGKILL'); } catch {}
      await gone;
    }
    for (const d of dirs) {
      for (let i = 0; i < 50; i++) {
        try {
          if (fs.existsSync(d)) fs.rmdirSync(d);
          break;
        } catch {
          await sleep(20);
        }
      }
      try { fs.rmdirSync(path.dirname(d)); } catch {}
    }
  });
  for (const d of dirs) fs.mkdirSync(d, { recursive: true });
  setup(dirs);
  const child = spawn('sh', ['-c', `for d in ${dirs.join(' ')}; do echo $$ > $d/cgroup.procs || exit 9; done; exec sh -c 'while :; do :; done'`], { stdio: 'ignore' });
  started.child = child;
  const pid = String(child.pid);
  // The child has to be spawned before it can move itself; wait until it is in every cgroup.
  for (let i = 0; i < 100; i++) {
    if (dirs.every((d) => fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').includes(pid))) break;
    assert.equal(child.exitCode, null, 'busy shell exited early');
    await sleep(20);
  }
  return { cgroupsPath, child, dirs };
}

test('v1: CPU grows between two reads, memory is charged, limits and pids are read', async (t) => {
  assert.ok(layout.mode !== 'v2', 'this machine runs cgroup v1');
  const c = await busyCgroup(t, 'busy', v1Roots(), (dirs) => {
    for (const d of dirs) {
      if (fs.existsSync(path.join(d, 'memory.limit_in_bytes'))) fs.writeFileSync(path.join(d, 'memory.limit_in_bytes'), String(256 << 20));
      if (fs.existsSync(path.join(d, 'pids.max'))) fs.writeFileSync(path.join(d, 'pids.max'), '100');
    }
  });
  await sleep(300);
  const first = readStats(c.cgroupsPath, c.child.pid!, undefined, { name: '/busy', id: 'abc' });
  await sleep(500);
  const second = readStats(c.cgroupsPath, c.child.pid!, first, { name: '/busy', id: 'abc' });

  assert.equal(first.name, '/busy');
  assert.equal(first.id, 'abc');
  assert.equal(first.preread, ZERO_TIME);
  assert.equal(second.preread, first.read);
  assert.deepEqual(second.precpu_stats, first.cpu_stats);
  assert.equal(first.precpu_stats.cpu_usage.total_usage, 0);

  const u1 = first.cpu_stats.cpu_usage;
  const u2 = second.cpu_stats.cpu_usage;
  assert.ok(u1.total_usage > 10e6, `busy loop used ${u1.total_usage} ns`);
  // A spinning loop over 0.5 s uses up to 0.5 s of a CPU (less on a loaded 2-core machine).
  assert.ok(u2.total_usage - u1.total_usage > 20e6, `grew by ${u2.total_usage - u1.total_usage}`);
  assert.ok(u2.usage_in_usermode + u2.usage_in_kernelmode > u1.usage_in_usermode + u1.usage_in_kernelmode);
  assert.ok(u2.percpu_usage && u2.percpu_usage.length >= 1);
  const percpuSum = u2.percpu_usage!.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(percpuSum - u2.total_usage) / u2.total_usage < 0.05, `percpu ${percpuSum} vs total ${u2.total_usage}`);
  assert.ok(second.cpu_stats.system_cpu_usage! > first.cpu_stats.system_cpu_usage!);
  assert.equal(second.cpu_stats.online_cpus, fs.readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d+ /.test(l)).length);
  assert.equal(typeof second.cpu_stats.throttling_data.periods, 'number');

  assert.ok(second.memory_stats.usage! > 0, `memory usage ${second.memory_stats.usage}`);
  assert.equal(second.memory_stats.limit, 256 << 20);
  assert.ok(second.memory_stats.max_usage! >= second.memory_stats.usage!);
  assert.equal(typeof second.memory_stats.stats!.cache, 'number');
  assert.equal(typeof second.memory_stats.stats!.total_inactive_file, 'number');
  assert.equal(second.memory_stats.failcnt, 0);

  assert.equal(second.pids_stats.current, 1);
  assert.equal(second.pids_stats.limit, 100);
  assert.ok(Array.isArray(second.blkio_stats.io_service_bytes_recursive));
  assert.equal(second.num_procs, 0);
  assert.deepEqual(second.storage_stats, {});
  // The shell is in the host's network namespace: its interfaces (lo left out) are reported.
  const hostNets = Object.keys(parseNetDev(fs.readFileSync('/proc/self/net/dev', 'utf8')));
  assert.deepEqual(Object.keys(second.networks ?? {}).sort(), hostNets.sort());
  // pid 0: no network figures.
  assert.equal(readStats(c.cgroupsPath, 0).networks, undefined);
});

test('v1: no memory limit shows the machine memory', async (t) => {
  const c = await busyCgroup(t, 'nolimit', v1Roots());
  const s = readStats(c.cgroupsPath, 0, undefined, { machineMemory: 123 << 20 });
  assert.equal(s.memory_stats.limit, 123 << 20);
  assert.equal(s.pids_stats.limit, undefined);
  assert.throws(() => readStats('/../etc', 0), /invalid cgroup path/);
});

test('v2 reader on the cgroup2 hierarchy: cpu.stat gives usage', async (t) => {
  if (!layout.unified) return t.skip('no cgroup2 hierarchy mounted');
  const c = await busyCgroup(t, 'v2', [layout.unified]);
  const v2 = { mode: 'v2' as const, v1: new Map<string, string>(), unified: layout.unified };
  await sleep(200);
  const a = readStats(c.cgroupsPath, 0, undefined, { layout: v2 });
  await sleep(400);
  const b = readStats(c.cgroupsPath, 0, a, { layout: v2 });
  assert.ok(b.cpu_stats.cpu_usage.total_usage - a.cpu_stats.cpu_usage.total_usage > 20e6);
  assert.equal(b.cpu_stats.cpu_usage.percpu_usage, undefined);
  assert.ok(b.cpu_stats.cpu_usage.usage_in_usermode > 0);
});

test('parsers: /proc/stat, net/dev, io.stat', () => {
  const ps = parseProcStat('cpu  100 0 50 1000 0 0 0 0 0 0\ncpu0 50 0 25 500 0 0 0 0 0 0\ncpu1 50 0 25 500 0 0 0 0 0 0\nintr 1\n');
  assert.deepEqual(ps, { systemUsage: 1150 * 1e7, onlineCpus: 2 });
  const nd = parseNetDev(
    'Inter-|   Receive                                                |  Transmit\n' +
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n' +
      '    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n' +
      '  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n',
  );
  assert.deepEqual(nd, { eth0: { rx_bytes: 5000, rx_packets: 40, rx_errors: 1, rx_dropped: 2, tx_bytes: 3000, tx_packets: 30, tx_errors: 3, tx_dropped: 4 } });
  assert.deepEqual(parseIoStatV2('8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n'), {
    bytes: [{ major: 8, minor: 0, op: 'read', value: 4096 }, { major: 8, minor: 0, op: 'write', value: 8192 }],
    ios: [{ major: 8, minor: 0, op: 'read', value: 1 }, { major: 8, minor: 0, op: 'write', value: 2 }],
  });
  assert.deepEqual(parseStatsQuery(new URLSearchParams('')), { stream: true, oneShot: false });
  assert.deepEqual(parseStatsQuery(new URLSearchParams('stream=false&one-shot=true')), { stream: false, oneShot: true });
  assert.throws(() => parseStatsQuery(new URLSearchParams('one-shot=1')), /cannot have stream=true and one-shot=true/);
});

test('writeStats over HTTP: one-shot, two-sample, streaming, and a stopped container', async (t) => {
  const c = await busyCgroup(t, 'http', v1Roots());
  let running = true;
  const target = (): StatsTarget | undefined => (running ? { cgroupsPath: c.cgroupsPath, pid: c.child.pid! } : undefined);
  const server = http.createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    void writeStats(res, target, parseStatsQuery(q), { name: '/http', id: 'f00', intervalMs: 150 });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const port = (server.address() as AddressInfo).port;
  const get = (q: string) => new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: `/?${q}` }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });

  const one = (await get('stream=false&one-shot=true')).trim().split('\n');
  assert.equal(one.length, 1);
  const oneShot = JSON.parse(one[0]) as StatsResponse;
  assert.equal(oneShot.name, '/http');
  assert.equal(oneShot.preread, ZERO_TIME);
  assert.ok(oneShot.cpu_stats.cpu_usage.total_usage > 0);

  const two = JSON.parse(await get('stream=false')) as StatsResponse;
  assert.notEqual(two.preread, ZERO_TIME);
  assert.ok(two.cpu_stats.cpu_usage.total_usage > two.precpu_stats.cpu_usage.total_usage);

  // Streaming: read three objects, then hang up; the server side stops.
  const lines = await new Promise<StatsResponse[]>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/?stream=1' }, (res) => {
      let buf = '';
      res.on('data', (b: Buffer) => {
        buf += b.toString();
        const parts = buf.split('\n').filter(Boolean);
        if (parts.length >= 3) {
          req.destroy();
          resolve(parts.slice(0, 3).map((p) => JSON.parse(p) as StatsResponse));
        }
      });
    });
    req.on('error', (e) => (e.message.includes('aborted') || (e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
  });
  assert.equal(lines[0].preread, ZERO_TIME);
  assert.equal(lines[1].preread, lines[0].read);
  assert.equal(lines[2].preread, lines[1].read);

  running = false;
  const stopped = JSON.parse(await get('stream=false')) as StatsResponse;
  assert.equal(stopped.read, ZERO_TIME);
  assert.equal(stopped.id, 'f00');
  assert.deepEqual(stopped.memory_stats, {});
});
