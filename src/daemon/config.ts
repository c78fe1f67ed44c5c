// berthd's configuration: flags named as dockerd's, merged with daemon.json (dockerd's keys).
// As dockerd, a setting given both as a flag and in the file is an error, and so is a key that
// berthd does not know.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FlagError, parseFlags, type FlagSpec } from '../common/flags';
import { LOG_LEVELS, type LogLevel } from '../common/logger';
import { daemonLogConfig, type LogConfig } from '../logs/config';

export interface RuntimeConfig {
  path: string;
  runtimeArgs?: string[];
}

export interface DaemonConfig {
  hosts: string[];
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  logLevel: LogLevel;
  configFile: string;
  defaultRuntime: string;
  runtimes: Record<string, RuntimeConfig>;
  insecureRegistries: string[];
  registryMirrors: string[];
  maxConcurrentDownloads: number;
  maxConcurrentUploads: number;
  cgroupParent: string;
  /** API transport security (src/api/tls.ts): --tlsverify and its files, and the plain-TCP opt-in. */
  tlsVerify?: boolean;
  tlsCACert?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureTcp?: boolean;
  /** --userns-remap: "default", "user", "user:group", "uid", "uid:gid"; "" for none. */
  usernsRemap: string;
  /** The default log driver and options of containers (--log-driver, --log-opt; log-driver, log-opts). */
  logConfig: LogConfig;
  /** Free-form settings later subsystems read (bip, dns, ...), as given in daemon.json. */
  extra: Record<string, unknown>;
}

export const DEFAULT_SOCKET = 'unix:///run/berth.sock';

/** Flag name → daemon.json key → config field. */
const FLAGS: (FlagSpec & { key: string })[] = [
  { name: 'host', short: 'H', type: 'list', key: 'hosts', description: 'Daemon socket(s) to connect to' },
  { name: 'data-root', type: 'string', key: 'data-root', description: 'Root directory of persistent berth state' },
  { name: 'exec-root', type: 'string', key: 'exec-root', description: 'Root directory for execution state files' },
  { name: 'pidfile', short: 'p', type: 'string', key: 'pidfile', description: 'Path to use for daemon PID file' },
  { name: 'log-level', short: 'l', type: 'string', key: 'log-level', description: 'Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")' },
  { name: 'debug', short: 'D', type: 'bool', key: 'debug', description: 'Enable debug mode' },
  { name: 'config-file', type: 'string', key: '', description: 'Daemon configuration file' },
  { name: 'default-runtime', type: 'string', key: 'default-runtime', description: 'Default OCI runtime for containers' },
  { name: 'insecure-registry', type: 'list', key: 'insecure-registries', description: 'Enable insecure registry communication' },
  { name: 'registry-mirror', type: 'list', key: 'registry-mirrors', description: 'Preferred registry mirror' },
  { name: 'max-concurrent-downloads', type: 'int', key: 'max-concurrent-downloads', description: 'Set the max concurrent downloads' },
  { name: 'max-concurrent-uploads', type: 'int', key: 'max-concurrent-uploads', description: 'Set the max concurrent uploads' },
  { name: 'cgroup-parent', type: 'string', key: 'cgroup-parent', description: 'Set parent cgroup for all containers' },
  { name: 'cgroup-favor-dynmods', type: 'bool', key: 'cgroup-favor-dynmods', description: 'Remount cgroup2 with favordynmods (faster container starts; a host-wide kernel setting)' },
  { name: 'tlsverify', type: 'bool', key: 'tlsverify', description: 'Use TLS and verify the remote (required for tcp:// listeners)' },
  { name: 'tlscacert', type: 'string', key: 'tlscacert', description: 'Trust certs signed only by this CA' },
  { name: 'tlscert', type: 'string', key: 'tlscert', description: 'Path to TLS certificate file' },
  { name: 'tlskey', type: 'string', key: 'tlskey', description: 'Path to TLS key file' },
  { name: 'insecure-tcp-exposes-root', type: 'bool', key: 'insecure-tcp-exposes-root', description: 'Allow a tcp:// listener without --tlsverify (gives root to anyone who can connect)' },
  { name: 'storage-driver', short: 's', type: 'string', key: 'storage-driver', description: 'Storage driver to use (overlay2)' },
  { name: 'userns-remap', type: 'string', key: 'userns-remap', description: 'User/Group setting for user namespaces' },
  { name: 'bip', type: 'string', key: 'bip', description: 'Specify default-bridge IP (CIDR)' },
  { name: 'bridge', short: 'b', type: 'string', key: 'bridge', description: 'Attach containers to a network bridge' },
  { name: 'iptables', type: 'bool', key: 'iptables', description: 'Enable addition of iptables rules (bridge network isolation)' },
  { name: 'log-driver', type: 'string', key: 'log-driver', description: 'Default driver for container logs (json-file, local, none)' },
  { name: 'log-opt', type: 'list', key: 'log-opts', description: 'Default log driver options for containers' },
  { name: 'help', type: 'bool', key: '', description: 'Print usage' },
  { name: 'version', short: 'v', type: 'bool', key: '', description: 'Print version information and quit' },
];

