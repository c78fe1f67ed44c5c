// `run`/`create` flags turned into the Engine API's container create body (Config, HostConfig,
// NetworkingConfig), as the docker CLI's opts parsing does. Pure functions: no daemon needed.
import * as fs from 'node:fs';
import { UsageError } from './client';
import type { CliFlag } from './command';

export const RUN_FLAGS: CliFlag[] = [
  { name: 'add-host', type: 'list', description: 'Add a custom host-to-IP mapping (host:ip)' },
  { name: 'annotation', type: 'list', typeName: 'map', description: 'Add an annotation to the container (passed through to the OCI runtime)' },
  { name: 'attach', short: 'a', type: 'list', description: 'Attach to STDIN, STDOUT or STDERR' },
  { name: 'cap-add', type: 'list', description: 'Add Linux capabilities' },
  { name: 'cap-drop', type: 'list', description: 'Drop Linux capabilities' },
  { name: 'cgroup-parent', type: 'string', description: 'Optional parent cgroup for the container' },
  { name: 'cgroupns', type: 'string', description: 'Cgroup namespace to use (host|private)' },
  { name: 'cidfile', type: 'string', description: 'Write the container ID to the file' },
  { name: 'cpu-period', type: 'int', description: 'Limit CPU CFS (Completely Fair Scheduler) period' },
  { name: 'cpu-quota', type: 'int', description: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
  { name: 'cpu-shares', short: 'c', type: 'int', description: 'CPU shares (relative weight)' },
  { name: 'cpus', type: 'string', typeName: 'decimal', description: 'Number of CPUs' },
  { name: 'cpuset-cpus', type: 'string', description: 'CPUs in which to allow execution (0-3, 0,1)' },
  { name: 'cpuset-mems', type: 'string', description: 'MEMs in which to allow execution (0-3, 0,1)' },
  { name: 'detach', short: 'd', type: 'bool', description: 'Run container in background and print container ID' },
  { name: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
  { name: 'device', type: 'list', description: 'Add a host device to the container' },
  { name: 'dns', type: 'list', description: 'Set custom DNS servers' },
  { name: 'dns-option', type: 'list', description: 'Set DNS options' },
  { name: 'dns-search', type: 'list', description: 'Set custom DNS search domains' },
  { name: 'domainname', type: 'string', description: 'Container NIS domain name' },
  { name: 'entrypoint', type: 'string', description: 'Overwrite the default ENTRYPOINT of the image' },
  { name: 'env', short: 'e', type: 'list', description: 'Set environment variables' },
  { name: 'env-file', type: 'list', description: 'Read in a file of environment variables' },
  { name: 'expose', type: 'list', description: 'Expose a port or a range of ports' },
  { name: 'group-add', type: 'list', description: 'Add additional groups to join' },
  { name: 'health-cmd', type: 'string', description: 'Command to run to check health' },
  { name: 'health-interval', type: 'string', typeName: 'duration', description: 'Time between running the check (ms|s|m|h) (default 0s)' },
  { name: 'health-retries', type: 'int', description: 'Consecutive failures needed to report unhealthy' },
  { name: 'health-start-period', type: 'string', typeName: 'duration', description: 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)' },
  { name: 'health-timeout', type: 'string', typeName: 'duration', description: 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)' },
  { name: 'hostname', short: 'h', type: 'string', description: 'Container host name' },
  { name: 'init', type: 'bool', description: 'Run an init inside the container that forwards signals and reaps processes' },
  { name: 'interactive', short: 'i', type: 'bool', description: 'Keep STDIN open even if not attached' },
  { name: 'ip', type: 'string', description: 'IPv4 address (e.g., 172.30.100.104)' },
  { name: 'ipc', type: 'string', description: 'IPC mode to use' },
  { name: 'label', short: 'l', type: 'list', description: 'Set meta data on a container' },
  { name: 'label-file', type: 'list', description: 'Read in a line delimited file of labels' },
  { name: 'log-driver', type: 'string', description: 'Logging driver for the container' },
  { name: 'log-opt', type: 'list', description: 'Log driver options' },
  { name: 'mac-address', type: 'string', description: 'Container MAC address (e.g., 92:d0:c6:0a:29:33)' },
  { name: 'memory', short: 'm', type: 'string', typeName: 'bytes', description: 'Memory limit' },
  { name: 'memory-reservation', type: 'string', typeName: 'bytes', description: 'Memory soft limit' },
  { name: 'memory-swap', type: 'string', typeName: 'bytes', description: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap" },
  { name: 'mount', type: 'list', typeName: 'mount', description: 'Attach a filesystem mount to the container' },
  { name: 'name', type: 'string', description: 'Assign a name to the container' },
  { name: 'network', type: 'string', typeName: 'network', description: 'Connect a container to a network' },
  { name: 'net', type: 'string', hidden: true },
  { name: 'network-alias', type: 'list', description: 'Add network-scoped alias for the container' },
  { name: 'no-healthcheck', type: 'bool', description: 'Disable any container-specified HEALTHCHECK' },
  { name: 'oom-kill-disable', type: 'bool', description: 'Disable OOM Killer' },
  { name: 'oom-score-adj', type: 'int', description: "Tune host's OOM preferences (-1000 to 1000)" },
  { name: 'pid', type: 'string', description: 'PID namespace to use' },
  { name: 'pids-limit', type: 'int', description: 'Tune container pids limit (set -1 for unlimited)' },
  { name: 'platform', type: 'string', description: 'Set platform if server is multi-platform capable' },
  { name: 'privileged', type: 'bool', description: 'Give extended privileges to this container' },
  { name: 'publish', short: 'p', type: 'list', description: "Publish a container's port(s) to the host" },
  { name: 'publish-all', short: 'P', type: 'bool', description: 'Publish all exposed ports to random ports' },
  { name: 'pull', type: 'string', default: 'missing', description: 'Pull image before running ("always", "missing", "never")' },
  { name: 'quiet', short: 'q', type: 'bool', description: 'Suppress the pull output' },
  { name: 'read-only', type: 'bool', description: "Mount the container's root filesystem as read only" },
  { name: 'restart', type: 'string', default: 'no', description: 'Restart policy to apply when a container exits' },
  { name: 'rm', type: 'bool', description: 'Automatically remove the container and its associated anonymous volumes when it exits' },
  { name: 'runtime', type: 'string', description: 'Runtime to use for this container' },
  { name: 'security-opt', type: 'list', description: 'Security Options' },
  { name: 'shm-size', type: 'string', typeName: 'bytes', description: 'Size of /dev/shm' },
  { name: 'sig-proxy', type: 'bool', default: true, description: 'Proxy received signals to the process' },
  { name: 'stop-signal', type: 'string', description: 'Signal to stop the container' },
  { name: 'stop-timeout', type: 'int', description: 'Timeout (in seconds) to stop a container' },
  { name: 'sysctl', type: 'list', typeName: 'map', description: 'Sysctl options' },
  { name: 'tmpfs', type: 'list', description: 'Mount a tmpfs directory' },
  { name: 'tty', short: 't', type: 'bool', description: 'Allocate a pseudo-TTY' },
  { name: 'ulimit', type: 'list', typeName: 'ulimit', description: 'Ulimit options' },
  { name: 'user', short: 'u', type: 'string', description: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
  { name: 'userns', type: 'string', description: 'User namespace to use' },
  { name: 'uts', type: 'string', description: 'UTS namespace to use' },
  { name: 'volume', short: 'v', type: 'list', description: 'Bind mount a volume' },
  { name: 'volumes-from', type: 'list', description: 'Mount volumes from the specified container(s)' },
  { name: 'workdir', short: 'w', type: 'string', description: 'Working directory inside the container' },
];

/** Flags only `run` has; `create` leaves them out. */
export const RUN_ONLY = new Set(['detach', 'detach-keys', 'sig-proxy']);

/** go-units RAMInBytes: 1024-based, suffixes b k m g t p, optional trailing "b". */
export function ramInBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(b|ib)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`invalid size: '${s}'`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.trunc(Number(m[1]) * mult[m[2].toLowerCase()]);
}

/** Go's time.ParseDuration subset: 1h30m, 10s, 500ms; returns nanoseconds. */
export function parseDurationNs(s: string): number {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const units: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let consumed = 0;
  for (let m; (m = re.exec(s)); ) {
    total += Number(m[1]) * units[m[2]];
    consumed += m[0].length;
  }
  if (consumed !== s.length || consumed === 0) throw new UsageError(`time: invalid duration "${s}"`);
  return Math.round(total);
}

/** -e values and --env-file contents; a bare KEY takes the client's value, or is dropped. */
export function parseEnv(list: string[], files: string[], env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  const add = (item: string): void => {
    if (item.startsWith('=')) throw new UsageError(`invalid environment variable: ${item}`);
    if (item.includes('=')) out.push(item);
    else if (env[item] !== undefined) out.push(`${item}=${env[item]}`);
  };
  for (const f of files) {
    for (const raw of fs.readFileSync(f, 'utf8').split('\n')) {
      const line = raw.replace(/^\s+/, '');
      if (!line || line.startsWith('#')) continue;
      add(line.replace(/\r$/, ''));
    }
  }
  for (const e of list) add(e);
  return out;
}

export interface PortBinding {
  HostIp: string;
  HostPort: string;
}

function expandRange(r: string): number[] {
  const [a, b] = r.split('-');
  const start = Number(a);
  const end = b === undefined ? start : Number(b);
  if (!/^\d+$/.test(a) || (b !== undefined && !/^\d+$/.test(b)) || start < 0 || end > 65535 || end < start) {
    throw new UsageError(`invalid containerPort: ${r}`);
  }
  return Array.from({ length: end - start + 1 }, (_x, i) => start + i);
}

/** -p [ip:][hostPort:]containerPort[/proto], with ranges on both sides. */
export function parsePublish(specs: string[]): { exposed: Record<string, object>; bindings: Record<string, PortBinding[]> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, PortBinding[]> = {};
  for (const spec of specs) {
    let rest = spec;
    let proto = 'tcp';
    const slash = rest.lastIndexOf('/');
    if (slash >= 0) {
      proto = rest.slice(slash + 1).toLowerCase();
      rest = rest.slice(0, slash);
      if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new UsageError(`invalid proto: ${proto}`);
    }
    let ip = '';
    let hostPart = '';
    let containerPart: string;
    const v6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
    if (v6) {
      ip = v6[1];
      const parts = v6[2].split(':');
      if (parts.length !== 2) throw new UsageError(`invalid port format for --publish: ${spec}`);
      [hostPart, containerPart] = parts;
    } else {
      const parts = rest.split(':');
      if (parts.length === 1) containerPart = parts[0];
      else if (parts.length === 2) [hostPart, containerPart] = parts;
      else if (parts.length === 3) [ip, hostPart, containerPart] = parts;
      else throw new UsageError(`invalid port format for --publish: ${spec}`);
    }
    if (!containerPart) throw new UsageError(`no port specified: ${spec}<empty>`);
    const cports = expandRange(containerPart);
    const hports = hostPart ? expandRange(hostPart) : [];
    if (hports.length > 1 && hports.length !== cports.length) throw new UsageError(`invalid ranges specified for container and host Ports: ${containerPart} and ${hostPart}`);
    cports.forEach((p, i) => {
      const key = `${p}/${proto}`;
      exposed[key] = {};
      const hostPort = hports.length === 0 ? '' : hports.length === 1 && cports.length > 1 ? String(hports[0]) : String(hports[i]);
      (bindings[key] ??= []).push({ HostIp: ip, HostPort: hostPort });
    });
  }
  return { exposed, bindings };
}

/** --mount type=bind,source=/a,target=/b,readonly */
export function parseMount(spec: string): Record<string, unknown> {
  const m: Record<string, unknown> = { Type: 'volume' };
  const bind: Record<string, unknown> = {};
  const vol: Record<string, unknown> = {};
  const tmpfs: Record<string, unknown> = {};
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const val = eq < 0 ? '' : field.slice(eq + 1);
    switch (key) {
      case 'type': m.Type = val; break;
      case 'source': case 'src': m.Source = val; break;
      case 'target': case 'destination': case 'dst': m.Target = val; break;
      case 'readonly': case 'ro': m.ReadOnly = eq < 0 || ['1', 'true'].includes(val.toLowerCase()); break;
      case 'consistency': m.Consistency = val; break;
      case 'bind-propagation': bind.Propagation = val; break;
      case 'bind-recursive': bind.ReadOnlyNonRecursive = val === 'readonly' ? false : undefined; break;
      case 'volume-nocopy': vol.NoCopy = eq < 0 || val === 'true' || val === '1'; break;
      case 'volume-driver': vol.DriverConfig = { Name: val }; break;
      case 'volume-label': { const [k, ...v] = val.split('='); vol.Labels = { ...(vol.Labels as object), [k]: v.join('=') }; break; }
      case 'tmpfs-size': tmpfs.SizeBytes = ramInBytes(val); break;
      case 'tmpfs-mode': tmpfs.Mode = parseInt(val, 8); break;
      default: throw new UsageError(`invalid argument "${spec}" for "--mount" flag: unexpected key '${key}' in '${field}'`);
    }
  }
  if (!m.Target) throw new UsageError(`invalid argument "${spec}" for "--mount" flag: target is required`);
  if (Object.keys(bind).length) m.BindOptions = bind;
  if (Object.keys(vol).length) m.VolumeOptions = vol;
  if (Object.keys(tmpfs).length) m.TmpfsOptions = tmpfs;
  return m;
}

export function parseRestart(policy: string): { Name: string; MaximumRetryCount: number } {
  const [name, count] = policy.split(':');
  if (!['no', 'always', 'unless-stopped', 'on-failure', ''].includes(name)) throw new UsageError(`invalid restart policy format: ${policy}`);
  if (count !== undefined && name !== 'on-failure') throw new UsageError(`invalid restart policy format: maximum retry count can only be used with 'on-failure'`);
  if (count !== undefined && !/^\d+$/.test(count)) throw new UsageError(`invalid restart policy format: maximum retry count must be an integer`);
  return { Name: name === '' ? 'no' : name, MaximumRetryCount: count ? Number(count) : 0 };
}

function keyValues(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq === 0) throw new UsageError(`invalid ${what}: ${item}`);
    if (eq < 0) out[item] = '';
    else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function readLines(files: string[]): string[] {
  return files.flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
}

function parseUlimit(s: string): { Name: string; Soft: number; Hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(s);
  if (!m) throw new UsageError(`invalid ulimit argument: ${s}`);
  return { Name: m[1], Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
}

function parseDevice(s: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = s.split(':');
  const host = parts[0];
  let inCtr = host;
  let perms = 'rwm';
  if (parts.length >= 2) {
    if (/^[rwm]+$/.test(parts[1]) && parts.length === 2) perms = parts[1];
    else inCtr = parts[1];
  }
  if (parts.length === 3) perms = parts[2];
  return { PathOnHost: host, PathInContainer: inCtr, CgroupPermissions: perms };
}

export interface CreateRequest {
  name?: string;
  platform?: string;
  body: { [k: string]: unknown; HostConfig: Record<string, unknown>; NetworkingConfig?: Record<string, unknown> };
}

/**
 * The create request for `run`/`create`: args are IMAGE [COMMAND] [ARG...]. The attach settings
 * follow docker: without -d, stdout and stderr are attached (or what -a names); -i opens stdin.
 */
export function buildCreateRequest(v: Record<string, unknown>, args: string[], env: NodeJS.ProcessEnv, isRun: boolean): CreateRequest {
  const [image, ...cmd] = args;
  const list = (k: string): string[] => (v[k] as string[] | undefined) ?? [];
  const str = (k: string): string | undefined => (v[k] as string | undefined) || undefined;
  const detach = isRun && Boolean(v.detach);
  const attach = list('attach').map((s) => s.toLowerCase());
  for (const a of attach) if (!['stdin', 'stdout', 'stderr'].includes(a)) throw new UsageError(`invalid argument "${a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`);
  if (detach && attach.length) throw new UsageError('conflicting options: cannot specify both --attach and --detach');
  const interactive = Boolean(v.interactive);
  let attachStdin = false;
  let attachStdout = false;
  let attachStderr = false;
  if (isRun && !detach) {
    if (attach.length) {
      attachStdin = attach.includes('stdin');
      attachStdout = attach.includes('stdout');
      attachStderr = attach.includes('stderr');
    } else {
      attachStdin = interactive;
      attachStdout = true;
      attachStderr = true;
    }
  } else if (!isRun && attach.length) {
    attachStdin = attach.includes('stdin');
    attachStdout = attach.includes('stdout');
    attachStderr = attach.includes('stderr');
  } else if (!isRun) {
    attachStdin = interactive;
    attachStdout = true;
    attachStderr = true;
  }
  if (v.rm && v.restart && v.restart !== 'no') throw new UsageError('conflicting options: cannot specify both --restart and --rm');

  const { exposed, bindings } = parsePublish(list('publish'));
  for (const e of list('expose')) {
    const [port, proto = 'tcp'] = e.split('/');
    for (const p of expandRange(port)) exposed[`${p}/${proto}`] = {};
  }
  const volumes: Record<string, object> = {};
  const binds: string[] = [];
  for (const vol of list('volume')) {
    // A bare path is an anonymous volume; anything with a source becomes a bind (or named volume).
    if (/^[^:]+$/.test(vol) || (/^[A-Za-z]:/.test(vol) && vol.split(':').length === 2)) volumes[vol] = {};
    else binds.push(vol);
  }
  const tmpfs: Record<string, string> = {};
  for (const t of list('tmpfs')) {
    const c = t.indexOf(':');
    tmpfs[c < 0 ? t : t.slice(0, c)] = c < 0 ? '' : t.slice(c + 1);
  }
  const labels = { ...keyValues(readLines(list('label-file')), 'label'), ...keyValues(list('label'), 'label') };
  const entrypoint = v.entrypoint === undefined ? undefined : (v.entrypoint as string) === '' ? [''] : [v.entrypoint as string];

  let healthcheck: Record<string, unknown> | undefined;
  if (v['no-healthcheck']) {
    healthcheck = { Test: ['NONE'] };
  } else if (v['health-cmd'] || v['health-interval'] || v['health-retries'] !== undefined || v['health-timeout'] || v['health-start-period']) {
    healthcheck = {
      ...(v['health-cmd'] ? { Test: ['CMD-SHELL', v['health-cmd']] } : {}),
      Interval: v['health-interval'] ? parseDurationNs(v['health-interval'] as string) : 0,
      Timeout: v['health-timeout'] ? parseDurationNs(v['health-timeout'] as string) : 0,
      StartPeriod: v['health-start-period'] ? parseDurationNs(v['health-start-period'] as string) : 0,
      Retries: (v['health-retries'] as number | undefined) ?? 0,
    };
  }
  const network = str('network') ?? str('net');
  const memory = str('memory') ? ramInBytes(str('memory')!) : 0;
  let memorySwap = 0;
  if (str('memory-swap')) memorySwap = str('memory-swap') === '-1' ? -1 : ramInBytes(str('memory-swap')!);
  let nanoCpus = 0;
  if (str('cpus')) {
    const n = Number(str('cpus'));
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`invalid argument "${str('cpus')}" for "--cpus" flag: failed to parse ${str('cpus')} as a rational number`);
    nanoCpus = Math.round(n * 1e9);
  }
  const logOpts = keyValues(list('log-opt'), 'log option');

  const hostConfig: Record<string, unknown> = {
    Binds: binds.length ? binds : null,
    ContainerIDFile: str('cidfile') ?? '',
    LogConfig: { Type: str('log-driver') ?? '', Config: logOpts },
    NetworkMode: network ?? 'default',
    PortBindings: bindings,
    RestartPolicy: parseRestart((v.restart as string | undefined) ?? 'no'),
    AutoRemove: Boolean(v.rm),
    VolumeDriver: '',
    VolumesFrom: list('volumes-from').length ? list('volumes-from') : null,
    CapAdd: list('cap-add').length ? list('cap-add') : null,
    CapDrop: list('cap-drop').length ? list('cap-drop') : null,
    CgroupnsMode: str('cgroupns') ?? '',
    Dns: list('dns'),
    DnsOptions: list('dns-option'),
    DnsSearch: list('dns-search'),
    ExtraHosts: list('add-host').length ? list('add-host') : null,
    GroupAdd: list('group-add').length ? list('group-add') : null,
    IpcMode: str('ipc') ?? '',
    OomScoreAdj: (v['oom-score-adj'] as number | undefined) ?? 0,
    PidMode: str('pid') ?? '',
    Privileged: Boolean(v.privileged),
    PublishAllPorts: Boolean(v['publish-all']),
    ReadonlyRootfs: Boolean(v['read-only']),
    SecurityOpt: list('security-opt').length ? list('security-opt') : null,
    Tmpfs: Object.keys(tmpfs).length ? tmpfs : undefined,
    UTSMode: str('uts') ?? '',
    UsernsMode: str('userns') ?? '',
    ShmSize: str('shm-size') ? ramInBytes(str('shm-size')!) : 0,
    Sysctls: list('sysctl').length ? keyValues(list('sysctl'), 'sysctl') : undefined,
    Runtime: str('runtime') ?? '',
    CgroupParent: str('cgroup-parent') ?? '',
    NanoCpus: nanoCpus,
    CpuShares: (v['cpu-shares'] as number | undefined) ?? 0,
    CpuPeriod: (v['cpu-period'] as number | undefined) ?? 0,
    CpuQuota: (v['cpu-quota'] as number | undefined) ?? 0,
    CpusetCpus: str('cpuset-cpus') ?? '',
    CpusetMems: str('cpuset-mems') ?? '',
    Memory: memory,
    MemoryReservation: str('memory-reservation') ? ramInBytes(str('memory-reservation')!) : 0,
    MemorySwap: memorySwap,
    OomKillDisable: Boolean(v['oom-kill-disable']),
    PidsLimit: (v['pids-limit'] as number | undefined) ?? null,
    Devices: list('device').map(parseDevice),
    Ulimits: list('ulimit').map(parseUlimit),
    Mounts: list('mount').length ? list('mount').map(parseMount) : undefined,
    Init: v.init ? true : null,
    Annotations: list('annotation').length ? keyValues(list('annotation'), 'annotation') : undefined,
  };
  for (const k of Object.keys(hostConfig)) if (hostConfig[k] === undefined) delete hostConfig[k];

  const body: CreateRequest['body'] = {
    Hostname: str('hostname') ?? '',
    Domainname: str('domainname') ?? '',
    User: str('user') ?? '',
    AttachStdin: attachStdin,
    AttachStdout: attachStdout,
    AttachStderr: attachStderr,
    ExposedPorts: Object.keys(exposed).length ? exposed : undefined,
    Tty: Boolean(v.tty),
    OpenStdin: interactive,
    StdinOnce: interactive && attachStdin,
    Env: parseEnv(list('env'), list('env-file'), env),
    Cmd: cmd.length ? cmd : null,
    Healthcheck: healthcheck,
    Image: image,
    Volumes: Object.keys(volumes).length ? volumes : null,
    WorkingDir: str('workdir') ?? '',
    Entrypoint: entrypoint ?? null,
    MacAddress: str('mac-address'),
    Labels: labels,
    StopSignal: str('stop-signal'),
    StopTimeout: v['stop-timeout'] as number | undefined,
    HostConfig: hostConfig,
  };
  const aliases = list('network-alias');
  if (network && !['default', 'bridge', 'host', 'none'].includes(network) && !network.startsWith('container:')) {
    body.NetworkingConfig = { EndpointsConfig: { [network]: { Aliases: aliases.length ? aliases : null, ...(str('ip') ? { IPAMConfig: { IPv4Address: str('ip') } } : {}) } } };
  } else if (str('ip') || aliases.length) {
    body.NetworkingConfig = { EndpointsConfig: { [network ?? 'bridge']: { Aliases: aliases.length ? aliases : null, ...(str('ip') ? { IPAMConfig: { IPv4Address: str('ip') } } : {}) } } };
  }
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return { name: str('name'), platform: str('platform'), body };
}
