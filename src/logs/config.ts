// Log drivers and their options, as dockerd validates them: json-file (the default), local and
// none. Every readable driver is conmon's k8s-file on disk (see docs/architecture.md); what the
// driver decides is the rotation (max-size, max-file, compress) and the attributes that
// `logs --details` shows (labels, env, tag).
import { invalidParameter } from '../common/errors';

export interface LogConfig {
  Type: string;
  Config: Record<string, string>;
}

export const LOG_DRIVERS = ['json-file', 'local', 'none'] as const;
export const DEFAULT_LOG_DRIVER = 'json-file';

/** Attribute options every readable driver takes (dockerd's logger.Info.ExtraAttributes and tag). */
const ATTR_OPTS = ['labels', 'labels-regex', 'env', 'env-regex', 'tag'];
/** Options dockerd takes for every driver before the driver's own validator sees them. */
const BUILTIN_OPTS = ['mode', 'max-buffer-size'];

/** docker's local driver defaults. */
const LOCAL_MAX_SIZE = 20 * 1024 * 1024;
const LOCAL_MAX_FILE = 5;

/** What berth does with a container's log. */
export interface LogPolicy {
  /** false for the none driver: conmon writes no file and logs cannot be read. */
  readable: boolean;
  /** Bytes per file (-1: unlimited). */
  maxSize: number;
  /** Files kept, the current one included (1: the file is replaced when full). */
  maxFile: number;
  compress: boolean;
}

/**
 * Go's units.FromHumanSize (decimal: "1m" is 1,000,000 bytes), with its error wording, which
 * dockerd passes on verbatim.
 */
export function parseHumanSize(s: string): number {
  let sep = -1;
  for (let i = s.length - 1; i >= 0; i--) {
    if ('0123456789. '.includes(s[i])) {
      sep = i;
      break;
    }
  }
  if (sep === -1) throw new Error(`invalid size: '${s}'`);
  const num = s[sep] === ' ' ? s.slice(0, sep) : s.slice(0, sep + 1);
  let sfx = s.slice(sep + 1);
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(num)) throw new Error(`strconv.ParseFloat: parsing ${JSON.stringify(num)}: invalid syntax`);
  let size = Number(num);
  if (size < 0) throw new Error(`invalid size: '${s}'`);
  if (sfx === '') return Math.trunc(size);
  const bad = (): Error => new Error(`invalid suffix: '${sfx}'`);
  if (sfx.length > 3) throw bad();
  sfx = sfx.toLowerCase();
  if (sfx[0] === 'b') {
    if (sfx.length > 1) throw bad();
    return Math.trunc(size);
  }
  const mul = { k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 }[sfx[0]];
  if (mul === undefined) throw bad();
  if ((sfx.length === 2 && sfx[1] !== 'b') || (sfx.length === 3 && sfx.slice(1) !== 'ib')) throw bad();
  size *= mul;
  return Math.trunc(size);
}

/** Go's strconv.ParseBool, with its error wording. */
function parseGoBool(v: string, what: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new Error(`${what}strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`);
}