/** daemon.json keys berthd accepts beyond those that have flags (later subsystems read them). */
const FILE_ONLY_KEYS = ['runtimes', 'dns', 'dns-search', 'default-address-pools',
  'tls', 'features', 'experimental', 'live-restore', 'labels',
  'default-ulimits', 'seccomp-profile', 'no-new-privileges', 'ip-forward', 'ipv6', 'mtu', 'group'];

export function usage(): string {
  const lines = ['Usage:\tberthd [OPTIONS]', '', 'A self-sufficient runtime for containers.', '', 'Options:'];
  for (const f of FLAGS) {
    const left = `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.type === 'bool' ? '' : ` ${f.type === 'int' ? 'int' : 'string'}`}`;
    lines.push(`  ${left.padEnd(36)}${f.description ?? ''}`);
  }
  return lines.join('\n') + '\n';
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): DaemonConfig & { help: boolean; version: boolean } {
  const parsed = parseFlags(argv, FLAGS);
  if (parsed.args.length > 0) throw new FlagError(`berthd takes no arguments, got ${JSON.stringify(parsed.args[0])}`);
  const v = parsed.values;
  const configFile = (v['config-file'] as string | undefined) ?? env.BERTH_CONFIG_FILE ?? '/etc/berth/daemon.json';
  let file: Record<string, unknown> = {};
  if (fs.existsSync(configFile)) {
    try {
      const text = fs.readFileSync(configFile, 'utf8');
      file = (text.trim() === '' ? {} : JSON.parse(text)) as Record<string, unknown>;
    } catch (err) {
      throw new FlagError(`unable to configure the berth daemon with file ${configFile}: ${(err as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new FlagError(`unable to configure the berth daemon with file ${configFile}: not a JSON object`);
  } else if (parsed.given.has('config-file')) {
    throw new FlagError(`unable to configure the berth daemon with file ${configFile}: open ${configFile}: no such file or directory`);
  }

  const known = new Set([...FLAGS.map((f) => f.key).filter(Boolean), ...FILE_ONLY_KEYS]);
  const unknown = Object.keys(file).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    throw new FlagError(`the following directives don't match any configuration option: ${unknown.join(', ')}`);
  }
  const both = FLAGS.filter((f) => f.key && parsed.given.has(f.name) && f.key in file).map((f) => `${f.key}: (from flag: ${JSON.stringify(v[f.name])}, from file: ${JSON.stringify(file[f.key])})`);
  if (both.length > 0) {
    throw new FlagError(`the following directives are specified both as a flag and in the configuration file: ${both.join(', ')}`);
  }

  const pick = <T>(flag: string, key: string, def: T): T => (parsed.given.has(flag) ? (v[flag] as T) : key in file ? (file[key] as T) : def);
  const dataRoot = path.resolve(pick('data-root', 'data-root', '/var/lib/berth'));
  const execRoot = path.resolve(pick('exec-root', 'exec-root', '/run/berth'));
  const debug = pick('debug', 'debug', false);
  const logLevel = (debug ? 'debug' : pick('log-level', 'log-level', 'info')) as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new FlagError(`unable to parse logging level: ${logLevel}`);
  const hosts = pick<string[]>('host', 'hosts', []);
  const storageDriver = pick('storage-driver', 'storage-driver', 'overlay2');
  if (storageDriver !== 'overlay2' && storageDriver !== 'overlay') throw new FlagError(`unsupported storage driver: ${storageDriver} (berth uses overlay2)`);

  const runtimes: Record<string, RuntimeConfig> = {
    crun: { path: '/usr/bin/crun' },
    runc: { path: '/usr/bin/runc' },
    ...((file.runtimes as Record<string, RuntimeConfig> | undefined) ?? {}),
  };
  const defaultRuntime = pick('default-runtime', 'default-runtime', 'crun');
  if (!runtimes[defaultRuntime]) throw new FlagError(`default runtime ${defaultRuntime} is not configured`);

  // --log-opt k=v (repeated) or log-opts {k: v}; checked as dockerd does at start-up.
  let logOpts: unknown = file['log-opts'];
  if (parsed.given.has('log-opt')) {
    const o: Record<string, string> = {};
    for (const kv of v['log-opt'] as string[]) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new FlagError(`invalid argument ${JSON.stringify(kv)} for "--log-opt" flag: bad format of log opt, should be key=value`);
      o[kv.slice(0, i)] = kv.slice(i + 1);
    }
    logOpts = o;
  }
  let logConfig: LogConfig;
  try {
    logConfig = daemonLogConfig(pick<string | undefined>('log-driver', 'log-driver', undefined), logOpts);
  } catch (err) {
    throw new FlagError((err as Error).message);
  }

  const extra: Record<string, unknown> = {};
  for (const k of FILE_ONLY_KEYS) if (k in file && k !== 'runtimes') extra[k] = file[k];
  // Settings with flags that only later subsystems read travel in extra too (the network service).
  for (const k of ['bip', 'bridge', 'iptables', 'cgroup-favor-dynmods']) {
    const v = pick<string | boolean | undefined>(k, k, undefined);
    if (v !== undefined) extra[k] = v;
  }

  return {
    hosts: hosts.length > 0 ? hosts : [DEFAULT_SOCKET],
    dataRoot,
    execRoot,
    pidfile: path.resolve(pick('pidfile', 'pidfile', path.join(execRoot, 'berthd.pid'))),
    logLevel,
    configFile,
    defaultRuntime,
    runtimes,
    insecureRegistries: pick('insecure-registry', 'insecure-registries', []),
    registryMirrors: pick('registry-mirror', 'registry-mirrors', []),
    maxConcurrentDownloads: pick('max-concurrent-downloads', 'max-concurrent-downloads', 3),
    maxConcurrentUploads: pick('max-concurrent-uploads', 'max-concurrent-uploads', 5),
    cgroupParent: pick('cgroup-parent', 'cgroup-parent', ''),
    tlsVerify: pick('tlsverify', 'tlsverify', false),
    tlsCACert: optionalPath(pick<string | undefined>('tlscacert', 'tlscacert', undefined)),
    tlsCert: optionalPath(pick<string | undefined>('tlscert', 'tlscert', undefined)),
    tlsKey: optionalPath(pick<string | undefined>('tlskey', 'tlskey', undefined)),
    insecureTcp: pick('insecure-tcp-exposes-root', 'insecure-tcp-exposes-root', false),
    usernsRemap: userNsRemap(pick<unknown>('userns-remap', 'userns-remap', '')),
    logConfig,
    extra,
    help: v.help as boolean,
    version: v.version as boolean,
  };
}

function userNsRemap(v: unknown): string {
  if (typeof v !== 'string') throw new FlagError(`invalid userns-remap value ${JSON.stringify(v)}: must be a string`);
  return v.trim();
}

function optionalPath(p: string | undefined): string | undefined {
  return p ? path.resolve(p) : undefined;
}
