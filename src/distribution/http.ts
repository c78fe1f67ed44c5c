// The HTTP layer of the registry client: node's http/https with keep-alive agents (a push of many
// small layers is dominated by per-request cost, so connections are reused), registry error
// bodies parsed into docker's errcode shape, and error messages worded as Go's net/http words them
// ("Get \"https://host/v2/\": ..."), because dockerd passes those through to the user verbatim.
import * as http from 'node:http';
import * as https from 'node:https';
import { Readable } from 'node:stream';

/** One entry of a registry error body: {"errors":[{"code":"MANIFEST_UNKNOWN","message":...}]}. */
export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/**
 * A registry answered with an error status. `message` is docker's rendering of it: for errcode
 * bodies "manifest unknown: manifest unknown" (code lower-cased, then the registry's message).
 */
export class RegistryResponseError extends Error {
  constructor(
    readonly status: number,
    readonly errors: RegistryErrorEntry[],
    message: string,
    /** True when the 401/403 came with a Bearer challenge saying insufficient_scope (Docker Hub's "denied"). */
    readonly insufficientScope = false,
  ) {
    super(message);
    this.name = 'RegistryResponseError';
  }

  get code(): string | undefined {
    return this.insufficientScope ? 'DENIED' : this.errors[0]?.code;
  }
}

/** A request never got an HTTP answer (refused, reset, TLS failure, timeout). */
export class RegistryConnectionError extends Error {
  constructor(message: string, cause: unknown, readonly tlsProblem: boolean) {
    super(message, { cause });
    this.name = 'RegistryConnectionError';
  }
}

/** Go's url.Error operation names: "Get", "Head", "Put", ... */
export function goOp(method: string): string {
  return method.charAt(0).toUpperCase() + method.slice(1).toLowerCase();
}

export function errcodeText(code: string): string {
  return code.toLowerCase().replace(/_/g, ' ');
}

