// HostConfig options beyond the plain resource numbers: --ulimit, --device, --sysctl,
// --group-add, --cgroup-parent and the per-device block I/O throttles. Each is checked at create
// (dockerd's wording, 400 for bad input) and turned into its part of the OCI spec at start.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidParameter } from '../common/errors';
import { currentCgroupLayout, type CgroupLayout } from '../runtime/cgroups';
import { deviceFromPath, splitDev } from '../runtime/devices';
import type { OciDevice, OciResources, Rlimit } from '../runtime/spec';
import { readFileInRoot } from './rootfs';
import { resourcesOf } from './options';
import type { HostConfig } from './store';

export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer?: string;
  CgroupPermissions?: string;
}

interface ThrottleDevice {
  Path: string;
  Rate: number;
}

interface WeightDevice {
  Path: string;
  Weight: number;
}

const ULIMIT_NAMES = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack', 'as'];

const THROTTLES = [
  ['BlkioDeviceReadBps', 'throttleReadBpsDevice'],
  ['BlkioDeviceWriteBps', 'throttleWriteBpsDevice'],
  ['BlkioDeviceReadIOps', 'throttleReadIOPSDevice'],
  ['BlkioDeviceWriteIOps', 'throttleWriteIOPSDevice'],
] as const;

function list<T>(hc: Partial<HostConfig>, key: string): T[] {
  const v = hc[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidParameter(`${key} must be a list`);
  return v as T[];
}

/**
 * Whether a sysctl may be set in a container: only those the kernel keeps per namespace (IPC and
 * network), and only when the container has that namespace of its own. Returns the refusal.
 */
export function sysctlRefusal(name: string, hc: Partial<HostConfig>): string | undefined {
  const ipc = name === 'kernel.sem' || /^kernel\.(shm|msg)/.test(name) || name.startsWith('fs.mqueue.');
  if (ipc) {
    const mode = typeof hc.IpcMode === 'string' ? hc.IpcMode : '';
    if (mode === 'host' || mode.startsWith('container:')) return `sysctl "${name}" is not allowed with IpcMode ${mode}: it would change the ${mode === 'host' ? "host's" : "other container's"} IPC namespace`;
    return undefined;
  }
  if (name.startsWith('net.')) {
    const mode = typeof hc.NetworkMode === 'string' ? hc.NetworkMode : '';
    if (mode === 'host') return `sysctl "${name}" not allowed in host network namespace`;
    if (mode.startsWith('container:')) return `sysctl "${name}" is not allowed with NetworkMode ${mode}: the network namespace is another container's`;
    return undefined;
  }
  return `sysctl "${name}" is not allowed`;
}

/** A host device's major:minor for the blkio device lists; 400 when it is not a block device. */
function blockDevice(p: string, option: string): { major: number; minor: number } {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(p, { bigint: true });
  } catch (err) {
    throw invalidParameter(`invalid ${option} "${p}": ${(err as Error).message}`);
  }
  if (!st.isBlockDevice()) throw invalidParameter(`invalid ${option} "${p}": not a block device`);
  return splitDev(st.rdev);
}

/**
 * Checks the options of a create request; returns docker's warnings (a ulimit clamped to the
 * daemon's own limit).
 */
