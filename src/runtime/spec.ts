// Generation of an OCI runtime config.json from a small typed ContainerSpec, with docker's
// defaults: capabilities, masked and read-only paths, default mounts, device rules. Pure: no I/O,
// so every input the result depends on (host rlimits, host devices) is a parameter.

import type { OciSeccomp } from '../security/seccomp';

// ---- The part of the OCI runtime spec berth writes ----

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciRlimit {
  type: string;
  soft: number;
  hard: number;
}

export interface OciUser {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
}

export interface OciCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
}

export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: OciUser;
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: OciCapabilities;
  rlimits?: OciRlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  apparmorProfile?: string;
}

export interface OciDevice {
  path: string;
  type: 'c' | 'b' | 'p' | 'u';
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface OciDeviceRule {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number;
  minor?: number;
  access?: string;
}

export interface OciThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface OciResources {
  devices?: OciDeviceRule[];
  memory?: { limit?: number; reservation?: number; swap?: number; swappiness?: number; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  pids?: { limit: number };
  blockIO?: {
    weight?: number;
    weightDevice?: { major: number; minor: number; weight: number }[];
    throttleReadBpsDevice?: OciThrottleDevice[];
    throttleWriteBpsDevice?: OciThrottleDevice[];
    throttleReadIOPSDevice?: OciThrottleDevice[];
    throttleWriteIOPSDevice?: OciThrottleDevice[];
  };
}

export interface OciNamespace {
  type: 'mount' | 'uts' | 'ipc' | 'pid' | 'network' | 'cgroup' | 'user';
  path?: string;
}

/** One line of a user namespace's uid_map/gid_map. */
export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts: OciMount[];
  annotations?: Record<string, string>;
  linux: {
    namespaces: OciNamespace[];
    uidMappings?: OciIdMapping[];
    gidMappings?: OciIdMapping[];
    cgroupsPath?: string;
    resources?: OciResources;
    devices?: OciDevice[];
    maskedPaths?: string[];
    readonlyPaths?: string[];
    sysctl?: Record<string, string>;
    seccomp?: OciSeccomp;
  };
}

// ---- berth's input ----

/** 'private': a new namespace; 'host': the daemon's; {path}: join an existing one (/proc/<pid>/ns/net, /run/netns/x). */
export type NamespaceMode = 'private' | 'host' | { path: string };

export interface Rlimit {
  /** As docker's --ulimit names them: nofile, nproc, core, ... (or RLIMIT_NOFILE). */
  name: string;
  soft: number;
  hard: number;
}

export interface ContainerSpec {
  args: string[];
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
  hostname?: string;
  domainname?: string;
  tty?: boolean;
  /** Initial terminal size (rows, columns). */
  consoleSize?: { height: number; width: number };
  rootfs: string;
  readonlyRootfs?: boolean;
  /** Extra mounts; one at the destination of a default mount replaces it (as docker does). */
  mounts?: OciMount[];
  namespaces?: {
    network?: NamespaceMode;
    ipc?: NamespaceMode;
    pid?: NamespaceMode;
    uts?: NamespaceMode;
    /** Docker's default is host on cgroup v1, private on v2. Default here: host. */
    cgroup?: NamespaceMode;
  };
  annotations?: Record<string, string>;
  rlimits?: Rlimit[];
  /** RLIMIT_NOFILE of the daemon ({soft, hard}); container limits are clamped to its hard limit,
   * because the runtime cannot raise a limit above what it has. Also the default when rlimits
   * name no nofile. */
  hostNofile?: { soft: number; hard: number };
  cgroupsPath?: string;
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  /** Host devices (from hostDevices()); all of them are given to a privileged container. */
  hostDevices?: OciDevice[];
  /** Devices given with --device. */
  devices?: { device: OciDevice; access?: string }[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  /** Size of /dev/shm in bytes (docker's default: 64 MiB). */
  shmSize?: number;
  resources?: Omit<OciResources, 'devices'>;
  sysctl?: Record<string, string>;
  /** Last capability number the kernel knows (/proc/sys/kernel/cap_last_cap); bounds "ALL". */
  capLastCap?: number;
  /** The resolved seccomp filter (security's seccompForContainer); absent: none (unconfined). */
  seccomp?: OciSeccomp;
  /** --userns-remap: a user namespace of the container's own with these mappings; absent: the host's. */
  userns?: { uidMappings: OciIdMapping[]; gidMappings: OciIdMapping[] };
  /** AppArmor profile to run under (only given where the host has AppArmor). */
  apparmorProfile?: string;
}

// ---- docker's defaults ----

export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Every capability, in kernel number order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40). */
export const ALL_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW',
  'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD',
  'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

export const DEFAULT_MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats',
  '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];

export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** The devices every container may use (the runtime creates their nodes), plus mknod of any. */
const DEFAULT_DEVICE_RULES: OciDeviceRule[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // /dev/zero
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // /dev/null
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // /dev/urandom
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // /dev/random
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // /dev/full
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // /dev/tty
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, // /dev/console
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // /dev/ptmx
  { allow: true, type: 'c', major: 136, access: 'rwm' }, // /dev/pts/*
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }, // /dev/net/tun
  { allow: true, type: 'c', access: 'm' }, // mknod of any char device
  { allow: true, type: 'b', access: 'm' }, // mknod of any block device
];