/** Go's strconv.Atoi, with its error wording. */
function parseGoInt(v: string, what: string): number {
  if (!/^[+-]?\d+$/.test(v)) throw new Error(`${what}strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
  return Number(v);
}

/**
 * The rotation a driver's options ask for. Throws dockerd's driver-initialisation error for a bad
 * value (dockerd reports those when the container starts; berth refuses them at create, so a bad
 * value leaves nothing behind).
 */
export function logPolicy(cfg: LogConfig): LogPolicy {
  const o = cfg.Config ?? {};
  if (cfg.Type === 'none') return { readable: false, maxSize: -1, maxFile: 1, compress: false };
  if (cfg.Type === 'local') {
    let maxSize = LOCAL_MAX_SIZE;
    let maxFile = LOCAL_MAX_FILE;
    let compress = true;
    if ('max-size' in o) {
      try {
        maxSize = parseHumanSize(o['max-size']);
      } catch (err) {
        throw new Error(`invalid value for max-size: ${o['max-size']}: ${(err as Error).message}`);
      }
    }
    if ('max-file' in o) maxFile = parseGoInt(o['max-file'], `invalid value for max-file: ${o['max-file']}: `);
    if ('compress' in o) compress = parseGoBool(o.compress, 'invalid boolean value for compress: ');
    if (maxSize < 0) throw new Error('max-size must not be negative');
    if (maxFile < 0) throw new Error('max-file must not be negative');
    if (compress && maxFile <= 1) throw new Error('compression cannot be enabled when max file count is 1');
    // local: 0 means unlimited.
    return { readable: true, maxSize: maxSize === 0 ? -1 : maxSize, maxFile: Math.max(maxFile, 1), compress };
  }
  let maxSize = -1;
  if ('max-size' in o) {
    maxSize = parseHumanSize(o['max-size']);
    if (maxSize <= 0) throw new Error('max-size must be a positive number');
  }
  let maxFile = 1;
  if ('max-file' in o) {
    maxFile = parseGoInt(o['max-file'], '');
    if (maxFile < 1) throw new Error('max-file cannot be less than 1');
  }
  let compress = false;
  if ('compress' in o) {
    compress = parseGoBool(o.compress, '');
    if (compress && (maxFile === 1 || maxSize === -1)) throw new Error('compress cannot be true when max-file is less than 2 or max-size is not set');
  }
  // Without max-size there is no rotation at all (dockerd ignores max-file then).
  if (maxSize === -1) maxFile = 1;
  return { readable: true, maxSize, maxFile, compress };
}

/** dockerd's ValidateLogOpts: the driver exists and knows every option (wording as dockerd's). */
export function validateLogOpts(type: string, opts: Record<string, string>): void {
  if (type === 'none') return;
  const mode = opts.mode ?? '';
  if (mode !== '' && mode !== 'blocking' && mode !== 'non-blocking') throw new Error(`logger: logging mode not supported: ${mode}`);
  if ('max-buffer-size' in opts && mode !== 'non-blocking') throw new Error("logger: max-buffer-size option is only supported with 'mode=non-blocking'");
  if (!(LOG_DRIVERS as readonly string[]).includes(type)) throw new Error(`logger: no log driver named '${type}' is registered`);
  for (const key of Object.keys(opts)) {
    if (BUILTIN_OPTS.includes(key) || ATTR_OPTS.includes(key) || ['max-size', 'max-file', 'compress'].includes(key)) continue;
    throw new Error(type === 'local' ? `unknown log opt '${key}' for log driver local` : `unknown log opt '${key}' for json-file log driver`);
  }
}

/**
 * The container's LogConfig as dockerd's mergeAndVerifyLogConfig makes it: an empty Type takes
 * the daemon's driver, and the daemon's options fill in what a container of the daemon's driver
 * did not set. Throws InvalidParameter (400) for what dockerd refuses, and for option values that
 * dockerd would only refuse at start.
 */
export function resolveLogConfig(req: Partial<LogConfig> | undefined | null, daemonDefault: LogConfig): LogConfig {
  const type = req?.Type || daemonDefault.Type;
  const config: Record<string, string> = { ...(req?.Config ?? {}) };
  if (type === daemonDefault.Type) {
    for (const [k, v] of Object.entries(daemonDefault.Config)) if (!(k in config)) config[k] = v;
  }
  for (const [k, v] of Object.entries(config)) if (typeof v !== 'string') throw invalidParameter(`json: cannot unmarshal ${typeof v} into Go struct field LogConfig.HostConfig.LogConfig.Config of type string (option ${k})`);
  try {
    validateLogOpts(type, config);
    logPolicy({ Type: type, Config: config });
  } catch (err) {
    throw invalidParameter((err as Error).message);
  }
  return { Type: type, Config: config };
}

/** The daemon's default LogConfig (--log-driver/--log-opt, log-driver/log-opts); throws dockerd's start-up error. */
export function daemonLogConfig(driver: unknown, opts: unknown): LogConfig {
  const type = typeof driver === 'string' && driver !== '' ? driver : DEFAULT_LOG_DRIVER;
  const config: Record<string, string> = {};
  if (opts !== undefined && opts !== null) {
    if (typeof opts !== 'object' || Array.isArray(opts)) throw new Error('failed to set log opts: log-opts must be an object of strings');
    for (const [k, v] of Object.entries(opts as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new Error(`failed to set log opts: log-opts value for ${k} must be a string`);
      config[k] = v;
    }
  }
  try {
    if (!(LOG_DRIVERS as readonly string[]).includes(type)) throw new Error(`logger: no log driver named '${type}' is registered`);
    if (Object.keys(config).length > 0) validateLogOpts(type, config);
    logPolicy({ Type: type, Config: config });
  } catch (err) {
    throw new Error(`failed to set log opts: ${(err as Error).message}`);
  }
  return { Type: type, Config: config };
}

/** What a container's labels/env/tag options add to each line under `logs --details`. */
export interface LogAttrContext {
  id: string;
  name: string;
  imageId: string;
  imageName: string;
  labels: Record<string, string>;
  env: string[];
  hostname: string;
  command: string;
}

/** dockerd's ExtraAttributes plus the tag: key → value. */
export function logAttributes(cfg: LogConfig, c: LogAttrContext): Record<string, string> {
  const o = cfg.Config ?? {};
  const out: Record<string, string> = {};
  if (cfg.Type === 'none') return out;
  if (o.labels) for (const l of o.labels.split(',')) if (l in c.labels) out[l] = c.labels[l];
  if (o['labels-regex']) {
    const re = new RegExp(o['labels-regex']);
    for (const [k, v] of Object.entries(c.labels)) if (re.test(k)) out[k] = v;
  }
  const env = new Map<string, string>();
  for (const e of c.env) {
    const i = e.indexOf('=');
    if (i > 0) env.set(e.slice(0, i), e.slice(i + 1));
  }
  if (o.env) for (const k of o.env.split(',')) if (env.has(k)) out[k] = env.get(k)!;
  if (o['env-regex']) {
    const re = new RegExp(o['env-regex']);
    for (const [k, v] of env) if (re.test(k)) out[k] = v;
  }
  if (o.tag) out.tag = expandTag(o.tag, c);
  return out;
}

/** The tag template: dockerd's fields ({{.ID}}, {{.Name}}, ...) in any text. */
function expandTag(tpl: string, c: LogAttrContext): string {
  const image = c.imageId.replace(/^sha256:/, '');
  const fields: Record<string, string> = {
    ID: c.id.slice(0, 12),
    FullID: c.id,
    Name: c.name.replace(/^\//, ''),
    ImageID: image.slice(0, 12),
    ImageFullID: image,
    ImageName: c.imageName,
    DaemonName: 'docker',
    Command: c.command,
    Hostname: c.hostname,
  };
  return tpl.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (m, f: string) => fields[f] ?? m);
}

/** docker's --details prefix: attributes sorted by key, query-escaped, "k=v,k2=v2", then a space. */
export function detailsPrefix(attrs: Record<string, string>): string {
  const esc = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return (
    Object.keys(attrs)
      .sort()
      .map((k) => `${esc(k)}=${esc(attrs[k])}`)
      .join(',') + ' '
  );
}