/** Reads a whole (small) response body; refuses more than limit bytes. */
export async function readAll(res: Readable, limit = 32 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > limit) {
      res.destroy();
      throw new Error(`response body exceeds ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Turns an error response into a RegistryResponseError, the way docker's client reads them. */
export async function responseError(res: http.IncomingMessage): Promise<RegistryResponseError> {
  const status = res.statusCode ?? 0;
  let body: Buffer = Buffer.alloc(0);
  try {
    body = await readAll(res, 1 << 20);
  } catch {
    // An unreadable body still leaves the status to report.
  }
  const statusLine = `${status} ${http.STATUS_CODES[status] ?? ''}`.trim();
  let insufficientScope = false;
  let challengeError: RegistryErrorEntry | undefined;
  const auth = res.headers['www-authenticate'];
  if (auth && (status === 401 || status === 403)) {
    for (const c of parseChallenges(Array.isArray(auth) ? auth.join(', ') : auth)) {
      if (c.scheme !== 'bearer') continue;
      if (c.params.error === 'insufficient_scope') {
        insufficientScope = true;
        challengeError = { code: 'DENIED', message: c.params.error_description || 'requested access to the resource is denied' };
      } else if (c.params.error === 'invalid_token') {
        challengeError = { code: 'UNAUTHORIZED', message: c.params.error_description || 'authentication required' };
      }
    }
  }
  let parsed: { errors?: RegistryErrorEntry[]; details?: string } | undefined;
  try {
    parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  let errors: RegistryErrorEntry[] = [];
  if (parsed && typeof parsed.details === 'string' && parsed.details !== '') {
    // Token servers (Docker Hub's) answer {"details": "..."}.
    errors = [{ code: status === 401 ? 'UNAUTHORIZED' : status === 429 ? 'TOOMANYREQUESTS' : 'UNKNOWN', message: parsed.details }];
  } else if (parsed && Array.isArray(parsed.errors)) {
    errors = parsed.errors.filter((e) => e && typeof e.code === 'string').map((e) => ({ code: e.code, message: String(e.message ?? ''), detail: e.detail }));
  }
  if (challengeError) errors = [challengeError, ...errors.filter((e) => e.code !== challengeError!.code)];
  if (errors.length === 0 && status === 401) errors = [{ code: 'UNAUTHORIZED', message: 'authentication required' }];
  const first = errors[0];
  const message = first ? `${errcodeText(first.code)}: ${first.message}` : `received unexpected HTTP status: ${statusLine}`;
  return new RegistryResponseError(status, errors, message, insufficientScope);
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses WWW-Authenticate: `Bearer realm="...",service="...",scope="..."` (several challenges allowed). */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i])) i++;
    return s.slice(start, i);
  };
  while (i < s.length) {
    skipWs();
    while (s[i] === ',') {
      i++;
      skipWs();
    }
    const scheme = token();
    if (!scheme) break;
    const c: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(c);
    for (;;) {
      skipWs();
      const save = i;
      const key = token();
      skipWs();
      if (!key || s[i] !== '=') {
        // Not a parameter: the start of the next challenge (or garbage).
        i = save;
        break;
      }
      i++;
      skipWs();
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++;
      } else {
        value = token();
      }
      c.params[key.toLowerCase()] = value;
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      break;
    }
  }
  return out;
}

export interface RequestOptions {
  method: string;
  url: URL;
  headers?: Record<string, string | number>;
  /** A Buffer is resent on a retry; a stream is sent once. */
  body?: Buffer | Readable;
  signal?: AbortSignal;
  /** Skip certificate verification (--insecure-registry over https). */
  insecureTLS?: boolean;
  /** Idle time on the socket before the request fails. */
  timeoutMs?: number;
}

/** Passed through the agent to net.Socket, which @types/node's RequestOptions does not show. */
const socketOptions = { highWaterMark: 4 << 20 } as object;

const TLS_CODES = /^(ERR_SSL|ERR_TLS|EPROTO|CERT_|UNABLE_TO|SELF_SIGNED|DEPTH_ZERO|ERR_OSSL)/;

/** Keep-alive connection pools, one set per registry client. */
export class HttpPools {
  private readonly http = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16, scheduling: 'lifo' });
  private readonly https = new https.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16, scheduling: 'lifo' });
  private readonly httpsInsecure = new https.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16, scheduling: 'lifo', rejectUnauthorized: false });

  /** Sends a request and resolves with the response head; the caller consumes or drops the body. */
  async request(opts: RequestOptions): Promise<http.IncomingMessage> {
    // A request on a pooled connection the server has just closed fails at once; that (and only
    // that, for bodies that can be replayed) is retried on a fresh connection.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(opts);
      } catch (err) {
        const e = err as { reusedSocket?: boolean; code?: string };
        const replayable = opts.body === undefined || Buffer.isBuffer(opts.body);
        if (attempt === 0 && replayable && e.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) continue;
        throw this.wrap(opts, err);
      }
    }
  }

  private wrap(opts: RequestOptions, err: unknown): Error {
    if (opts.signal?.aborted) return abortError(opts.signal);
    const e = err as NodeJS.ErrnoException;
    let detail = e.message;
    if (e.code === 'ECONNREFUSED') detail = `dial tcp ${opts.url.host}: connect: connection refused`;
    else if (e.code === 'ENOTFOUND') detail = `dial tcp: lookup ${opts.url.hostname}: no such host`;
    const url = opts.url.toString();
    return new RegistryConnectionError(`${goOp(opts.method)} "${url}": ${detail}`, err, TLS_CODES.test(e.code ?? '') || /SSL|TLS|certificate/i.test(e.message));
  }

  private once(opts: RequestOptions): Promise<http.IncomingMessage> {
    const isHttps = opts.url.protocol === 'https:';
    const mod = isHttps ? https : http;
    const agent = isHttps ? (opts.insecureTLS ? this.httpsInsecure : this.https) : this.http;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { ...opts.headers };
      if (Buffer.isBuffer(opts.body)) headers['Content-Length'] = opts.body.length;
      // A large socket buffer lets a layer download read ahead while the main thread extracts
      // (the agent hands this to the socket it creates).
      const req = mod.request(opts.url, { method: opts.method, headers, agent, signal: opts.signal, timeout: opts.timeoutMs ?? 120_000, ...socketOptions }, (res) => {
        // The timeout guards the whole exchange, body included: a stalled download fails too.
        resolve(res);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('i/o timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      const body = opts.body;
      if (body === undefined || Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }

  destroy(): void {
    this.http.destroy();
    this.https.destroy();
    this.httpsInsecure.destroy();
  }
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error('context canceled'), { name: 'AbortError' });
}

/** Drops a response body so its connection returns to the pool. */
export function discard(res: http.IncomingMessage): void {
  res.resume();
}