const RLIMIT_NAMES = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

export class SpecError extends Error {}

/** "chown", "CAP_CHOWN", "cap_chown" → "CAP_CHOWN"; "ALL" stays "ALL". */
export function normalizeCapability(name: string): string {
  const up = name.trim().toUpperCase();
  if (up === 'ALL') return up;
  return up.startsWith('CAP_') ? up : `CAP_${up}`;
}

/** Docker's capability arithmetic: defaults (or all, when privileged), then drops, then adds; ALL works in both. */
export function computeCapabilities(opts: { privileged?: boolean; capAdd?: string[]; capDrop?: string[]; capLastCap?: number }): string[] {
  const known = ALL_CAPABILITIES.slice(0, (opts.capLastCap ?? ALL_CAPABILITIES.length - 1) + 1);
  if (opts.privileged) return known;
  const add = (opts.capAdd ?? []).map(normalizeCapability);
  const drop = (opts.capDrop ?? []).map(normalizeCapability);
  for (const c of [...add, ...drop]) {
    if (c !== 'ALL' && !ALL_CAPABILITIES.includes(c)) throw new SpecError(`unknown capability: "${c}"`);
  }
  if (add.includes('ALL')) return known.filter((c) => !drop.includes(c) || add.includes(c));
  let caps = drop.includes('ALL') ? [] : DEFAULT_CAPABILITIES.filter((c) => !drop.includes(c));
  for (const c of add) if (!caps.includes(c)) caps = [...caps, c];
  return caps.filter((c) => known.includes(c));
}

function rlimitType(name: string): string {
  const n = name.toLowerCase().replace(/^rlimit_/, '');
  if (!RLIMIT_NAMES.includes(n)) throw new SpecError(`invalid ulimit type: ${name}`);
  return `RLIMIT_${n.toUpperCase()}`;
}

function namespaceEntries(ns: ContainerSpec['namespaces'] = {}): OciNamespace[] {
  const out: OciNamespace[] = [{ type: 'mount' }];
  const modes: [OciNamespace['type'], NamespaceMode][] = [
    ['network', ns.network ?? 'private'],
    ['ipc', ns.ipc ?? 'private'],
    ['uts', ns.uts ?? 'private'],
    ['pid', ns.pid ?? 'private'],
    ['cgroup', ns.cgroup ?? 'host'],
  ];
  for (const [type, mode] of modes) {
    if (mode === 'host') continue;
    if (mode === 'private') out.push({ type });
    else {
      if (!mode.path.startsWith('/')) throw new SpecError(`${type} namespace path must be absolute: ${mode.path}`);
      out.push({ type, path: mode.path });
    }
  }
  return out;
}

