// The berth client's connection to berthd: plain JSON requests on versioned paths, streamed
// replies (JSON-lines progress, raw logs), hijacked connections for attach/exec (HTTP upgrade to a
// raw bidirectional stream), and docker's stdcopy framing that multiplexes stdout and stderr on
// one stream when there is no TTY.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as https from 'node:https';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { setSocketSendBuffer } from '../native';

/** The send buffer of a request with a streamed body (the kernel doubles it). */
const STREAM_SEND_BUFFER = 4 << 20;

export const CLIENT_API_VERSION = '1.50';
export const DEFAULT_HOST = 'unix:///run/berth.sock';

/** -H/--host first, then BERTH_HOST, then DOCKER_HOST, then the default socket. */
export function resolveHost(flagHost: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flagHost || env.BERTH_HOST || env.DOCKER_HOST || DEFAULT_HOST;
}

export interface HostAddress {
  raw: string;
  socketPath?: string;
  hostname?: string;
  port?: number;
}

export function parseHost(raw: string): HostAddress {
  const m = /^([a-z]+):\/\/(.*)$/.exec(raw);
  if (!m) throw new UsageError(`unable to parse docker host \`${raw}\``);
  const [, proto, rest] = m;
  if (proto === 'unix') {
    if (!rest.startsWith('/')) throw new UsageError(`invalid host ${raw}: unix socket path must be absolute`);
    return { raw, socketPath: rest };
  }
  if (proto === 'tcp' || proto === 'http') {
    const hm = /^(\[[^\]]+\]|[^:/]*)(?::(\d+))?\/?$/.exec(rest);
    if (!hm) throw new UsageError(`invalid host ${raw}`);
    return { raw, hostname: (hm[1] || '127.0.0.1').replace(/^\[|\]$/g, ''), port: hm[2] ? Number(hm[2]) : 2375 };
  }
  throw new UsageError(`invalid host ${raw}: unsupported protocol ${proto}`);
}

/** An error the daemon answered with; printed as "Error response from daemon: <message>". */
export class DaemonError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The daemon could not be reached at all. */
export class ConnectError extends Error {}

/** Bad command-line input found by the client itself (printed with the command's usage hint). */
export class UsageError extends Error {}

/** A JSON message of a progress stream (pull, load, import, push) that carried an error. */
export class StreamError extends Error {}

export type QueryValue = string | number | boolean | string[] | undefined | null;

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  /** A JSON value (sent as application/json), a Buffer, a stream sent as is, or a BodyWriter. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Hijacked {
  /** The raw connection after the 101 response: read the container's output, write its stdin. */
  socket: net.Socket;
  /** Bytes the daemon sent right after its response headers. */
  head: Buffer;
  response: http.IncomingMessage;
}

/** docker's filters query value: {"key":{"value":true}} from -f key=value flags. */
export function filtersParam(list: string[]): string | undefined {
  if (list.length === 0) return undefined;
  const out: Record<string, Record<string, boolean>> = {};
  for (const f of list) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new UsageError(`bad format of filter (expected name=value)`);
    const key = f.slice(0, eq).trim().toLowerCase();
    (out[key] ??= {})[f.slice(eq + 1).trim()] = true;
  }
  return JSON.stringify(out);
}

