// `berth stats` (a live table of resource usage with docker's calculations, or one sample with
// --no-stream), `berth update` (resource limits of existing containers) and `berth system prune`.
import { DaemonError, filtersParam, readJSONLines, UsageError } from '../client';
import { formatFlag, type CommandContext, type CommandSpec } from '../command';
import { bytesSize, FormatContext, humanSize, renderRows } from '../format';
import { parseRestart, ramInBytes } from '../runopts';
import { confirm } from './common';

const enc = encodeURIComponent;

/** The parts of a stats sample the table uses (docker's types.StatsJSON). */
export interface StatsSample {
  id?: string;
  name?: string;
  read?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] | null }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }> | null;
  blkio_stats?: { io_service_bytes_recursive?: { op: string; value: number }[] | null };
  pids_stats?: { current?: number };
}

export interface StatsFigures {
  cpuPercent: number;
  memory: number;
  memoryLimit: number;
  memoryPercent: number;
  netRx: number;
  netTx: number;
  blockRead: number;
  blockWrite: number;
  pids: number;
}

/** docker's calculateCPUPercentUnix, calculateMemUsageUnixNoCache, network and blkio sums. */
export function computeStats(s: StatsSample): StatsFigures {
  const cpu = s.cpu_stats ?? {};
  const pre = s.precpu_stats ?? {};
  const cpuDelta = (cpu.cpu_usage?.total_usage ?? 0) - (pre.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cpu.system_cpu_usage ?? 0) - (pre.system_cpu_usage ?? 0);
  const online = cpu.online_cpus || cpu.cpu_usage?.percpu_usage?.length || 0;
  const cpuPercent = systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * online * 100 : 0;
  const mem = s.memory_stats ?? {};
  const st = mem.stats ?? {};
  let memory = mem.usage ?? 0;
  // Page cache that can be dropped is not the container's: cgroup v1 total_inactive_file, v2 inactive_file.
  if (st.total_inactive_file !== undefined && st.total_inactive_file < memory) memory -= st.total_inactive_file;
  else if (st.inactive_file !== undefined && st.inactive_file < memory) memory -= st.inactive_file;
  const memoryLimit = mem.limit ?? 0;
  const memoryPercent = memoryLimit !== 0 ? (memory / memoryLimit) * 100 : 0;
  let netRx = 0;
  let netTx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    netRx += n.rx_bytes ?? 0;
    netTx += n.tx_bytes ?? 0;
  }
  let blockRead = 0;
  let blockWrite = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    const op = e.op.toLowerCase();
    if (op === 'read') blockRead += e.value;
    else if (op === 'write') blockWrite += e.value;
  }
  return { cpuPercent, memory, memoryLimit, memoryPercent, netRx, netTx, blockRead, blockWrite, pids: s.pids_stats?.current ?? 0 };
}