function defaultMounts(spec: ContainerSpec): OciMount[] {
  const ns = spec.namespaces ?? {};
  const privileged = spec.privileged === true;
  const sysRo = privileged ? [] : ['ro'];
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
  ];
  // sysfs can only be mounted by whoever owns the network namespace: a container that shares
  // the host's (or another's) gets a bind mount of the host /sys instead, as docker does.
  if ((ns.network ?? 'private') === 'private') {
    mounts.push({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', ...sysRo] });
  } else {
    mounts.push({ destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', ...sysRo] });
  }
  mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', ...(privileged ? ['rw'] : ['ro'])] });
  if ((ns.ipc ?? 'private') === 'private') {
    mounts.push({ destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] });
  } else {
    mounts.push({ destination: '/dev/mqueue', type: 'bind', source: '/dev/mqueue', options: ['rbind', 'nosuid', 'noexec', 'nodev'] });
  }
  const shmSize = spec.shmSize ?? DEFAULT_SHM_SIZE;
  if (!Number.isInteger(shmSize) || shmSize <= 0) throw new SpecError(`invalid shm size: ${shmSize}`);
  mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize}`] });
  return mounts;
}

/** Normalises a container path for comparisons: no trailing slash, no "//" or "." parts. */
function cleanDest(p: string): string {
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return '/' + parts.join('/');
}

export function generateSpec(spec: ContainerSpec): OciSpec {
  if (!Array.isArray(spec.args) || spec.args.length === 0) throw new SpecError('no command specified');
  if (!spec.rootfs) throw new SpecError('rootfs path is required');
  const cwd = spec.cwd && spec.cwd !== '' ? spec.cwd : '/';
  if (!cwd.startsWith('/')) throw new SpecError(`the working directory '${cwd}' is invalid, it needs to be an absolute path`);
  const ns = spec.namespaces ?? {};
  const privileged = spec.privileged === true;

  const caps = computeCapabilities(spec);
  const process: OciProcess = {
    terminal: spec.tty === true,
    user: { uid: spec.user?.uid ?? 0, gid: spec.user?.gid ?? 0 },
    args: [...spec.args],
    env: [...(spec.env ?? [])],
    cwd,
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    noNewPrivileges: spec.noNewPrivileges === true,
  };
  if (spec.user?.additionalGids && spec.user.additionalGids.length > 0) process.user.additionalGids = [...spec.user.additionalGids];
  if (spec.tty && spec.consoleSize) process.consoleSize = { height: spec.consoleSize.height, width: spec.consoleSize.width };
  if (spec.oomScoreAdj !== undefined) {
    if (!Number.isInteger(spec.oomScoreAdj) || spec.oomScoreAdj < -1000 || spec.oomScoreAdj > 1000) {
      throw new SpecError(`Invalid value ${spec.oomScoreAdj}, range for oom score adj is [-1000, 1000]`);
    }
    process.oomScoreAdj = spec.oomScoreAdj;
  }

  // rlimits: the runtime runs with the daemon's limits and cannot raise a hard limit above them,
  // so nofile is clamped to the daemon's hard limit rather than failing at start.
  const rlimits = new Map<string, OciRlimit>();
  if (spec.hostNofile) rlimits.set('RLIMIT_NOFILE', { type: 'RLIMIT_NOFILE', soft: spec.hostNofile.soft, hard: spec.hostNofile.hard });
  for (const r of spec.rlimits ?? []) {
    const type = rlimitType(r.name);
    if (r.soft > r.hard) throw new SpecError(`ulimit soft limit must be less than or equal to hard limit: ${r.soft} > ${r.hard}`);
    rlimits.set(type, { type, soft: r.soft, hard: r.hard });
  }
  const nofile = rlimits.get('RLIMIT_NOFILE');
  if (nofile && spec.hostNofile) {
    nofile.hard = Math.min(nofile.hard, spec.hostNofile.hard);
    nofile.soft = Math.min(nofile.soft, nofile.hard);
  }
  if (rlimits.size > 0) process.rlimits = [...rlimits.values()];

  // Mounts: defaults first, then the caller's; a caller's mount replaces a default at the same
  // destination (docker lets -v /dev/shm:... or --tmpfs /dev override them).
  const userMounts = (spec.mounts ?? []).map((m) => ({ ...m, destination: cleanDest(m.destination), options: m.options ? [...m.options] : undefined }));
  for (const m of userMounts) {
    if (!m.destination.startsWith('/')) throw new SpecError(`invalid mount destination: ${m.destination}`);
  }
  const taken = new Set(userMounts.map((m) => m.destination));
  const mounts = [...defaultMounts(spec).filter((m) => !taken.has(m.destination)), ...userMounts];

  const devices: OciDevice[] = [];
  let deviceRules: OciDeviceRule[];
  if (privileged) {
    deviceRules = [{ allow: true, access: 'rwm' }];
    devices.push(...(spec.hostDevices ?? []));
  } else {
    deviceRules = [...DEFAULT_DEVICE_RULES];
  }
  for (const d of spec.devices ?? []) {
    if (!devices.some((x) => x.path === d.device.path)) devices.push(d.device);
    if (!privileged && (d.device.type === 'c' || d.device.type === 'b')) {
      deviceRules.push({ allow: true, type: d.device.type, major: d.device.major, minor: d.device.minor, access: d.access ?? 'rwm' });
    }
  }

  const out: OciSpec = {
    ociVersion: '1.0.2',
    process,
    root: { path: spec.rootfs, readonly: spec.readonlyRootfs === true },
    mounts,
    linux: {
      namespaces: namespaceEntries(ns),
      resources: { ...(spec.resources ?? {}), devices: deviceRules },
      maskedPaths: privileged ? [] : [...DEFAULT_MASKED_PATHS],
      readonlyPaths: privileged ? [] : [...DEFAULT_READONLY_PATHS],
    },
  };
  // A hostname can only be set in a UTS namespace of the container's own.
  if ((ns.uts ?? 'private') === 'private') {
    if (spec.hostname) out.hostname = spec.hostname;
    if (spec.domainname) out.domainname = spec.domainname;
  }
  if (devices.length > 0) out.linux.devices = devices;
  if (spec.cgroupsPath) out.linux.cgroupsPath = spec.cgroupsPath;
  if (spec.sysctl && Object.keys(spec.sysctl).length > 0) out.linux.sysctl = { ...spec.sysctl };
  if (spec.seccomp) out.linux.seccomp = spec.seccomp;
  if (spec.userns) {
    if (spec.userns.uidMappings.length === 0 || spec.userns.gidMappings.length === 0) throw new SpecError('a user namespace needs uid and gid mappings');
    out.linux.namespaces.unshift({ type: 'user' });
    out.linux.uidMappings = spec.userns.uidMappings.map((m) => ({ ...m }));
    out.linux.gidMappings = spec.userns.gidMappings.map((m) => ({ ...m }));
  }
  if (spec.apparmorProfile) process.apparmorProfile = spec.apparmorProfile;
  if (spec.annotations && Object.keys(spec.annotations).length > 0) out.annotations = { ...spec.annotations };
  return out;
}

/** The process spec of an exec (`--exec-process-spec`): what runs inside an existing container. */
export interface ExecSpec {
  args: string[];
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
  tty?: boolean;
  consoleSize?: { height: number; width: number };
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  capLastCap?: number;
  noNewPrivileges?: boolean;
  rlimits?: OciRlimit[];
}

export function generateExecProcess(e: ExecSpec): OciProcess {
  if (!Array.isArray(e.args) || e.args.length === 0) throw new SpecError('No exec command specified');
  const caps = computeCapabilities(e);
  const p: OciProcess = {
    terminal: e.tty === true,
    user: { uid: e.user?.uid ?? 0, gid: e.user?.gid ?? 0 },
    args: [...e.args],
    env: [...(e.env ?? [])],
    cwd: e.cwd && e.cwd !== '' ? e.cwd : '/',
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    noNewPrivileges: e.noNewPrivileges === true,
  };
  if (e.user?.additionalGids && e.user.additionalGids.length > 0) p.user.additionalGids = [...e.user.additionalGids];
  if (e.tty && e.consoleSize) p.consoleSize = { ...e.consoleSize };
  if (e.rlimits) p.rlimits = e.rlimits.map((r) => ({ ...r }));
  return p;
}
