// Reads one container's resource usage from its cgroup (v1 controllers, or the cgroup2 unified
// hierarchy) and its network namespace, into docker's stats JSON. Only file reads (a dozen or so
// small pseudo-files); no process is spawned, so it can run every second for every container.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectCgroupLayout, type CgroupLayout } from '../runtime/cgroups';
import type { BlkioEntry, BlkioStats, CpuStats, MemoryStats, NetworkStats, StatsResponse } from './types';

/** Go's zero time, what docker writes for a `preread` it does not have. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';
/** USER_HZ: the unit of cpuacct.stat and /proc/stat; 100 on every Linux ABI docker runs on. */
const CLOCK_TICKS = 100;
const NS_PER_TICK = 1e9 / CLOCK_TICKS;

export interface ReadStatsOptions {
  /** The cgroup layout (detected once and cached when absent). */
  layout?: CgroupLayout;
  /** Host memory, the limit shown for a container without one (docker shows MemTotal). */
  machineMemory?: number;
  /** Where /proc is (tests). */
  procRoot?: string;
  name?: string;
  id?: string;
}

let cachedLayout: CgroupLayout | undefined;
function layoutOf(opts: ReadStatsOptions): CgroupLayout {
  if (opts.layout) return opts.layout;
  cachedLayout ??= detectCgroupLayout();
  return cachedLayout;
}

/** One buffer for every pseudo-file read: they are small, and a sample reads a dozen of them. */
let readBuf = Buffer.allocUnsafe(16 * 1024);

/**
 * The text of a small pseudo-file (cgroup, /proc), or undefined when it cannot be read. Reads
 * into the shared buffer with open/read/close only: readFileSync's fstat, its fresh buffer and
 * its option handling were most of a stats sample's cost (100 streams read ~1,500 files a second).
 */
function readText(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (;;) {
      if (n === readBuf.length) {
        const bigger = Buffer.allocUnsafe(readBuf.length * 2);
        readBuf.copy(bigger, 0, 0, n);
        readBuf = bigger;
      }
      const r = fs.readSync(fd, readBuf, n, readBuf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    return readBuf.toString('latin1', 0, n);
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

function readNumber(file: string): number | undefined {
  const t = readText(file)?.trim();
  if (t === undefined || t === '') return undefined;
  if (t === 'max') return Infinity;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** "key value" lines (memory.stat, cpu.stat, cpuacct.stat) into a map. */
function readKeyValues(file: string): Record<string, number> | undefined {
  const t = readText(file);
  if (t === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const line of t.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** Refuses cgroup paths that would leave the hierarchy. */
function relCgroup(cgroupsPath: string): string {
  const rel = cgroupsPath.replace(/^\/+/, '');
  if (rel === '' || rel.split('/').includes('..')) throw new Error(`invalid cgroup path ${JSON.stringify(cgroupsPath)}`);
  return rel;
}

export function emptyBlkio(): BlkioStats {
  return {
    io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null,
    io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null,
  };
}

export function emptyCpu(): CpuStats {
  return { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
}

/** The stats of a container that is not running: docker's zero values. */
export function emptyStats(name?: string, id?: string): StatsResponse {
  return {
    ...(name !== undefined ? { name } : {}), ...(id !== undefined ? { id } : {}),
    read: ZERO_TIME, preread: ZERO_TIME, pids_stats: {}, blkio_stats: emptyBlkio(), num_procs: 0, storage_stats: {},
    cpu_stats: emptyCpu(), precpu_stats: emptyCpu(), memory_stats: {},
  };
}

/** /proc/stat: the host's CPU time in nanoseconds (first 7 fields of "cpu"), and the CPU count. */
export function parseProcStat(text: string): { systemUsage: number; onlineCpus: number } {
  let systemUsage = 0;
  let onlineCpus = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('cpu ')) {
      const ticks = line.trim().split(/\s+/).slice(1, 8).reduce((n, f) => n + Number(f), 0);
      systemUsage = ticks * NS_PER_TICK;
    } else if (/^cpu\d+ /.test(line)) onlineCpus++;
  }
  return { systemUsage, onlineCpus };
}

/** /proc/<pid>/net/dev into per-interface counters, lo left out (as docker does). */
export function parseNetDev(text: string): Record<string, NetworkStats> {
  const out: Record<string, NetworkStats> = {};
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === 'lo') continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 16) continue;
    out[name] = { rx_bytes: f[0], rx_packets: f[1], rx_errors: f[2], rx_dropped: f[3], tx_bytes: f[8], tx_packets: f[9], tx_errors: f[10], tx_dropped: f[11] };
  }
  return out;
}

/** v1 blkio files: "8:0 Read 4096" lines; the Total lines are dropped as docker drops them. */
function parseBlkioV1(text: string | undefined): BlkioEntry[] | null {
  if (text === undefined) return null;
  const out: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
  }
  return out;
}

const BLKIO_PREFIXES = ['blkio.', 'blkio.bfq.', 'blkio.throttle.'];
/** Per blkio hierarchy root: the variants its kernel has (a cgroup has the files its root has). */
const blkioPrefixes = new Map<string, string[]>();

function blkioPrefixesOf(root: string): string[] {
  let found = blkioPrefixes.get(root);
  if (!found) {
    found = BLKIO_PREFIXES.filter((p) => fs.existsSync(path.join(root, `${p}io_serviced_recursive`)));
    // A root that cannot be read (not mounted) is not remembered: asked again next time.
    if (found.length > 0) blkioPrefixes.set(root, found);
  }
  return found.length > 0 ? found : BLKIO_PREFIXES;
}

/** The first of the v1 blkio variants (CFQ, BFQ, throttle) that has device lines. */
function readBlkioV1(root: string, dir: string, kind: 'io_service_bytes_recursive' | 'io_serviced_recursive'): BlkioEntry[] | null {
  let found: BlkioEntry[] | null = null;
  for (const prefix of blkioPrefixesOf(root)) {
    const entries = parseBlkioV1(readText(path.join(dir, prefix + kind)));
    if (entries === null) continue;
    if (entries.length > 0) return entries;
    found ??= entries;
  }
  return found;
}

/** v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0". */
export function parseIoStatV2(text: string): { bytes: BlkioEntry[]; ios: BlkioEntry[] } {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...kv] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const major = Number(m[1]);
    const minor = Number(m[2]);
    for (const pair of kv) {
      const [k, v] = pair.split('=');
      const value = Number(v);
      if (k === 'rbytes') bytes.push({ major, minor, op: 'read', value });
      else if (k === 'wbytes') bytes.push({ major, minor, op: 'write', value });
      else if (k === 'rios') ios.push({ major, minor, op: 'read', value });
      else if (k === 'wios') ios.push({ major, minor, op: 'write', value });
    }
  }
  return { bytes, ios };
}

