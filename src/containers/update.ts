// docker update: new resource limits and restart policy for an existing container. The request
// is merged into the HostConfig with dockerd's rules (a zero value leaves a field as it is), and
// for a running container the new limits are written straight into its cgroups, with docker's
// warnings where the kernel lacks a controller, rather than a spawn of the runtime.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { conflict, invalidParameter } from '../common/errors';
import { currentCgroupLayout, type CgroupLayout } from '../runtime/cgroups';
import type { OciResources } from '../runtime/spec';
import { resourcesOf, validateResources } from './options';
import type { HostConfig, RestartPolicy } from './store';

/** The body of POST /containers/{id}/update (docker's UpdateConfig: Resources + RestartPolicy). */
export interface UpdateRequest {
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  CpuShares?: number;
  NanoCpus?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  PidsLimit?: number | null;
  BlkioWeight?: number;
  RestartPolicy?: Partial<RestartPolicy>;
  [k: string]: unknown;
}

const NUMBER_FIELDS = ['Memory', 'MemorySwap', 'MemoryReservation', 'CpuShares', 'NanoCpus', 'CpuQuota', 'CpuPeriod', 'BlkioWeight'] as const;

function n(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * The HostConfig after an update, validated as at create; the current one is not changed. The
 * restart policy is returned as asked (the caller validates it with validateRestartPolicy).
 */
export function mergeUpdate(current: HostConfig, req: UpdateRequest): HostConfig {
  if (!req || typeof req !== 'object') throw invalidParameter('update config cannot be empty');
  for (const k of NUMBER_FIELDS) {
    if (req[k] !== undefined && req[k] !== null && typeof req[k] !== 'number') throw invalidParameter(`invalid value for ${k}: must be a number`);
  }
  const next: HostConfig = { ...current };
  const cur = (k: string): number => n(current[k]);
  const nano = n(req.NanoCpus);
  if (nano > 0 && cur('CpuPeriod') > 0 && n(req.CpuPeriod) === 0) throw conflict('Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set');
  if (nano > 0 && cur('CpuQuota') > 0 && n(req.CpuQuota) === 0) throw conflict('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
  if ((n(req.CpuPeriod) > 0 || n(req.CpuQuota) > 0) && cur('NanoCpus') > 0 && nano === 0) {
    throw conflict(`Conflicting options: CPU ${n(req.CpuPeriod) > 0 ? 'Period' : 'Quota'} cannot be updated as NanoCPUs has already been set`);
  }
  for (const k of ['CpuShares', 'NanoCpus', 'CpuPeriod', 'CpuQuota', 'BlkioWeight', 'MemoryReservation'] as const) {
    if (n(req[k]) !== 0) next[k] = req[k];
  }
  for (const k of ['CpusetCpus', 'CpusetMems'] as const) {
    if (typeof req[k] === 'string' && req[k] !== '') next[k] = req[k];
  }
  const memory = n(req.Memory);
  const swap = n(req.MemorySwap);
  if (memory !== 0) {
    // dockerd: a new limit above the swap limit already set needs a new swap limit with it.
    if (swap === 0 && cur('MemorySwap') > 0 && memory > cur('MemorySwap')) {
      throw conflict('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
    }
    next.Memory = memory;
  }
  if (swap !== 0) next.MemorySwap = swap;
  // PidsLimit: null or absent leaves it; 0 and -1 mean unlimited.
  if (typeof req.PidsLimit === 'number') next.PidsLimit = req.PidsLimit <= 0 ? 0 : req.PidsLimit;
  if (req.RestartPolicy && req.RestartPolicy.Name) {
    if (current.AutoRemove && req.RestartPolicy.Name !== 'no') throw conflict('Restart policy cannot be updated because AutoRemove is enabled for the container');
    next.RestartPolicy = { Name: req.RestartPolicy.Name, MaximumRetryCount: req.RestartPolicy.MaximumRetryCount ?? 0 };
  }
  validateResources(next);
  return next;
}

/** A cgroup file write that failed because the kernel lacks it becomes a warning; other errors are thrown. */
interface CgroupWriter {
  write(controller: string, file: string, value: string | number): boolean;
  has(controller: string): boolean;
}

function cgroupWriter(cgroupsPath: string, layout: CgroupLayout): CgroupWriter {
  const rel = cgroupsPath.replace(/^\/+/, '');
  if (rel === '' || rel.split('/').includes('..')) throw new Error(`invalid cgroup path ${JSON.stringify(cgroupsPath)}`);
  const dirOf = (controller: string): string | undefined => {
    if (layout.mode === 'v2') return layout.unified && path.join(layout.unified, rel);
    const mnt = layout.v1.get(controller);
    return mnt && path.join(mnt, rel);
  };
  return {
    has: (controller) => {
      const d = dirOf(controller);
      return d !== undefined && fs.existsSync(d);
    },
    write: (controller, file, value) => {
      const d = dirOf(controller);
      if (!d) return false;
      const p = path.join(d, file);
      try {
        fs.writeFileSync(p, String(value));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
    },
  };
}

function changed<T>(a: T, b: T): boolean {
  return JSON.stringify(a ?? null) !== JSON.stringify(b ?? null);
}

/**
 * Writes the limits that differ between before and after into a running container's cgroups
 * (v1 or v2). Returns docker's warnings for limits the kernel cannot apply.
 */
export function applyLiveResources(cgroupsPath: string, before: HostConfig, after: HostConfig, layout: CgroupLayout = currentCgroupLayout()): string[] {
  const warnings: string[] = [];
  const w = cgroupWriter(cgroupsPath, layout);
  const was = resourcesOf(before);
  const now = resourcesOf(after);
  try {
    if (layout.mode === 'v2') writeV2(w, was, now, warnings);
    else writeV1(w, was, now, warnings);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EINVAL' || e.code === 'EBUSY') throw invalidParameter(`Cannot update container: ${e.message}`);
    throw err;
  }
  return warnings;
}

type Res = Omit<OciResources, 'devices'>;

function writeV1(w: CgroupWriter, was: Res, now: Res, warnings: string[]): void {
  if (changed(was.memory, now.memory)) {
    if (!w.has('memory')) warnings.push('Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.');
    else {
      const limit = now.memory?.limit ?? -1;
      const swap = now.memory?.swap ?? -1;
      // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: raise swap first when
      // the new limit is above the old swap limit, lower the limit first otherwise.
      const writeSwap = (): void => {
        if (!w.write('memory', 'memory.memsw.limit_in_bytes', swap)) warnings.push('Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.');
      };
      try {
        w.write('memory', 'memory.limit_in_bytes', limit);
        writeSwap();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
        writeSwap();
        w.write('memory', 'memory.limit_in_bytes', limit);
      }
      if (changed(was.memory?.reservation, now.memory?.reservation)) w.write('memory', 'memory.soft_limit_in_bytes', now.memory?.reservation ?? -1);
    }
  }
  if (changed(was.cpu?.shares, now.cpu?.shares) || changed(was.cpu?.quota, now.cpu?.quota) || changed(was.cpu?.period, now.cpu?.period)) {
    if (!w.has('cpu')) warnings.push('Your kernel does not support CPU cfs quota or the cgroup is not mounted. Quota discarded.');
    else {
      if (changed(was.cpu?.shares, now.cpu?.shares)) w.write('cpu', 'cpu.shares', now.cpu?.shares ?? 1024);
      // Quota first to "unlimited": a period shorter than the old quota is then always accepted.
      w.write('cpu', 'cpu.cfs_quota_us', -1);
      w.write('cpu', 'cpu.cfs_period_us', now.cpu?.period ?? 100_000);
      w.write('cpu', 'cpu.cfs_quota_us', now.cpu?.quota ?? -1);
    }
  }
  for (const [key, file] of [['cpus', 'cpuset.cpus'], ['mems', 'cpuset.mems']] as const) {
    if (now.cpu?.[key] !== undefined && changed(was.cpu?.[key], now.cpu[key])) {
      if (!w.write('cpuset', file, now.cpu[key]!)) warnings.push('Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.');
    }
  }
  if (changed(was.pids, now.pids)) {
    const limit = now.pids?.limit;
    if (!w.write('pids', 'pids.max', limit === undefined || limit <= 0 ? 'max' : limit)) warnings.push("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.");
  }
  if (changed(was.blockIO?.weight, now.blockIO?.weight) && now.blockIO?.weight !== undefined) {
    // As at create: only CFQ's blkio.weight, the file the runtime writes at the next start.
    if (!w.write('blkio', 'blkio.weight', now.blockIO.weight)) {
      warnings.push('Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.');
    }
  }
}

function writeV2(w: CgroupWriter, was: Res, now: Res, warnings: string[]): void {
  if (changed(was.memory, now.memory)) {
    const limit = now.memory?.limit;
    const swap = now.memory?.swap;
    w.write('memory', 'memory.max', limit && limit > 0 ? limit : 'max');
    // cgroup v2 limits swap alone; docker's MemorySwap is memory + swap.
    if (!w.write('memory', 'memory.swap.max', swap === undefined || swap < 0 || !limit ? 'max' : Math.max(0, swap - limit))) {
      warnings.push('Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.');
    }
    w.write('memory', 'memory.low', now.memory?.reservation ?? 0);
  }
  if (changed(was.cpu?.shares, now.cpu?.shares) && now.cpu?.shares) {
    // The OCI conversion of shares (2-262144) to weight (1-10000).
    w.write('cpu', 'cpu.weight', Math.round(1 + ((now.cpu.shares - 2) * 9999) / 262142));
  }
  if (changed(was.cpu?.quota, now.cpu?.quota) || changed(was.cpu?.period, now.cpu?.period)) {
    w.write('cpu', 'cpu.max', `${now.cpu?.quota && now.cpu.quota > 0 ? now.cpu.quota : 'max'} ${now.cpu?.period ?? 100_000}`);
  }
  if (now.cpu?.cpus !== undefined && changed(was.cpu?.cpus, now.cpu.cpus)) w.write('cpuset', 'cpuset.cpus', now.cpu.cpus);
  if (now.cpu?.mems !== undefined && changed(was.cpu?.mems, now.cpu.mems)) w.write('cpuset', 'cpuset.mems', now.cpu.mems);
  if (changed(was.pids, now.pids)) {
    const limit = now.pids?.limit;
    w.write('pids', 'pids.max', limit === undefined || limit <= 0 ? 'max' : limit);
  }
  if (changed(was.blockIO?.weight, now.blockIO?.weight) && now.blockIO?.weight !== undefined) {
    if (!w.write('io', 'io.weight', `default ${now.blockIO.weight}`) && !w.write('io', 'io.bfq.weight', `default ${now.blockIO.weight}`)) {
      warnings.push('Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.');
    }
  }
}
