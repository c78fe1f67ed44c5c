// Extraction on a worker thread. The tar parsing and the tens of thousands of synchronous file
// system calls of a layer run on a thread of their own, so the main thread stays free for what
// feeds it (the HTTP request, the sha256 of the stream, the content store's writes, gunzip): on
// two cores an import overlaps storing and extracting instead of doing them one after the other.
//
// Threads are pooled: one is started on first use and kept for a few seconds after its last job
// (a pull of many small layers does not pay ~30 ms of thread start-up per layer), then ended, so
// an idle daemon holds none. Each thread runs one extraction at a time.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { BerthError, type ErrorKind } from '../common/errors';
import type { ApplyOptions } from './apply';

export interface WireError {
  message: string;
  kind?: ErrorKind;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export type ToWorker =
  | { type: 'start'; id: number; dir: string; opts: ApplyOptions; cancel: SharedArrayBuffer }
  | { type: 'data'; id: number; buf: ArrayBuffer; length: number }
  | { type: 'shared'; id: number; buf: SharedArrayBuffer; offset: number; length: number }
  | { type: 'end'; id: number }
  | { type: 'abort'; id: number };

export type FromWorker =
  | { type: 'ack'; id: number; bytes: number; buf: ArrayBuffer }
  | { type: 'sharedAck'; id: number; bytes: number }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; error: WireError }
  | { type: 'aborted'; id: number };

/** An error from the thread, rebuilt with what extractionError() and statusOf() look at. */
function fromWire(w: WireError): Error {
  if (w.kind !== undefined) return new BerthError(w.kind, w.message);
  const err = new Error(w.message) as NodeJS.ErrnoException;
  if (w.code !== undefined) err.code = w.code;
  if (w.errno !== undefined) err.errno = w.errno;
  if (w.syscall !== undefined) err.syscall = w.syscall;
  if (w.path !== undefined) err.path = w.path;
  return err;
}

/** How long an idle thread is kept for the next extraction. */
const IDLE_MS = 3000;
/** Bytes per message to the thread. */
const STAGING_BYTES = 1 << 20;
/**
 * How long a partly filled staging buffer waits for more before it is sent: long enough that a
 * steady upload fills whole buffers, short enough that an input which pauses (or waits for the
 * verdict on what it sent) gets it.
 */
const FLUSH_DELAY_MS = 20;
const WORKER_FILE = path.join(__dirname, 'extract-worker.js');

interface PooledWorker {
  worker: Worker;
  idleTimer?: NodeJS.Timeout;
  /** The job the thread is running; messages for it go there. */
  job?: ThreadedExtraction;
}

const idle: PooledWorker[] = [];
let nextID = 1;

function acquire(): PooledWorker {
  const pw = idle.pop();
  if (pw !== undefined) {
    clearTimeout(pw.idleTimer);
    pw.idleTimer = undefined;
    pw.worker.ref();
    return pw;
  }
  const worker = new Worker(WORKER_FILE);
  const fresh: PooledWorker = { worker };
  worker.on('message', (m: FromWorker) => fresh.job?.onMessage(m));
  worker.on('error', (err) => fresh.job?.onCrash(err));
  worker.on('exit', (code) => {
    const i = idle.indexOf(fresh);
    if (i >= 0) idle.splice(i, 1);
    fresh.job?.onCrash(new Error(`extraction thread exited (code ${code})`));
  });
  return fresh;
}

function release(pw: PooledWorker): void {
  pw.job = undefined;
  pw.worker.unref();
  idle.push(pw);
  pw.idleTimer = setTimeout(() => {
    const i = idle.indexOf(pw);
    if (i >= 0) idle.splice(i, 1);
    void pw.worker.terminate();
  }, IDLE_MS);
  pw.idleTimer.unref();
}

/**
 * One extraction running on a pooled thread. write() hands bytes over (copied into a buffer the
 * thread then owns); the owner limits what is in flight with inFlight and waitBelow().
 */
export class ThreadedExtraction {
  private readonly id = nextID++;
  private pw: PooledWorker | undefined;
  private readonly cancelFlag = new Int32Array(new SharedArrayBuffer(4));
  private staging: Buffer | undefined;
  private staged = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Staging buffers the thread has returned. */
  private readonly spare: Buffer[] = [];
  /** Bytes taken by write() and not yet acknowledged by the thread (staged ones included). */
  inFlight = 0;
  /** The first failure reported by the thread (or its crash). */
  failure: Error | undefined;
  private waiters: { limit: number; resolve: () => void }[] = [];
  private doneWaiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private abortWaiter: (() => void) | undefined;
  private finished = false;

  constructor(dir: string, opts: ApplyOptions, private readonly onFailure: (err: Error) => void) {
    this.pw = acquire();
    this.pw.job = this;
    this.post({ type: 'start', id: this.id, dir, opts: { ignoreOwnership: opts.ignoreOwnership }, cancel: this.cancelFlag.buffer as SharedArrayBuffer });
  }