export class StatsRow extends FormatContext {
  constructor(readonly container: string, private readonly id: string, private readonly name: string, private readonly f: StatsFigures, private readonly trunc: boolean) {
    super();
  }
  headers(): Record<string, string> {
    return { Container: 'CONTAINER', ID: 'CONTAINER ID', Name: 'NAME', CPUPerc: 'CPU %', MemUsage: 'MEM USAGE / LIMIT', MemPerc: 'MEM %', NetIO: 'NET I/O', BlockIO: 'BLOCK I/O', PIDs: 'PIDS' };
  }
  get Container(): string {
    return this.container;
  }
  get ID(): string {
    return this.trunc ? this.id.slice(0, 12) : this.id;
  }
  get Name(): string {
    return this.name.replace(/^\//, '') || '--';
  }
  get CPUPerc(): string {
    return `${this.f.cpuPercent.toFixed(2)}%`;
  }
  get MemUsage(): string {
    return `${bytesSize(this.f.memory)} / ${bytesSize(this.f.memoryLimit)}`;
  }
  get MemPerc(): string {
    return `${this.f.memoryPercent.toFixed(2)}%`;
  }
  get NetIO(): string {
    return `${humanSize(this.f.netRx, 3)} / ${humanSize(this.f.netTx, 3)}`;
  }
  get BlockIO(): string {
    return `${humanSize(this.f.blockRead, 3)} / ${humanSize(this.f.blockWrite, 3)}`;
  }
  get PIDs(): string {
    return String(this.f.pids);
  }
}

const ZERO: StatsFigures = { cpuPercent: 0, memory: 0, memoryLimit: 0, memoryPercent: 0, netRx: 0, netTx: 0, blockRead: 0, blockWrite: 0, pids: 0 };

interface Target {
  /** What the user typed (or the ID when listing): the Container column. */
  given: string;
  id: string;
  name: string;
  running: boolean;
}

async function targets(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<Target[]> {
  if (names.length > 0) {
    const out: Target[] = [];
    for (const n of names) {
      const c = await ctx.client.json<{ Id: string; Name: string; State: { Running: boolean } }>('GET', `/containers/${enc(n)}/json`);
      out.push({ given: n, id: c.Id, name: c.Name, running: c.State.Running });
    }
    return out;
  }
  const list = await ctx.client.json<{ Id: string; Names: string[]; State: string }[]>('GET', '/containers/json', { query: { all: v.all ? '1' : undefined } });
  return (list ?? []).map((c) => ({ given: c.Id.slice(0, 12), id: c.Id, name: c.Names?.[0] ?? '', running: c.State === 'running' }));
}

function statsFormat(v: Record<string, unknown>): string {
  const f = v.format as string | undefined;
  return !f || f === 'table' ? 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}' : f;
}

function render(v: Record<string, unknown>, rows: StatsRow[]): string {
  return renderRows(statsFormat(v), rows, () => new StatsRow('', '', '', ZERO, true).headers());
}

async function oneSample(ctx: CommandContext, t: Target): Promise<StatsFigures> {
  if (!t.running) return ZERO;
  const s = await ctx.client.json<StatsSample>('GET', `/containers/${enc(t.id)}/stats`, { query: { stream: '0' } });
  return computeStats(s ?? {});
}

async function statsCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  const trunc = !v['no-trunc'];
  if (v['no-stream']) {
    const ts = await targets(ctx, v, names);
    const figures = await Promise.all(ts.map((t) => oneSample(ctx, t)));
    ctx.out(render(v, ts.map((t, i) => new StatsRow(t.given, t.id, t.name, figures[i], trunc))));
    return 0;
  }
  return liveStats(ctx, v, names, trunc);
}

/**
 * The live view: one streaming stats request per container, the table redrawn every half
 * second (cleared in place on a terminal). Without names the container list is refreshed too.
 */
async function liveStats(ctx: CommandContext, v: Record<string, unknown>, names: string[], trunc: boolean): Promise<number> {
  const latest = new Map<string, { t: Target; f: StatsFigures }>();
  const open = new Map<string, () => void>();
  const tty = Boolean(ctx.io.stdout.isTTY);
  let stopped = false;
  const watch = (t: Target): void => {
    if (open.has(t.id)) return;
    latest.set(t.id, { t, f: ZERO });
    if (!t.running) {
      open.set(t.id, () => {});
      return;
    }
    let cancel = (): void => {};
    open.set(t.id, () => cancel());
    ctx.client.request('GET', `/containers/${enc(t.id)}/stats`, { query: { stream: '1' } }).then(
      (res) => {
        cancel = () => res.destroy();
        if (stopped) res.destroy();
        readJSONLines(res, (m) => {
          const entry = latest.get(t.id);
          if (entry) entry.f = computeStats(m as StatsSample);
        }).catch(() => {}).finally(() => {
          // A container that stopped drops out of a list-driven view.
          if (names.length === 0 && !v.all) latest.delete(t.id);
          open.delete(t.id);
        });
      },
      () => {
        if (names.length === 0) latest.delete(t.id);
        open.delete(t.id);
      },
    );
  };
  for (const t of await targets(ctx, v, names)) watch(t);
  const onSignal = (): void => {
    stopped = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let tick = 0;
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 500));
      if (stopped) break;
      if (names.length === 0 && ++tick % 4 === 0) {
        for (const t of await targets(ctx, v, names).catch(() => [] as Target[])) watch(t);
      }
      const rows = [...latest.values()].map(({ t, f }) => new StatsRow(t.given, t.id, t.name, f, trunc));
      ctx.out((tty ? '\x1b[2J\x1b[H' : '') + render(v, rows));
      if (names.length > 0 && open.size === 0) break;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const cancel of open.values()) cancel();
  }
  return 0;
}

const UPDATE_FLAGS = ['blkio-weight', 'cpu-period', 'cpu-quota', 'cpu-rt-period', 'cpu-rt-runtime', 'cpu-shares', 'cpus', 'cpuset-cpus', 'cpuset-mems', 'memory', 'memory-reservation', 'memory-swap', 'pids-limit', 'restart'];