export function buildQuery(query: Record<string, QueryValue> | undefined): string {
  if (!query) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const item of v) p.append(k, item);
    else p.append(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

// ---- TLS to a tcp:// daemon (berthd --tlsverify): the client side of mutual TLS ----

/** The CA that signed the daemon's certificate, and this client's certificate and key. */
export interface ClientTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/**
 * docker's environment for TLS: DOCKER_TLS_VERIFY (or BERTH_TLS_VERIFY) non-empty means ca.pem,
 * cert.pem and key.pem from DOCKER_CERT_PATH (BERTH_CERT_PATH; default ~/.docker). Undefined
 * when TLS is not asked for.
 */
export function clientTlsFromEnv(env: NodeJS.ProcessEnv = process.env): ClientTls | undefined {
  if (!(env.BERTH_TLS_VERIFY || env.DOCKER_TLS_VERIFY)) return undefined;
  const dir = env.BERTH_CERT_PATH || env.DOCKER_CERT_PATH || nodePath.join(os.homedir(), '.docker');
  const read = (what: string, file: string): Buffer => {
    const p = nodePath.join(dir, file);
    try {
      return fs.readFileSync(p);
    } catch (err) {
      throw new UsageError(`could not read ${what} "${p}": ${(err as Error).message.replace(/^ENOENT: /, '')}`);
    }
  };
  return { ca: read('CA certificate', 'ca.pem'), cert: read('X509 key pair certificate', 'cert.pem'), key: read('X509 key pair key', 'key.pem') };
}

export class ApiClient {
  readonly address: HostAddress;
  /** Set for a tcp:// daemon when TLS is asked for (clientTlsFromEnv by default). */
  readonly tls?: ClientTls;

  constructor(readonly host: string, readonly version: string = CLIENT_API_VERSION, tls?: ClientTls) {
    this.address = parseHost(host);
    if (!this.address.socketPath) this.tls = tls ?? clientTlsFromEnv();
  }

  /** http, or https with our certificate for a TLS daemon. */
  private transport(): { request(options: https.RequestOptions): http.ClientRequest } {
    // node:https is loaded only for a TLS daemon (it costs ~8 ms of start-up).
    return this.tls ? (require('node:https') as typeof https) : http;
  }

  private requestOptions(method: string, path: string, opts: RequestOptions): { options: http.RequestOptions; payload?: Buffer | Readable | BodyWriter } {
    const headers: Record<string, string> = { 'User-Agent': 'berth-cli/0.1.0', ...(opts.headers ?? {}) };
    let payload: Buffer | Readable | BodyWriter | undefined;
    const body = opts.body;
    if (isStream(body) || isBodyWriter(body)) {
      payload = body;
      headers['Content-Type'] ??= 'application/x-tar';
    } else if (Buffer.isBuffer(body)) {
      payload = body;
      headers['Content-Length'] = String(body.length);
    } else if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body));
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const fullPath = `/v${this.version}${path}${buildQuery(opts.query)}`;
    const a = this.address;
    const options: https.RequestOptions = a.socketPath
      ? { socketPath: a.socketPath, method, path: fullPath, headers }
      : { host: a.hostname, port: a.port, method, path: fullPath, headers, ...(this.tls ? { ca: this.tls.ca, cert: this.tls.cert, key: this.tls.key } : {}) };
    return { options, payload };
  }

  private connectError(err: NodeJS.ErrnoException): Error {
    if (err.code === 'EACCES') {
      return new ConnectError(`permission denied while trying to connect to the berth daemon socket at ${this.host}: ${err.message}`);
    }
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' || err.code === 'ECONNRESET') {
      return new ConnectError(`Cannot connect to the berth daemon at ${this.host}. Is the berth daemon running?`);
    }
    return err;
  }

  /** Sends a request; resolves with the response once its headers arrive. Non-2xx replies throw. */
  request(method: string, path: string, opts: RequestOptions = {}): Promise<http.IncomingMessage> {
    const { options, payload } = this.requestOptions(method, path, opts);
    return new Promise((resolve, reject) => {
      const req = this.transport().request(options);
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 400) {
          readAll(res).then((buf) => reject(new DaemonError(status, errorMessage(buf, status))), reject);
          return;
        }
        resolve(res);
      });
      let payloadError: Error | undefined;
      req.on('error', (err) => reject(payloadError ?? this.connectError(err)));
      if (isStream(payload) || isBodyWriter(payload)) {
        // A streamed body (a tar for cp, a build context) runs megabytes ahead of the daemon
        // rather than in ~200 KB turns (see setSocketSendBuffer).
        req.once('socket', (sock) => {
          if (sock.connecting) sock.once('connect', () => setSocketSendBuffer(sock, STREAM_SEND_BUFFER));
          else setSocketSendBuffer(sock, STREAM_SEND_BUFFER);
        });
      }
      if (isBodyWriter(payload)) {
        payload.writeTo(req).catch((err: Error) => {
          payloadError ??= err;
          req.destroy(err);
        });
      } else if (isStream(payload)) {
        payload.on('error', (err: Error) => {
          payloadError = err;
          req.destroy(err);
        });
        payload.pipe(req);
      } else req.end(payload);
    });
  }

  /** A request whose reply body is JSON (or empty: undefined). */
  async json<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    const buf = await readAll(res);
    if (buf.length === 0) return undefined as T;
    try {
      return JSON.parse(buf.toString()) as T;
    } catch {
      throw new Error(`invalid JSON from daemon for ${method} ${path}: ${buf.toString().slice(0, 200)}`);
    }
  }

  /** A request whose reply body is ignored (204s, 304s, "OK"). */
  async call(method: string, path: string, opts: RequestOptions = {}): Promise<number> {
    const res = await this.request(method, path, opts);
    await readAll(res);
    return res.statusCode ?? 0;
  }

  /**
   * Upgrades the connection (Connection: Upgrade, Upgrade: tcp) as docker's hijack does; after the
   * daemon's 101 the socket carries the container's streams both ways.
   */
  hijack(method: string, path: string, opts: RequestOptions = {}): Promise<Hijacked> {
    const { options, payload } = this.requestOptions(method, path, {
      ...opts,
      headers: { ...(opts.headers ?? {}), Connection: 'Upgrade', Upgrade: 'tcp' },
    });
    return new Promise((resolve, reject) => {
      const req = this.transport().request(options);
      req.on('upgrade', (res, socket, head) => {
        socket.setNoDelay(true);
        resolve({ socket: socket as net.Socket, head, response: res });
      });
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        // A daemon that does not upgrade still answers: an error, or a plain stream.
        readAll(res).then((buf) => reject(status >= 400 ? new DaemonError(status, errorMessage(buf, status)) : new Error(`daemon did not upgrade the connection (HTTP ${status})`)), reject);
      });
      req.on('error', (err) => reject(this.connectError(err)));
      if (isStream(payload)) payload.pipe(req);
      else if (isBodyWriter(payload)) payload.writeTo(req).catch((err: Error) => req.destroy(err));
      else req.end(payload);
    });
  }
}