export function validateLimits(hc: Partial<HostConfig>, hostNofile: { soft: number; hard: number }): string[] {
  const warnings: string[] = [];
  for (const u of list<Ulimit>(hc, 'Ulimits')) {
    if (!u || typeof u.Name !== 'string' || !ULIMIT_NAMES.includes(u.Name)) throw invalidParameter(`invalid ulimit type: ${u?.Name}`);
    if (!Number.isInteger(u.Soft) || !Number.isInteger(u.Hard) || u.Soft < 0 || u.Hard < 0) throw invalidParameter(`invalid ulimit argument: ${u.Name}=${u.Soft}:${u.Hard}`);
    if (u.Soft > u.Hard) throw invalidParameter(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
    if (u.Name === 'nofile' && u.Hard > hostNofile.hard) {
      // The runtime runs with berthd's limits and cannot raise a hard limit above them.
      warnings.push(`Your ulimit nofile=${u.Soft}:${u.Hard} is above the daemon's own hard limit ${hostNofile.hard}; the container gets nofile=${Math.min(u.Soft, hostNofile.hard)}:${hostNofile.hard}`);
    }
  }
  for (const d of list<DeviceMapping>(hc, 'Devices')) {
    if (!d || typeof d.PathOnHost !== 'string' || !d.PathOnHost.startsWith('/')) throw invalidParameter(`invalid device mapping: ${JSON.stringify(d)}`);
    const perms = d.CgroupPermissions ?? 'rwm';
    if (perms === '' || !/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length) throw invalidParameter(`invalid device mode: ${perms}`);
    if (d.PathInContainer && !d.PathInContainer.startsWith('/')) throw invalidParameter(`invalid device mapping: ${d.PathInContainer} is not an absolute path`);
    try {
      deviceFromPath(d.PathOnHost, d.PathInContainer || d.PathOnHost);
    } catch (err) {
      throw invalidParameter(`error gathering device information while adding custom device "${d.PathOnHost}": ${(err as Error).message.replace(/^ENOENT: /, '')}`);
    }
  }
  const sysctls = hc.Sysctls;
  if (sysctls !== undefined && sysctls !== null) {
    if (typeof sysctls !== 'object' || Array.isArray(sysctls)) throw invalidParameter('Sysctls must be an object');
    for (const [k, v] of Object.entries(sysctls as Record<string, unknown>)) {
      if (typeof v !== 'string') throw invalidParameter(`invalid value for sysctl "${k}": must be a string`);
      const refusal = sysctlRefusal(k, hc);
      if (refusal) throw invalidParameter(refusal);
    }
  }
  for (const g of list<string>(hc, 'GroupAdd')) {
    if (typeof g !== 'string' || g === '' || g.includes(':')) throw invalidParameter(`invalid group: ${JSON.stringify(g)}`);
  }
  const parent = hc.CgroupParent;
  if (parent !== undefined && parent !== null && parent !== '') {
    if (typeof parent !== 'string' || parent.split('/').includes('..') || /[\0\n]/.test(parent)) throw invalidParameter(`invalid cgroup parent: ${JSON.stringify(parent)}`);
  }
  for (const [key] of THROTTLES) {
    for (const t of list<ThrottleDevice>(hc, key)) {
      if (!t || typeof t.Path !== 'string' || !Number.isInteger(t.Rate) || t.Rate < 0) throw invalidParameter(`invalid ${key} entry: ${JSON.stringify(t)}`);
      blockDevice(t.Path, key);
    }
  }
  for (const wd of list<WeightDevice>(hc, 'BlkioWeightDevice')) {
    if (!wd || typeof wd.Path !== 'string' || !Number.isInteger(wd.Weight) || wd.Weight < 10 || wd.Weight > 1000) throw invalidParameter(`invalid BlkioWeightDevice entry: ${JSON.stringify(wd)}: weight must be between 10 and 1000`);
    blockDevice(wd.Path, 'BlkioWeightDevice');
  }
  const weight = hc.BlkioWeight;
  if (typeof weight === 'number' && weight !== 0 && (weight < 10 || weight > 1000)) throw invalidParameter('Range of blkio weight is from 10 to 1000');
  return warnings;
}

/** --ulimit as the spec generator takes them (it clamps nofile to the daemon's hard limit). */
export function rlimitsOf(hc: Partial<HostConfig>): Rlimit[] {
  return list<Ulimit>(hc, 'Ulimits').map((u) => ({ name: u.Name, soft: u.Soft, hard: u.Hard }));
}

/** --device entries with their cgroup permissions, read from the host at start. */
export function devicesOf(hc: Partial<HostConfig>): { device: OciDevice; access: string }[] {
  return list<DeviceMapping>(hc, 'Devices').map((d) => ({ device: deviceFromPath(d.PathOnHost, d.PathInContainer || d.PathOnHost), access: d.CgroupPermissions || 'rwm' }));
}

/** The block I/O parts beyond the weight: per-device weights and throttles. */
export function blockIODevicesOf(hc: Partial<HostConfig>): NonNullable<OciResources['blockIO']> {
  const out: NonNullable<OciResources['blockIO']> = {};
  for (const [key, field] of THROTTLES) {
    const entries = list<ThrottleDevice>(hc, key).map((t) => ({ ...blockDevice(t.Path, key), rate: t.Rate }));
    if (entries.length > 0) out[field] = entries;
  }
  const weights = list<WeightDevice>(hc, 'BlkioWeightDevice').map((w) => ({ ...blockDevice(w.Path, 'BlkioWeightDevice'), weight: w.Weight }));
  if (weights.length > 0) out.weightDevice = weights;
  return out;
}

/** Sysctls as given (validated at create). */
export function sysctlsOf(hc: Partial<HostConfig>): Record<string, string> | undefined {
  const s = hc.Sysctls as Record<string, string> | null | undefined;
  return s && Object.keys(s).length > 0 ? { ...s } : undefined;
}

/**
 * --group-add: group names looked up in the container's /etc/group (read safely inside its root),
 * numbers taken as they are. An unknown name fails the start, as in docker.
 */
export function groupAddGids(rootfs: string, hc: Partial<HostConfig>): number[] {
  const wanted = list<string>(hc, 'GroupAdd');
  if (wanted.length === 0) return [];
  const groups = (readFileInRoot(rootfs, '/etc/group') ?? '').split('\n').map((l) => l.split(':'));
  return wanted.map((g) => {
    if (/^\d+$/.test(g)) return Number(g);
    const hit = groups.find((f) => f[0] === g && /^\d+$/.test(f[2] ?? ''));
    if (!hit) throw invalidParameter(`Unable to find group ${g}: no matching entries in group file`);
    return Number(hit[2]);
  });
}

/** The container's cgroup parent: its own --cgroup-parent, else the daemon's, else "berth". */
export function cgroupParentOf(hc: Partial<HostConfig> | undefined, daemonParent: string): string {
  const own = typeof hc?.CgroupParent === 'string' ? hc.CgroupParent : '';
  return (own || daemonParent || 'berth').replace(/^\/+|\/+$/g, '');
}

/** The OCI resources of a HostConfig: the plain limits plus the per-device block I/O settings. */
export function specResourcesOf(hc: Partial<HostConfig>): Omit<OciResources, 'devices'> {
  const res = resourcesOf(hc);
  const bio = { ...(res.blockIO ?? {}), ...blockIODevicesOf(hc) };
  if (Object.keys(bio).length > 0) res.blockIO = bio;
  return res;
}

/** Which cgroup features the kernel offers; each is a file in the root of its hierarchy. */
function kernelHas(layout: CgroupLayout, controller: string, file: string): boolean {
  if (layout.mode === 'v2') {
    const root = layout.unified ?? '/sys/fs/cgroup';
    try {
      return fs.readFileSync(path.join(root, 'cgroup.controllers'), 'utf8').split(/\s+/).includes(controller);
    } catch {
      return false;
    }
  }
  const mnt = layout.v1.get(controller);
  return mnt !== undefined && (file === '' || fs.existsSync(path.join(mnt, file)));
}

/**
 * dockerd's answer to limits the kernel cannot apply: a warning, and the limit dropped from the
 * stored HostConfig (so that the runtime is not asked for it and the container still starts).
 */
export function dropUnsupported(hc: Partial<HostConfig>, layout: CgroupLayout = currentCgroupLayout()): string[] {
  const warnings: string[] = [];
  const v2 = layout.mode === 'v2';
  const set = (k: string): boolean => {
    const v = hc[k];
    return (typeof v === 'number' && v !== 0) || (typeof v === 'string' && v !== '') || (Array.isArray(v) && v.length > 0) || v === true;
  };
  const rules: [string[], string, string, string][] = [
    [['Memory', 'MemoryReservation', 'MemorySwap', 'MemorySwappiness'], 'memory', 'memory.limit_in_bytes', 'Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.'],
    [['MemorySwap'], 'memory', v2 ? 'memory.swap.max' : 'memory.memsw.limit_in_bytes', 'Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.'],
    [['OomKillDisable'], 'memory', 'memory.oom_control', 'Your kernel does not support OomKillDisable. OomKillDisable discarded.'],
    [['CpuShares'], 'cpu', 'cpu.shares', 'Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.'],
    [['NanoCpus', 'CpuQuota', 'CpuPeriod'], 'cpu', 'cpu.cfs_quota_us', 'Your kernel does not support CPU cfs quota or the cgroup is not mounted. Quota discarded.'],
    [['CpusetCpus', 'CpusetMems'], 'cpuset', 'cpuset.cpus', 'Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.'],
    // The root of the pids hierarchy has no pids.max: the mounted controller is what counts.
    [['PidsLimit'], 'pids', '', 'Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.'],
    [['BlkioDeviceReadBps'], v2 ? 'io' : 'blkio', 'blkio.throttle.read_bps_device', 'Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.'],
    [['BlkioDeviceWriteBps'], v2 ? 'io' : 'blkio', 'blkio.throttle.write_bps_device', 'Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.'],
    [['BlkioDeviceReadIOps'], v2 ? 'io' : 'blkio', 'blkio.throttle.read_iops_device', 'Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded.'],
    [['BlkioDeviceWriteIOps'], v2 ? 'io' : 'blkio', 'blkio.throttle.write_iops_device', 'Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded.'],
  ];
  if (v2) {
    // On cgroup v2 the kernel never has the OOM killer switch.
    if (hc.OomKillDisable === true) {
      warnings.push('Your kernel does not support OomKillDisable. OomKillDisable discarded.');
      hc.OomKillDisable = false;
    }
  }
  for (const [keys, controller, file, warning] of rules) {
    const given = keys.filter(set);
    if (given.length === 0 || (v2 && keys[0] === 'OomKillDisable')) continue;
    if (kernelHas(layout, controller, v2 ? '' : file)) continue;
    warnings.push(warning);
    for (const k of given) hc[k] = typeof hc[k] === 'number' ? 0 : typeof hc[k] === 'string' ? '' : Array.isArray(hc[k]) ? [] : false;
  }
  // Block I/O weights.
  // Only CFQ's blkio.weight counts on v1: the runtimes (crun, runc) write that file and fail the
  // start when it is missing, even where BFQ offers blkio.bfq.weight.
  const weightFiles = v2 ? ['io.weight', 'io.bfq.weight'] : ['blkio.weight'];
  const weightRoot = v2 ? layout.unified : layout.v1.get('blkio');
  const hasWeight = weightRoot !== undefined && (v2 ? kernelHas(layout, 'io', '') : weightFiles.some((f) => fs.existsSync(path.join(weightRoot, f))));
  if (!hasWeight) {
    if (set('BlkioWeight')) {
      warnings.push('Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.');
      hc.BlkioWeight = 0;
    }
    if (set('BlkioWeightDevice')) {
      warnings.push('Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.');
      hc.BlkioWeightDevice = [];
    }
  }
  return warnings;
}