/** The POST /containers/{id}/update body from the flags that were given. */
export function updateBody(v: Record<string, unknown>, given: Set<string>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const int = (flag: string, key: string): void => {
    if (!given.has(flag)) return;
    const s = String(v[flag]);
    if (!/^-?\d+$/.test(s)) throw new UsageError(`invalid argument "${s}" for "--${flag}" flag: strconv.ParseInt: parsing "${s}": invalid syntax`);
    body[key] = Number(s);
  };
  const bytes = (flag: string, key: string, allowMinusOne = false): void => {
    if (!given.has(flag)) return;
    const s = String(v[flag]);
    body[key] = allowMinusOne && s === '-1' ? -1 : ramInBytes(s);
  };
  int('blkio-weight', 'BlkioWeight');
  int('cpu-period', 'CpuPeriod');
  int('cpu-quota', 'CpuQuota');
  int('cpu-rt-period', 'CpuRealtimePeriod');
  int('cpu-rt-runtime', 'CpuRealtimeRuntime');
  int('cpu-shares', 'CpuShares');
  int('pids-limit', 'PidsLimit');
  bytes('memory', 'Memory');
  bytes('memory-reservation', 'MemoryReservation');
  bytes('memory-swap', 'MemorySwap', true);
  if (given.has('cpus')) {
    const n = Number(v.cpus);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`invalid argument "${String(v.cpus)}" for "--cpus" flag: failed to parse ${String(v.cpus)} as a rational number`);
    body.NanoCpus = Math.round(n * 1e9);
  }
  if (given.has('cpuset-cpus')) body.CpusetCpus = v['cpuset-cpus'];
  if (given.has('cpuset-mems')) body.CpusetMems = v['cpuset-mems'];
  if (given.has('restart')) body.RestartPolicy = parseRestart(String(v.restart));
  return body;
}

async function updateCmd(ctx: CommandContext, v: Record<string, unknown>, given: Set<string>, names: string[]): Promise<number> {
  if (!UPDATE_FLAGS.some((f) => given.has(f))) throw new UsageError('you must provide one or more flags when using this command');
  const body = updateBody(v, given);
  const errors: string[] = [];
  for (const n of names) {
    try {
      const r = await ctx.client.json<{ Warnings?: string[] | null }>('POST', `/containers/${enc(n)}/update`, { body });
      for (const w of r?.Warnings ?? []) ctx.err(`${w}\n`);
      ctx.out(`${n}\n`);
    } catch (e) {
      if (!(e instanceof DaemonError)) throw e;
      errors.push(`Error response from daemon: ${e.message}`);
    }
  }
  if (errors.length) {
    ctx.err(`${errors.join('\n')}\n`);
    return 1;
  }
  return 0;
}