function memoryLimit(limit: number | undefined, machineMemory: number): number | undefined {
  if (limit === undefined) return undefined;
  // An unlimited cgroup reports PAGE_COUNTER_MAX pages (v1) or "max" (v2): show the host's memory.
  return limit > machineMemory && machineMemory > 0 ? machineMemory : limit;
}

interface Sample {
  cpu: CpuStats;
  memory: MemoryStats;
  pids: { current?: number; limit?: number };
  blkio: BlkioStats;
}

function readV1(layout: CgroupLayout, rel: string, machineMemory: number): Sample {
  const root = (controller: string) => layout.v1.get(controller) ?? `/sys/fs/cgroup/${controller}`;
  const dir = (controller: string) => path.join(root(controller), rel);
  const cpuacct = dir('cpuacct');
  const cpu = emptyCpu();
  cpu.cpu_usage.total_usage = readNumber(path.join(cpuacct, 'cpuacct.usage')) ?? 0;
  // Per-CPU totals are exact nanoseconds; the user/system split exists only in ticks (cpuacct.stat).
  const percpu = readText(path.join(cpuacct, 'cpuacct.usage_percpu'));
  if (percpu !== undefined) cpu.cpu_usage.percpu_usage = percpu.trim().split(/\s+/).filter(Boolean).map(Number);
  const st = readKeyValues(path.join(cpuacct, 'cpuacct.stat')) ?? {};
  cpu.cpu_usage.usage_in_usermode = (st.user ?? 0) * NS_PER_TICK;
  cpu.cpu_usage.usage_in_kernelmode = (st.system ?? 0) * NS_PER_TICK;
  const throttle = readKeyValues(path.join(dir('cpu'), 'cpu.stat')) ?? {};
  cpu.throttling_data = { periods: throttle.nr_periods ?? 0, throttled_periods: throttle.nr_throttled ?? 0, throttled_time: throttle.throttled_time ?? 0 };

  const mem = dir('memory');
  const memory: MemoryStats = {};
  const usage = readNumber(path.join(mem, 'memory.usage_in_bytes'));
  if (usage !== undefined) {
    memory.usage = usage;
    memory.max_usage = readNumber(path.join(mem, 'memory.max_usage_in_bytes')) ?? 0;
    memory.stats = readKeyValues(path.join(mem, 'memory.stat')) ?? {};
    memory.failcnt = readNumber(path.join(mem, 'memory.failcnt')) ?? 0;
    memory.limit = memoryLimit(readNumber(path.join(mem, 'memory.limit_in_bytes')), machineMemory);
  }

  const pidsDir = dir('pids');
  const pids: Sample['pids'] = {};
  const current = readNumber(path.join(pidsDir, 'pids.current'));
  if (current !== undefined) pids.current = current;
  const limit = readNumber(path.join(pidsDir, 'pids.max'));
  if (limit !== undefined && limit !== Infinity) pids.limit = limit;

  const blkioDir = dir('blkio');
  const blkio = emptyBlkio();
  blkio.io_service_bytes_recursive = readBlkioV1(root('blkio'), blkioDir, 'io_service_bytes_recursive');
  blkio.io_serviced_recursive = readBlkioV1(root('blkio'), blkioDir, 'io_serviced_recursive');
  return { cpu, memory, pids, blkio };
}

