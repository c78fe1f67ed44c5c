// Wire formats of attach, exec and logs: docker's stdcopy multiplexing (an 8-byte header per
// frame: stream, 0, 0, 0, big-endian length), detach key sequences, and taking over ("hijacking")
// the HTTP connection for a bidirectional stream.
import type { Duplex } from 'node:stream';
import { invalidParameter } from '../common/errors';
import type { RequestContext } from '../api/router';

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;

/** One stdcopy frame. Large payloads are split so a frame stays within docker's 32 KiB reads. */
export function stdcopyFrame(stream: number, data: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

/** Where an OutputBatcher writes: one buffer at a time, or a list in one go (a writev). */
export type OutputSink = ((b: Buffer) => void) | { writev(bufs: Buffer[]): void };

/**
 * Gathers output into few large writes. conmon forwards a container's output in packets of
 * whatever the process wrote (often 1-4 KiB), and a frame plus a socket write per packet made a
 * chatty container's output cost more in berthd than in the container. Consecutive data of one
 * stream becomes one stdcopy frame (clients demultiplex by stream, not by frame), flushed once
 * the event loop has delivered what arrived together, or at 64 KiB. With tty, data goes raw.
 * A sink with writev gets the frame header and the packets as they are (one writev(2), no
 * copy in berthd); a plain one gets them copied into one buffer.
 */
export class OutputBatcher {
  private parts: Buffer[] = [];
  private stream = -1;
  private size = 0;
  private scheduled = false;

  constructor(private readonly sink: OutputSink, private readonly tty: boolean, private readonly limit = 64 * 1024) {}

  push(stream: number, data: Buffer): void {
    if (data.length === 0) return;
    if (this.size > 0 && stream !== this.stream && !this.tty) this.flush();
    this.stream = stream;
    this.parts.push(data);
    this.size += data.length;
    if (this.size >= this.limit) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Writes what is held; call it before ending the connection. */
  flush(): void {
    if (this.size === 0) return;
    const parts = this.parts;
    const size = this.size;
    this.parts = [];
    this.size = 0;
    if (typeof this.sink !== 'function') {
      this.sink.writev(this.tty ? parts : [frameHeader(this.stream, size), ...parts]);
      return;
    }
    if (this.tty) {
      this.sink(parts.length === 1 ? parts[0] : Buffer.concat(parts, size));
      return;
    }
    // The frame header and the data in one buffer, copied once (not concatenated, then framed).
    const frame = Buffer.allocUnsafe(8 + size);
    frame.writeUInt32BE(this.stream << 24, 0);
    frame.writeUInt32BE(size, 4);
    let off = 8;
    for (const p of parts) off += p.copy(frame, off);
    this.sink(frame);
  }
}

function frameHeader(stream: number, size: number): Buffer {
  const h = Buffer.allocUnsafe(8);
  h.writeUInt32BE(stream << 24, 0);
  h.writeUInt32BE(size, 4);
  return h;
}

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** docker's detach key syntax ("ctrl-p,ctrl-q", "ctrl-@", "a") → bytes. */
export function parseDetachKeys(spec: string): Buffer {
  const out: number[] = [];
  for (const key of spec.split(',')) {
    const k = key.trim();
    if (k.length > 1 && k.startsWith('ctrl-')) {
      const c = k.slice(5).toLowerCase();
      if (c.length !== 1) throw invalidParameter(`Invalid detach keys (${spec}) provided: Unknown character: '${k}'`);
      const code = c.charCodeAt(0);
      if (code >= 0x61 && code <= 0x7a) out.push(code - 0x60);
      else if (c === '@') out.push(0);
      else if (c === '[') out.push(27);
      else if (c === '\\') out.push(28);
      else if (c === ']') out.push(29);
      else if (c === '^') out.push(30);
      else if (c === '_') out.push(31);
      else throw invalidParameter(`Invalid detach keys (${spec}) provided: Unknown character: '${k}'`);
    } else if (k.length === 1) {
      out.push(k.charCodeAt(0));
    } else {
      throw invalidParameter(`Invalid detach keys (${spec}) provided: Unknown character: '${k}'`);
    }
  }
  return Buffer.from(out);
}

/**
 * Watches stdin for the detach sequence. feed() returns the bytes to pass on (a partial match is
 * held back until it completes or breaks) and whether the sequence completed.
 */
export class DetachMatcher {
  private held: number[] = [];

  constructor(private readonly keys: Buffer) {}

  feed(chunk: Buffer): { pass: Buffer; detach: boolean } {
    if (this.keys.length === 0) return { pass: chunk, detach: false };
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.held.length]) {
        this.held.push(b);
        if (this.held.length === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      out.push(...this.held);
      this.held = [];
      if (b === this.keys[0]) this.held.push(b);
      else out.push(b);
    }
    return { pass: Buffer.from(out), detach: false };
  }
}

/** The client side of a hijacked connection, whichever way it was taken over. */
export interface HijackedConn {
  write(data: Buffer): void;
  /** Writes the buffers in one go (corked: one writev(2)). */
  writev(bufs: Buffer[]): void;
  /** Ends the connection (both directions). */
  end(): void;
  readonly closed: boolean;
  on(event: 'data', fn: (b: Buffer) => void): void;
  /** The client closed its sending side (stdin EOF). */
  on(event: 'inputEnd', fn: () => void): void;
  /** The connection went away. */
  on(event: 'close', fn: () => void): void;
}

/**
 * Takes over the connection: with Upgrade: tcp, answers 101 and owns the raw socket; otherwise
 * answers 200 and streams the response (a plain POST attach has no stdin).
 */
export function hijack(ctx: RequestContext, contentType: string): HijackedConn {
  if (ctx.upgrade) {
    const sock: Duplex = ctx.upgrade.socket;
    sock.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    const head = ctx.upgrade.head;
    let closed = false;
    const closeFns: (() => void)[] = [];
    const conn: HijackedConn = {
      write: (d) => {
        if (!closed && !sock.destroyed && sock.writable) sock.write(d);
      },
      writev: (bufs) => {
        if (closed || sock.destroyed || !sock.writable) return;
        sock.cork();
        for (const b of bufs) sock.write(b);
        sock.uncork();
      },
      end: () => {
        if (closed) return;
        closed = true;
        sock.end();
        setTimeout(() => sock.destroy(), 2000).unref();
      },
      get closed() {
        return closed;
      },
      on: (event: string, fn: (b?: Buffer) => void) => {
        if (event === 'data') {
          // The bytes that came with the request go first: this tick is queued before resume()'s.
          if (head.length > 0) process.nextTick(() => fn(head));
          sock.on('data', fn);
          // readUpgradeBody may have paused the socket after reading the request body; a new
          // 'data' listener does not undo an explicit pause, so stdin would never flow.
          sock.resume();
        } else if (event === 'inputEnd') sock.on('end', fn as () => void);
        else if (event === 'close') closeFns.push(fn as () => void);
      },
    } as HijackedConn;
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      for (const f of closeFns) f();
    });
    return conn;
  }
  const { res, req } = ctx;
  res.writeHead(200, { 'Content-Type': contentType });
  res.flushHeaders();
  let closed = false;
  return {
    write: (d) => {
      if (!closed && !res.writableEnded) res.write(d);
    },
    writev: (bufs) => {
      if (closed || res.writableEnded) return;
      res.cork();
      for (const b of bufs) res.write(b);
      res.uncork();
    },
    end: () => {
      closed = true;
      if (!res.writableEnded) res.end();
    },
    get closed() {
      return closed;
    },
    on: (event: string, fn: (b?: Buffer) => void) => {
      if (event === 'data') req.on('data', fn);
      else if (event === 'inputEnd') req.on('end', fn as () => void);
      else if (event === 'close') res.on('close', fn as () => void);
    },
  } as HijackedConn;
}