async function systemPruneCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  const items = ['all stopped containers', 'all networks not used by at least one container'];
  if (v.volumes) items.push('all anonymous volumes not used by at least one container');
  items.push(v.all ? 'all images without at least one container associated to them' : 'all dangling images');
  items.push(v.all ? 'all build cache' : 'unused build cache');
  const warning = `WARNING! This will remove:\n${items.map((i) => `  - ${i}\n`).join('')}`;
  if (!v.force && !(await confirm(ctx, warning))) return 0;
  const filters = filtersParam(v.filter as string[]);
  let reclaimed = 0;
  let out = '';
  const c = await ctx.client.json<{ ContainersDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/containers/prune', { query: { filters } });
  if (c.ContainersDeleted?.length) out += `Deleted Containers:\n${c.ContainersDeleted.map((x) => `${x}\n`).join('')}\n`;
  reclaimed += c.SpaceReclaimed ?? 0;
  const n = await ctx.client.json<{ NetworksDeleted?: string[] | null }>('POST', '/networks/prune', { query: { filters } });
  if (n.NetworksDeleted?.length) out += `Deleted Networks:\n${n.NetworksDeleted.map((x) => `${x}\n`).join('')}\n`;
  if (v.volumes) {
    const vol = await ctx.client.json<{ VolumesDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/volumes/prune', { query: { filters } });
    if (vol.VolumesDeleted?.length) out += `Deleted Volumes:\n${vol.VolumesDeleted.map((x) => `${x}\n`).join('')}\n`;
    reclaimed += vol.SpaceReclaimed ?? 0;
  }
  const imgFilters = filtersParam([...(v.filter as string[]), `dangling=${v.all ? 'false' : 'true'}`]);
  const img = await ctx.client.json<{ ImagesDeleted?: { Untagged?: string; Deleted?: string }[] | null; SpaceReclaimed?: number }>('POST', '/images/prune', { query: { filters: imgFilters } });
  if (img.ImagesDeleted?.length) {
    out += `Deleted Images:\n${img.ImagesDeleted.map((d) => (d.Untagged ? `untagged: ${d.Untagged}\n` : `deleted: ${d.Deleted}\n`)).join('')}\n`;
  }
  reclaimed += img.SpaceReclaimed ?? 0;
  try {
    const b = await ctx.client.json<{ SpaceReclaimed?: number }>('POST', '/build/prune', { query: { all: v.all ? '1' : undefined } });
    reclaimed += b?.SpaceReclaimed ?? 0;
  } catch (e) {
    if (!(e instanceof DaemonError) || e.status !== 404) throw e;
  }
  ctx.out(`${out}Total reclaimed space: ${humanSize(reclaimed, 4)}\n`);
  return 0;
}

export function statsCommands(): CommandSpec[] {
  return [
    {
      paths: [['container', 'stats'], ['stats']],
      usage: '[OPTIONS] [CONTAINER...]',
      description: 'Display a live stream of container(s) resource usage statistics',
      flags: [
        { name: 'all', short: 'a', type: 'bool', description: 'Show all containers (default shows just running)' },
        formatFlag(true, false),
        { name: 'no-stream', type: 'bool', description: 'Disable streaming stats and only pull the first result' },
        { name: 'no-trunc', type: 'bool', description: "Do not truncate output" },
      ],
      run: (ctx, f) => statsCmd(ctx, f.values, f.args),
    },
    {
      paths: [['container', 'update'], ['update']],
      usage: '[OPTIONS] CONTAINER [CONTAINER...]',
      description: 'Update configuration of one or more containers',
      flags: [
        { name: 'blkio-weight', type: 'string', typeName: 'uint16', description: 'Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)' },
        { name: 'cpu-period', type: 'string', typeName: 'int', description: 'Limit CPU CFS (Completely Fair Scheduler) period' },
        { name: 'cpu-quota', type: 'string', typeName: 'int', description: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
        { name: 'cpu-rt-period', type: 'string', typeName: 'int', description: 'Limit the CPU real-time period in microseconds' },
        { name: 'cpu-rt-runtime', type: 'string', typeName: 'int', description: 'Limit the CPU real-time runtime in microseconds' },
        { name: 'cpu-shares', short: 'c', type: 'string', typeName: 'int', description: 'CPU shares (relative weight)' },
        { name: 'cpus', type: 'string', typeName: 'decimal', description: 'Number of CPUs' },
        { name: 'cpuset-cpus', type: 'string', description: 'CPUs in which to allow execution (0-3, 0,1)' },
        { name: 'cpuset-mems', type: 'string', description: 'MEMs in which to allow execution (0-3, 0,1)' },
        { name: 'memory', short: 'm', type: 'string', typeName: 'bytes', description: 'Memory limit' },
        { name: 'memory-reservation', type: 'string', typeName: 'bytes', description: 'Memory soft limit' },
        { name: 'memory-swap', type: 'string', typeName: 'bytes', description: "Swap limit equal to memory plus swap: -1 to enable unlimited swap" },
        { name: 'pids-limit', type: 'string', typeName: 'int', description: 'Tune container pids limit (set -1 for unlimited)' },
        { name: 'restart', type: 'string', description: 'Restart policy to apply when a container exits' },
      ],
      args: { min: 1 },
      run: (ctx, f) => updateCmd(ctx, f.values, f.given, f.args),
    },
    {
      paths: [['system', 'prune']],
      usage: '[OPTIONS]',
      description: 'Remove unused data',
      flags: [
        { name: 'all', short: 'a', type: 'bool', description: 'Remove all unused images not just dangling ones' },
        { name: 'filter', type: 'list', typeName: 'filter', description: 'Provide filter values (e.g. "label=<key>=<value>")' },
        { name: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
        { name: 'volumes', type: 'bool', description: 'Prune anonymous volumes' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => systemPruneCmd(ctx, f.values),
    },
  ];
}
