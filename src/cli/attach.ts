// Streaming a container's (or exec's) stdio over a hijacked connection: output to our stdout and
// stderr (raw with a TTY, stdcopy-demultiplexed without), our stdin to the container, the local
// terminal in raw mode while attached to a TTY, window-size changes forwarded, and signals
// proxied to the container when there is no TTY (docker's --sig-proxy).
import type { Hijacked } from './client';
import { StdcopyDemuxer, STDERR, SYSTEMERR, DaemonError } from './client';
import type { CommandContext } from './command';

export interface PumpOptions {
  tty: boolean;
  /** Send our stdin to the container. */
  stdin: boolean;
  /** Send output to our stdout/stderr (false for `start` without -a). */
  output?: boolean;
  /** The detach sequence in effect (--detach-keys, default ctrl-p,ctrl-q). */
  detachKeys?: string;
}

export interface PumpResult {
  /** The stream ended right after we sent the detach keys: the container runs on. */
  detached: boolean;
}

/** docker's detach-keys syntax: comma-separated single characters or ctrl-<key>. */
export function parseDetachKeys(spec: string): Buffer {
  const out: number[] = [];
  for (const key of spec.split(',')) {
    const k = key.trim();
    if (k.length === 1) out.push(k.charCodeAt(0));
    else if (/^ctrl-[a-z@[\\\]^_]$/.test(k)) {
      const c = k[5];
      out.push(c >= 'a' && c <= 'z' ? c.charCodeAt(0) - 96 : { '@': 0, '[': 27, '\\': 28, ']': 29, '^': 30, _: 31 }[c]!);
    } else throw new Error(`Unknown character: '${k}'`);
  }
  return Buffer.from(out);
}

/**
 * libuv's raw mode leaves output post-processing on, so the container's own "\r\n" would print
 * as "\r\r\n"; docker's raw mode clears OPOST. Restoring stdin's mode restores it too (same tty).
 */
function rawTerminalOutput(stdout: { isTTY?: boolean }): void {
  const fd = (stdout as { fd?: unknown }).fd;
  if (!stdout.isTTY || typeof fd !== 'number') return;
  try {
    // Loaded here, not at the top: the client needs the addon only for an interactive TTY.
    (require('../native') as typeof import('../native')).ttyRawOutput(fd);
  } catch { /* output stays as libuv left it: cosmetic only */ }
}

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/**
 * Copies the streams until the daemon ends the connection (the process exited, or the detach
 * keys were typed). Our stdin ending half-closes the connection, as docker's CloseWrite.
 */
export function pumpHijacked(ctx: CommandContext, h: Hijacked, opts: PumpOptions): Promise<PumpResult> {
  const { socket, head } = h;
  const { stdout, stderr, stdin } = ctx.io;
  let restoreTerminal = (): void => {};
  let sysErr: string | undefined;
  const demux = new StdcopyDemuxer((stream, payload) => {
    if (stream === SYSTEMERR) sysErr = (sysErr ?? '') + payload.toString();
    else (stream === STDERR ? stderr : stdout).write(Buffer.from(payload));
  });
  const onOutput = (chunk: Buffer): void => {
    if (opts.output === false) return;
    if (opts.tty) stdout.write(chunk);
    else demux.push(chunk);
  };
  // The daemon acts on the detach keys; we only remember what we sent last, to tell a detach
  // from an exit when the stream ends.
  const detachSeq = parseDetachKeys(opts.detachKeys || DEFAULT_DETACH_KEYS);
  let sentTail = Buffer.alloc(0);
  const onStdin = (d: Buffer): void => {
    if (socket.destroyed) return;
    socket.write(d);
    sentTail = Buffer.concat([sentTail, d]).subarray(-Math.max(detachSeq.length, 1));
  };
  const onStdinEnd = (): void => {
    if (!socket.destroyed) socket.end();
  };
  if (opts.stdin) {
    if (opts.tty && stdin.isTTY && stdin.setRawMode) {
      stdin.setRawMode(true);
      restoreTerminal = () => stdin.setRawMode?.(false);
      rawTerminalOutput(stdout);
    }
    stdin.on('data', onStdin);
    stdin.on('end', onStdinEnd);
    stdin.resume();
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      restoreTerminal();
      if (opts.stdin) {
        stdin.off('data', onStdin);
        stdin.off('end', onStdinEnd);
        stdin.pause();
      }
      if (err) reject(err);
      else if (sysErr !== undefined) reject(new DaemonError(500, sysErr.trim()));
      else resolve({ detached: opts.stdin && detachSeq.length > 0 && sentTail.equals(detachSeq) });
    };
    try {
      if (head.length) onOutput(head);
    } catch (e) {
      finish(e as Error);
      return;
    }
    socket.on('data', (c: Buffer) => {
      try {
        onOutput(c);
      } catch (e) {
        socket.destroy();
        finish(e as Error);
      }
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : e));
  });
}

/** Sends the terminal size now and on every SIGWINCH; returns the function that stops it. */
export function monitorTtySize(ctx: CommandContext, resizePath: string): () => void {
  const out = ctx.io.stdout;
  if (!out.isTTY) return () => {};
  const send = (): void => {
    const h = out.rows ?? 0;
    const w = out.columns ?? 0;
    if (h > 0 && w > 0) ctx.client.call('POST', resizePath, { query: { h, w } }).catch(() => {});
  };
  send();
  process.on('SIGWINCH', send);
  return () => process.off('SIGWINCH', send);
}

const PROXIED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Forwards the signals this client receives to the container (docker's --sig-proxy). */
export function proxySignals(ctx: CommandContext, container: string): () => void {
  const handlers = PROXIED_SIGNALS.map((sig) => {
    const h = (): void => {
      ctx.client.call('POST', `/containers/${encodeURIComponent(container)}/kill`, { query: { signal: sig } }).catch(() => {});
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}