  private post(m: ToWorker, transfer?: ArrayBuffer[]): void {
    this.pw?.worker.postMessage(m, transfer);
  }

  /**
   * Hands bytes over: they are copied into a staging buffer, which goes to the thread (which then
   * owns it) when full. The copy is needed anyway (the caller's chunks may be views of memory it
   * reuses or shares); staging makes it one message per MiB rather than one per socket read.
   */
  write(chunks: Buffer[]): void {
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) {
        this.staging ??= this.spare.pop() ?? Buffer.allocUnsafeSlow(STAGING_BYTES);
        const n = c.copy(this.staging, this.staged, off);
        this.staged += n;
        off += n;
        this.inFlight += n;
        if (this.staged === this.staging.length) this.flush();
      }
    }
    // A partly filled buffer goes soon anyway: the input may pause (or wait for our verdict).
    if (this.staged > 0) this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_DELAY_MS);
  }

  /** Posts what is staged. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.staging === undefined || this.staged === 0) return;
    // The whole buffer moves to the thread (no copy), with the length that is filled.
    const buf = this.staging.buffer as ArrayBuffer;
    const length = this.staged;
    this.staging = undefined;
    this.staged = 0;
    this.post({ type: 'data', id: this.id, buf, length }, [buf]);
  }

  /** What to call as the thread finishes with each buffer writeShared() lent it, in order. */
  private readonly lent: (() => void)[] = [];

  /**
   * Hands the thread a buffer over shared memory without copying it: onDone runs once the
   * thread has written what it holds, and until then the caller must not change it. Other
   * buffers are copied (as write() does).
   */
  writeShared(buf: Buffer, onDone: () => void): void {
    if (!(buf.buffer instanceof SharedArrayBuffer)) {
      this.write([buf]);
      onDone();
      return;
    }
    // Whatever is staged came first.
    this.flush();
    this.inFlight += buf.length;
    this.lent.push(onDone);
    this.post({ type: 'shared', id: this.id, buf: buf.buffer, offset: buf.byteOffset, length: buf.length });
  }

  /** Resolves once at most limit bytes are in flight (or the job failed). */
  waitBelow(limit: number): Promise<void> {
    if (this.below(limit)) return Promise.resolve();
    // What is staged counts as in flight: send it, or it would never be acknowledged.
    this.flush();
    return new Promise((resolve) => this.waiters.push({ limit, resolve }));
  }

  private below(limit: number): boolean {
    return this.inFlight <= limit || this.failure !== undefined || this.pw === undefined;
  }

  /** The input is complete: resolves when every entry is on disk, rejects with the first failure. */
  end(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.flush();
    return new Promise((resolve, reject) => {
      this.doneWaiter = { resolve, reject };
      this.post({ type: 'end', id: this.id });
    });
  }

  /**
   * Stops the job: resolves once the thread has closed what it had open and will write nothing
   * more, so the caller may remove the partial tree.
   */
  abort(): Promise<void> {
    if (this.pw === undefined) return Promise.resolve();
    Atomics.store(this.cancelFlag, 0, 1);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.staging = undefined;
    this.staged = 0;
    return new Promise((resolve) => {
      this.abortWaiter = resolve;
      this.post({ type: 'abort', id: this.id });
    });
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => this.below(w.limit));
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
    if (this.doneWaiter !== undefined) {
      this.doneWaiter.reject(this.failure);
      this.doneWaiter = undefined;
    }
    this.onFailure(this.failure);
  }

  private detach(): void {
    const pw = this.pw;
    this.pw = undefined;
    if (pw !== undefined && pw.job === this) release(pw);
    this.wake();
  }

  onMessage(m: FromWorker): void {
    if (m.id !== this.id) return;
    switch (m.type) {
      case 'ack':
        this.inFlight -= m.bytes;
        // The thread hands the buffer back: reused, so a layer allocates a few buffers in all
        // rather than one per MiB (external memory that would keep the GC busy).
        if (m.buf.byteLength === STAGING_BYTES) this.spare.push(Buffer.from(m.buf));
        this.wake();
        return;
      case 'sharedAck':
        this.inFlight -= m.bytes;
        this.lent.shift()?.();
        this.wake();
        return;
      case 'error':
        this.fail(fromWire(m.error));
        return;
      case 'done':
        this.finished = true;
        this.detach();
        this.doneWaiter?.resolve();
        this.doneWaiter = undefined;
        return;
      case 'aborted':
        this.detach();
        this.abortWaiter?.();
        this.abortWaiter = undefined;
        return;
    }
  }

  onCrash(err: Error): void {
    const pw = this.pw;
    this.pw = undefined;
    if (pw !== undefined) pw.job = undefined;
    // A dead thread writes nothing more: an abort in progress is complete.
    this.abortWaiter?.();
    this.abortWaiter = undefined;
    if (!this.finished) this.fail(err);
  }
}