/** Opens a file for a request body; errors read as Go's ("open /x: no such file or directory"). */
export function openInput(file: string): fs.ReadStream {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const reason = err.code === 'ENOENT' ? 'no such file or directory' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new Error(`open ${file}: ${reason}`);
  }
  return fs.createReadStream(file, { fd });
}

/**
 * A request body that writes itself to the request and ends it (a tar whose chunks are reused
 * once written, cli/commands/cp.ts packPath); rejects if it fails.
 */
export interface BodyWriter {
  writeTo(dest: Writable): Promise<void>;
}

function isBodyWriter(v: unknown): v is BodyWriter {
  return typeof v === 'object' && v !== null && !isStream(v) && typeof (v as { writeTo?: unknown }).writeTo === 'function';
}

/** Node streams and streamx streams (tar-stream's pack) alike. */
function isStream(v: unknown): v is Readable {
  return v instanceof Readable || (typeof v === 'object' && v !== null && typeof (v as { pipe?: unknown }).pipe === 'function');
}

function errorMessage(buf: Buffer, status: number): string {
  const text = buf.toString().trim();
  if (!text) return `${status} ${http.STATUS_CODES[status] ?? ''}`.trim();
  try {
    const j = JSON.parse(text) as { message?: unknown };
    if (typeof j.message === 'string') return j.message;
  } catch {}
  return text;
}

