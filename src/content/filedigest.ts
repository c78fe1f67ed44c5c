// sha256 of a file that is being written, computed on a worker thread. Node's hashes are
// synchronous, so hashing a big layer download inline took a quarter of the main thread's time in
// a pull; on another thread it costs the main thread a message per write. The worker gets the
// bytes one of two ways, in file order:
// - a buffer over shared memory (the 1 MiB batches archive/tee.ts makes) is hashed in place, as
//   it is being written: the very bytes handed to write(2), with no read back (which cost the
//   worker about as much as the hashing);
// - otherwise the writer reports how far the file is written (advance) and the worker reads that
//   much back from the file.
//
// One worker serves the whole process (jobs are interleaved in message order); it is started on
// first use and referenced only while a digest is awaited, so it never keeps the process alive.
// Should it die, its pending digests fail and the next job starts a new one.
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { Digest } from './digest';

export type DigestRequest =
  | { op: 'open'; id: number; path: string }
  | { op: 'advance'; id: number; upTo: number }
  /** Bytes that go into the file at offset at; answered with { ack: seq } once hashed. */
  | { op: 'bytes'; id: number; seq: number; at: number; buf: SharedArrayBuffer; offset: number; length: number }
  | { op: 'finish'; id: number; size: number }
  | { op: 'drop'; id: number };

export type DigestReply = { id: number; digest: Digest } | { id: number; error: string } | { ack: number };

interface Pending {
  resolve: (d: Digest) => void;
  reject: (e: Error) => void;
}

interface Running {
  worker: Worker;
  /** False once the worker failed or exited: jobs posted to it would never be answered. */
  alive: boolean;
}

let running: Running | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();
/** Shared buffers the worker is hashing (by seq): their owner must not change them until acked. */
const lent = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
let nextSeq = 1;

function theWorker(): Running {
  if (running?.alive) return running;
  // worker_threads is loaded with the first worker, not by an idle daemon.
  const w: Worker = new (require('node:worker_threads') as typeof import('node:worker_threads')).Worker(path.join(__dirname, 'digest-worker.js'));
  const r: Running = { worker: w, alive: true };
  w.on('message', (m: DigestReply) => {
    if ('ack' in m) {
      const l = lent.get(m.ack);
      lent.delete(m.ack);
      if (pending.size === 0 && lent.size === 0) w.unref();
      l?.resolve();
      return;
    }
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0 && lent.size === 0) w.unref();
    if ('digest' in m) p.resolve(m.digest);
    else p.reject(new Error(`hashing failed: ${m.error}`));
  });
  const fail = (err: Error): void => {
    if (!r.alive) return;
    r.alive = false;
    // Every pending job was this worker's: there is only ever one running.
    for (const p of pending.values()) p.reject(new Error(`hashing failed: ${err.message}`));
    pending.clear();
    // A dead worker reads no buffer any more: their owners may have them back.
    for (const l of lent.values()) l.reject(new Error(`hashing failed: ${err.message}`));
    lent.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`digest worker exited with code ${code}`)));
  // Only an awaited digest keeps the process alive (the listeners above ref the worker again).
  w.unref();
  running = r;
  return r;
}

/** The running sha256 of one file, from offset 0 up to what advance() was told. */
export class FileDigest {
  private readonly id = nextId++;
  private readonly r: Running;
  private ended = false;

  constructor(file: string) {
    this.r = theWorker();
    this.post({ op: 'open', id: this.id, path: file });
  }

  private post(m: DigestRequest): void {
    if (this.r.alive) this.r.worker.postMessage(m);
  }

  /**
   * Hashes bytes that go into the file at offset at (everything before at having been written
   * or handed here already) straight from chunk, if it is a view of shared memory: resolves once
   * the worker is done with it (the caller must not change it until then). Returns undefined for
   * other buffers: those bytes are read back from the file after advance().
   */
  hashBytes(chunk: Uint8Array, at: number): Promise<void> | undefined {
    if (!(chunk.buffer instanceof SharedArrayBuffer) || this.ended) return undefined;
    if (!this.r.alive) return Promise.reject(new Error('hashing failed: the digest worker stopped'));
    const seq = nextSeq++;
    return new Promise<void>((resolve, reject) => {
      lent.set(seq, { resolve, reject });
      this.r.worker.ref();
      this.post({ op: 'bytes', id: this.id, seq, at, buf: chunk.buffer as SharedArrayBuffer, offset: chunk.byteOffset, length: chunk.byteLength });
    });
  }

  /** The file holds its final bytes up to upTo: hash them (in the background). */
  advance(upTo: number): void {
    if (!this.ended) this.post({ op: 'advance', id: this.id, upTo });
  }

  /** The digest of the file's first size bytes. Ends the job. */
  digest(size: number): Promise<Digest> {
    if (this.ended) return Promise.reject(new Error('file digest already finished'));
    this.ended = true;
    if (!this.r.alive) return Promise.reject(new Error('hashing failed: the digest worker stopped'));
    return new Promise<Digest>((resolve, reject) => {
      pending.set(this.id, { resolve, reject });
      this.r.worker.ref();
      this.post({ op: 'finish', id: this.id, size });
    });
  }

  /** Ends the job without a digest. */
  drop(): void {
    if (this.ended) return;
    this.ended = true;
    this.post({ op: 'drop', id: this.id });
  }
}
