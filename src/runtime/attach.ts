// Client side of conmon's attach socket (SOCK_SEQPACKET). Every packet conmon sends starts with
// one byte naming the stream (2 = stdout, 3 = stderr); what the client sends is the container's
// stdin, raw. A zero-length read on conmon's side (our half-close) closes the container's stdin
// unless conmon was started with --leave-stdin-open.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import type { SeqpacketSocket } from 'node-unix-socket';

const STREAM_STDOUT = 2;
const STREAM_STDERR = 3;
/** conmon reads stdin packets into a 32 KiB buffer less one byte; a longer packet would be cut. */
const MAX_STDIN_PACKET = 32 * 1024 - 1;
/**
 * The receive buffer for conmon's packets. node-unix-socket allocates its whole read buffer for
 * every packet received (256 KiB by default), which made that allocation, not the data, the
 * cost of a chatty container's output. conmon reads the container's output 8 KiB at a time and
 * sends that as one packet (plus the stream byte); a packet longer than this buffer would be cut,
 * so it keeps a wide margin.
 */
const ATTACH_READ_BUFFER = 32 * 1024;
/** sockaddr_un.sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export interface AttachEvents {
  stdout: [Buffer];
  stderr: [Buffer];
  /** conmon closed the connection: the process exited and its output is drained. */
  end: [];
  error: [Error];
}

/** A connection to a container's (or exec's) stdio through conmon. */
export class AttachStream extends EventEmitter<AttachEvents> {
  private ended = false;
  private stdinClosed = false;

  constructor(private readonly sock: SeqpacketSocket) {
    super();
    sock.on('data', (buf: Buffer) => {
      if (buf.length < 1) return;
      const data = buf.subarray(1);
      if (buf[0] === STREAM_STDOUT) this.emit('stdout', data);
      else if (buf[0] === STREAM_STDERR) this.emit('stderr', data);
    });
    sock.on('end', () => this.finish());
    sock.on('close', () => this.finish());
    sock.on('error', (err: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      this.finish();
    });
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.sock.destroy();
    this.emit('end');
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Writes to the process's stdin. Empty writes are dropped: conmon reads an empty packet as EOF. */
  write(data: Buffer | string): void {
    if (this.ended || this.stdinClosed) return;
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length; off += MAX_STDIN_PACKET) {
      const chunk = buf.subarray(off, Math.min(off + MAX_STDIN_PACKET, buf.length));
      this.sock.write(chunk, 0, chunk.length);
    }
  }

  /** Half-closes the connection: conmon closes the process's stdin (unless told to leave it open). */
  closeStdin(): void {
    if (this.ended || this.stdinClosed) return;
    this.stdinClosed = true;
    this.sock.end();
  }

  /** Detaches: the process keeps running. */
  close(): void {
    this.finish();
  }
}

/** Connects to an attach socket. Paths longer than sun_path are reached through /proc/self/fd. */
export function connectAttach(socketPath: string): Promise<AttachStream> {
  return new Promise((resolve, reject) => {
    // node-unix-socket is loaded with the first attach, not by an idle daemon (see common/lazy.ts).
    const sock = new (require('node-unix-socket') as typeof import('node-unix-socket')).SeqpacketSocket();
    sock.setInternalReadBufferSize(ATTACH_READ_BUFFER);
    let dirFd = -1;
    let target = socketPath;
    try {
      if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
        dirFd = fs.openSync(path.dirname(socketPath), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
        target = `/proc/self/fd/${dirFd}/${path.basename(socketPath)}`;
      }
      const onError = (err: Error): void => reject(new Error(`cannot attach: ${err.message}`));
      sock.once('error', onError);
      // connect(2) happens synchronously inside; the directory fd is only needed until then.
      sock.connect(target, () => {
        sock.off('error', onError);
        resolve(new AttachStream(sock));
      });
    } catch (err) {
      sock.destroy();
      reject(new Error(`cannot attach to ${socketPath}: ${(err as Error).message}`));
    } finally {
      if (dirFd >= 0) fs.closeSync(dirFd);
    }
  });
}

/**
 * Asks conmon to resize the process's terminal through its control FIFO ("<type> <rows> <cols>\n",
 * type 1 = resize). Opened non-blocking, so that a FIFO whose conmon is gone fails at once (ENXIO)
 * instead of hanging. conmon 2.1.6 mishandles several messages arriving in one read, so each
 * resize is one open, one write.
 */
export function writeResize(ctlFifo: string, height: number, width: number): void {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 0 || width < 0 || height > 65535 || width > 65535) {
    throw new RangeError(`invalid terminal size ${height}x${width}`);
  }
  const fd = fs.openSync(ctlFifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  try {
    fs.writeSync(fd, `1 ${height} ${width}\n`);
  } finally {
    fs.closeSync(fd);
  }
}