export function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/** Calls onMessage for each JSON value of a newline-delimited stream. */
export function readJSONLines(stream: NodeJS.ReadableStream, onMessage: (m: Record<string, unknown>) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let failed = false;
    const handle = (line: string): void => {
      if (!line.trim() || failed) return;
      try {
        onMessage(JSON.parse(line) as Record<string, unknown>);
      } catch (err) {
        failed = true;
        reject(err);
      }
    };
    stream.setEncoding?.('utf8');
    stream.on('data', (chunk: string | Buffer) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        handle(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    stream.on('end', () => {
      handle(buf);
      if (!failed) resolve();
    });
    stream.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------
// stdcopy

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
/** Stream byte 3: an error from the daemon's side of the stream (docker's Systemerr). */
export const SYSTEMERR = 3;

/**
 * Splits docker's multiplexed stream: frames of an 8-byte header (stream byte, three zero bytes,
 * big-endian uint32 payload length) and the payload. Frames may arrive split across chunks.
 */
export class StdcopyDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    while (this.pending.length - off >= 8) {
      const stream = this.pending[off];
      if (stream > SYSTEMERR || this.pending[off + 1] !== 0 || this.pending[off + 2] !== 0 || this.pending[off + 3] !== 0) {
        throw new Error(`Unrecognized input header: ${stream}`);
      }
      const len = this.pending.readUInt32BE(off + 4);
      if (this.pending.length - off - 8 < len) break;
      this.onFrame(stream, this.pending.subarray(off + 8, off + 8 + len));
      off += 8 + len;
    }
    this.pending = this.pending.subarray(off);
  }

  /** Bytes of an incomplete frame left at the end of the stream. */
  get leftover(): number {
    return this.pending.length;
  }
}

/** One stdcopy frame, as the daemon writes them (used by tests and any client-side muxing). */
export function stdcopyFrame(stream: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/**
 * Copies a multiplexed stream to stdout/stderr until it ends, honouring backpressure. A
 * SYSTEMERR frame rejects with the daemon's message.
 */
export function demuxStream(src: NodeJS.ReadableStream, stdout: Writable, stderr: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    let sysErr: string | undefined;
    const demux = new StdcopyDemuxer((stream, payload) => {
      if (stream === SYSTEMERR) {
        sysErr = (sysErr ?? '') + payload.toString();
        return;
      }
      const dst = stream === STDERR ? stderr : stdout;
      if (!dst.write(Buffer.from(payload))) {
        src.pause();
        dst.once('drain', () => src.resume());
      }
    });
    src.on('data', (c: Buffer) => {
      try {
        demux.push(c);
      } catch (err) {
        reject(err);
        (src as Readable).destroy?.();
      }
    });
    src.on('end', () => (sysErr !== undefined ? reject(new DaemonError(500, sysErr)) : resolve()));
    src.on('close', () => (sysErr !== undefined ? reject(new DaemonError(500, sysErr)) : resolve()));
    src.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve() : reject(err)));
  });
}

// ---------------------------------------------------------------------------------------------
// JSON progress streams (pull, load, import, push)

export interface JSONMessage {
  id?: string;
  status?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  stream?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: unknown;
}

/**
 * Renders a progress stream as docker's jsonmessage does: on a terminal, lines keyed by "id" are
 * rewritten in place; otherwise each message is its own line. A message with "error" ends the
 * stream with that error (StreamError). aux messages go to onAux.
 */
export async function displayJSONMessages(stream: NodeJS.ReadableStream, out: Writable & { isTTY?: boolean }, onAux?: (aux: unknown) => void): Promise<void> {
  const tty = Boolean(out.isTTY);
  const lines = new Map<string, number>();
  let lineCount = 0;
  let error: string | undefined;
  await readJSONLines(stream, (raw) => {
    const m = raw as JSONMessage;
    if (m.error || m.errorDetail?.message) {
      error ??= m.errorDetail?.message || m.error;
      return;
    }
    if (m.aux !== undefined) {
      onAux?.(m.aux);
      return;
    }
    if (m.stream !== undefined) {
      out.write(m.stream);
      if (tty) lines.clear();
      return;
    }
    if (m.status === undefined) return;
    // As docker's jsonmessage: a progress bar (progressDetail with a position) is for terminals;
    // a pipe gets only the other lines.
    if (!tty && ((m.progressDetail?.current ?? 0) > 0 || (m.progressDetail?.total ?? 0) > 0)) return;
    const text = `${m.id ? `${m.id}: ` : ''}${m.status}${m.progress ? ` ${m.progress}` : ''}`;
    if (tty && m.id) {
      const at = lines.get(m.id);
      if (at === undefined) {
        lines.set(m.id, lineCount++);
        out.write(`${text}\n`);
      } else {
        const up = lineCount - at;
        out.write(`\x1b[${up}A\r\x1b[2K${text}\x1b[${up}B\r`);
      }
    } else {
      out.write(`${text}\n`);
      if (tty) lineCount++;
    }
  });
  if (error !== undefined) throw new StreamError(error);
}