function readV2(unified: string, rel: string, machineMemory: number): Sample {
  const dir = path.join(unified, rel);
  const cpu = emptyCpu();
  const st = readKeyValues(path.join(dir, 'cpu.stat')) ?? {};
  cpu.cpu_usage.total_usage = (st.usage_usec ?? 0) * 1000;
  cpu.cpu_usage.usage_in_usermode = (st.user_usec ?? 0) * 1000;
  cpu.cpu_usage.usage_in_kernelmode = (st.system_usec ?? 0) * 1000;
  cpu.throttling_data = { periods: st.nr_periods ?? 0, throttled_periods: st.nr_throttled ?? 0, throttled_time: (st.throttled_usec ?? 0) * 1000 };

  const memory: MemoryStats = {};
  const usage = readNumber(path.join(dir, 'memory.current'));
  if (usage !== undefined) {
    memory.usage = usage;
    memory.stats = readKeyValues(path.join(dir, 'memory.stat')) ?? {};
    memory.limit = memoryLimit(readNumber(path.join(dir, 'memory.max')), machineMemory);
  }
  const pids: Sample['pids'] = {};
  const current = readNumber(path.join(dir, 'pids.current'));
  if (current !== undefined) pids.current = current;
  const limit = readNumber(path.join(dir, 'pids.max'));
  if (limit !== undefined && limit !== Infinity) pids.limit = limit;

  const blkio = emptyBlkio();
  const io = readText(path.join(dir, 'io.stat'));
  if (io !== undefined) {
    const { bytes, ios } = parseIoStatV2(io);
    blkio.io_service_bytes_recursive = bytes;
    blkio.io_serviced_recursive = ios;
  }
  return { cpu, memory, pids, blkio };
}

/**
 * One stats sample of the container whose cgroup is cgroupsPath and whose init process is pid
 * (0: no network figures, e.g. --network host/none). `prev` (the previous sample) supplies
 * `preread` and `precpu_stats`, from which clients compute CPU percentages.
 */
export function readStats(cgroupsPath: string, pid: number, prev?: StatsResponse, opts: ReadStatsOptions = {}): StatsResponse {
  const layout = layoutOf(opts);
  const rel = relCgroup(cgroupsPath);
  const machineMemory = opts.machineMemory ?? os.totalmem();
  const procRoot = opts.procRoot ?? '/proc';
  const sample = layout.mode === 'v2' ? readV2(layout.unified ?? '/sys/fs/cgroup', rel, machineMemory) : readV1(layout, rel, machineMemory);

  const procStat = readText(path.join(procRoot, 'stat'));
  if (procStat !== undefined) {
    const { systemUsage, onlineCpus } = parseProcStat(procStat);
    sample.cpu.system_cpu_usage = systemUsage;
    sample.cpu.online_cpus = onlineCpus;
  }
  const out: StatsResponse = {
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.id !== undefined ? { id: opts.id } : {}),
    read: new Date().toISOString(),
    preread: prev && prev.read !== ZERO_TIME ? prev.read : ZERO_TIME,
    pids_stats: sample.pids,
    blkio_stats: sample.blkio,
    num_procs: 0,
    storage_stats: {},
    cpu_stats: sample.cpu,
    precpu_stats: prev ? prev.cpu_stats : emptyCpu(),
    memory_stats: sample.memory,
  };
  if (pid > 0) {
    const netdev = readText(path.join(procRoot, String(pid), 'net', 'dev'));
    if (netdev !== undefined) {
      const nets = parseNetDev(netdev);
      if (Object.keys(nets).length > 0) out.networks = nets;
    }
  }
  return out;
}
