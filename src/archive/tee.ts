// teeLayer: reads a layer stream (a tar, plain or compressed) once, handing every byte as it
// arrives both to a store callback (the content writer keeping the blob) and, uncompressed, to
// the extractor or to a digest. Importing a layer this way costs one pass over the data instead
// of two (store, then read the blob back to unpack it); the blob write runs on the thread pool
// while the extraction thread unpacks the same bytes.
//
// The input is never destroyed, even on failure: it is usually an HTTP request, and destroying
// it would take the socket, and with it the error response, down. What is left of it is drained.
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { finished, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplyOptions, extractionError, LayerExtractor } from './apply';
import { Compression, decompressor, detectCompression, peek } from './compression';
import { copyBytes } from '../native';

export interface TeeOptions extends ApplyOptions {
  /**
   * Extract the layer into this directory (see LayerExtractor for its contract). On failure the
   * partial tree stays: the caller removes the directory (or the snapshot that holds it).
   */
  extractTo?: string;
}

export interface TeeResult {
  compression: Compression;
  /** Bytes read from the input (the blob's size). */
  rawSize: number;
  /**
   * sha256 of the uncompressed tar, for a compressed input. For a plain tar it is the digest of
   * the stored bytes, which the store has computed already: it is not hashed twice.
   */
  diffID?: string;
  /** Size of the uncompressed tar. */
  size: number;
}

/** Bytes read ahead of the store (and of the decompressor) before the input waits. */
const MAX_QUEUED_BYTES = 16 << 20;
/** Input is handed on in batches of about this size. */
const BATCH_BYTES = 1 << 20;
/**
 * How long pieces of a plain tar wait to fill a batch before they go on to the extractor (and
 * the store) as a short one: long enough that a steady upload fills whole batches, short enough
 * that an input which pauses (or waits for the verdict on what it sent) gets it.
 */
const PARTIAL_BATCH_MS = 20;

/** Hashes and counts what is written to it. */
class DigestSink extends Writable {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb();
  }
}

/**
 * Reads input to its end, handing it in order to store() (which must be done with a chunk when
 * its promise settles: the buffer may be reused), and extracts or digests the uncompressed tar
 * alongside. Rejects with the extraction's error (InvalidParameter for bad or hostile data, see
 * extractionError) or with the input's or the store's; store() is never called again once the
 * returned promise settles.
 */
export async function teeLayer(input: Readable, store: (chunk: Buffer) => Promise<void>, opts: TeeOptions = {}): Promise<TeeResult> {
  const { head, stream } = await peek(input, 6);
  const compression = detectCompression(head);
  const extractor = opts.extractTo === undefined ? undefined : new LayerExtractor(opts.extractTo, { ...opts, digest: compression !== 'none' });
  const digester = extractor === undefined && compression !== 'none' ? new DigestSink() : undefined;
  const sink: Writable | undefined = extractor ?? digester;

  // downstream takes the raw bytes; done settles when the sink has taken all of them.
  let downstream: Writable | undefined;
  let done: Promise<void> = Promise.resolve();
  let downstreamFailure: unknown;
  const markDownstream = (err: unknown): never => {
    downstreamFailure ??= err;
    throw err;
  };
  if (sink !== undefined && compression !== 'none') {
    const d = decompressor(compression);
    downstream = d;
    done = pipeline(d, sink);
  } else if (sink !== undefined) {
    downstream = sink;
    done = new Promise<void>((resolve, reject) => finished(sink, (err) => (err ? reject(err) : resolve())));
  }
  done = done.catch(markDownstream);
  done.catch(() => {}); // observed below; this only keeps an early failure from being "unhandled"
  const failedEarly = new Promise<never>((_resolve, reject) => { done.catch(reject); });
  failedEarly.catch(() => {});

  // Input arrives in socket-sized pieces (64 KiB); each piece handed on separately cost a thread
  // pool round trip in the decompressor and another in the store, and the main thread's latency
  // between them left the pool idle. So pieces are gathered into batches of BATCH_BYTES (one copy)
  // and every batch goes, the same buffer, to the store and downstream. The store runs behind the
  // extraction: batches queue up (to a bound) and are stored in order.
  //
  // Every taker is done with a batch once its write has completed, so batch buffers are reused:
  // fresh buffers for every megabyte (a Buffer.concat per batch, as a plain tar's batches once
  // were) made V8 run a full GC every few dozen megabytes (external memory pressure).
  //
  // A plain tar's extractor takes the same batches (LayerExtractor.takeBatch): they are made
  // over shared memory, which its thread reads in place, so each byte is copied once on this
  // thread (into the batch), not twice (into a batch for the store and into a message for the
  // thread). So that a bad entry is seen soon, not only once a whole batch has gathered behind
  // it, pieces waiting longer than PARTIAL_BATCH_MS go on as a short batch.
  //
  // Batches are made over shared memory whatever takes them: the content store's background
  // hasher (content/filedigest.ts) hashes such a batch in place while it is written, instead of
  // reading it back from the file. They are filled with the addon's copyBytes (V8 copies into
  // shared memory with a slow atomics-safe loop).
  const batchSink = compression === 'none' ? extractor : undefined;
  let partialTimer: NodeJS.Timeout | undefined;
  const spare: Buffer[] = [];
  /** The batch buffers this call made (only those are reused). */
  const own = new WeakSet<Buffer>();
  let rawSize = 0;
  // Pieces not yet in a batch. They are copied out only once there is a whole batch of them, so
  // a small layer costs no batch-sized buffer.
  const gathered: Buffer[] = [];
  let gatheredBytes = 0;
  /** Takes a piece of input; returns the full batches it completed. */
  const gather = (chunk: Buffer): Buffer[] => {
    gathered.push(chunk);
    gatheredBytes += chunk.length;
    const full: Buffer[] = [];
    while (gatheredBytes >= BATCH_BYTES) {
      let batch = spare.pop();
      if (batch === undefined) {
        batch = Buffer.from(new SharedArrayBuffer(BATCH_BYTES));
        own.add(batch);
      }
      let filled = 0;
      while (filled < BATCH_BYTES) {
        const piece = gathered[0];
        const n = copyBytes(batch, filled, piece);
        filled += n;
        if (n === piece.length) gathered.shift();
        else gathered[0] = piece.subarray(n);
      }
      gatheredBytes -= BATCH_BYTES;
      full.push(batch);
    }
    return full;
  };
  /** What is gathered but not yet a whole batch (at the end of input). */
  const rest = (): Buffer[] => {
    if (gatheredBytes === 0) return [];
    const last = gathered.length === 1 ? gathered[0] : Buffer.concat(gathered, gatheredBytes);
    gathered.length = 0;
    gatheredBytes = 0;
    return [last];
  };
  /** Counts a batch's takers down; a whole batch all are done with is used again. */
  const users = new Map<Buffer, number>();
  const release = (batch: Buffer): void => {
    const left = (users.get(batch) ?? 1) - 1;
    if (left > 0) {
      users.set(batch, left);
      return;
    }
    users.delete(batch);
    if (own.has(batch) && storeFailure === undefined && downstreamFailure === undefined) spare.push(batch);
  };
  const queue: Buffer[] = [];
  let queuedBytes = 0;
  let storing: Promise<void> | undefined;
  let storeFailure: { err: unknown } | undefined;
  /** Waiters for the store's queue to shrink; each returns whether it is settled. */
  let storeWaiters: (() => boolean)[] = [];
  const pump = async (): Promise<void> => {
    while (queue.length > 0 && storeFailure === undefined) {
      // Batches are big already: stored one by one, not copied together.
      const batch = queue.shift()!;
      const n = batch.length;
      try {
        await store(batch);
        release(batch);
      } catch (err) {
        storeFailure = { err };
      }
      queuedBytes -= n;
      storeWaiters = storeWaiters.filter((settled) => !settled());
    }
    storing = undefined;
  };
  // Several may wait: a write and a short batch passed on by the timer (passPartial).
  const stored = (): Promise<void> => new Promise<void>((resolve, reject) => {
    const settled = (): boolean => {
      if (storeFailure !== undefined) reject(storeFailure.err);
      else if (queuedBytes <= MAX_QUEUED_BYTES) resolve();
      else return false;
      return true;
    };
    if (!settled()) storeWaiters.push(settled);
  });
  const allStored = async (): Promise<void> => {
    while (storing !== undefined) await storing;
    if (storeFailure !== undefined) throw storeFailure.err;
  };
  // Hands batches on to the store and downstream; resolves when both can take more.
  const passOn = (batches: Buffer[]): Promise<unknown> | undefined => {
    if (batches.length === 0) return undefined;
    const d = batchSink === undefined ? downstream : undefined;
    let passed: Promise<unknown> | undefined;
    for (const batch of batches) {
      users.set(batch, d === undefined && batchSink === undefined ? 1 : 2);
      queue.push(batch);
      queuedBytes += batch.length;
      storing ??= pump();
      if (batchSink !== undefined) {
        const wait = batchSink.takeBatch(batch, () => release(batch));
        if (wait !== undefined) passed ??= wait;
        continue;
      }
      if (d === undefined) continue;
      // The decompressor's own buffer is small (16 KiB): its "full" is ignored up to the bound,
      // so that batches queue there while the pool works instead of each waiting for the last.
      const more = d.write(batch, (err) => { if (!err) release(batch); });
      if (!more && d.writableLength > MAX_QUEUED_BYTES) passed ??= once(d, 'drain').catch(markDownstream);
    }
    if (queuedBytes <= MAX_QUEUED_BYTES && passed === undefined) return undefined;
    return Promise.all([stored(), passed]);
  };

  /** Pieces have waited long enough for a whole batch: they go on as they are. */
  const passPartial = (): void => {
    partialTimer = undefined;
    if (storeFailure !== undefined || downstreamFailure !== undefined) return;
    // Backpressure is the next write's business; a failure shows through failedEarly.
    passOn(rest())?.then(undefined, () => {});
  };

  const tee = new Writable({
    highWaterMark: BATCH_BYTES,
    write(chunk: Buffer, _enc, cb) {
      if (storeFailure !== undefined) {
        cb(storeFailure.err as Error);
        return;
      }
      rawSize += chunk.length;
      const full = gather(chunk);
      const passed = passOn(full);
      if (batchSink !== undefined) {
        if (full.length > 0 || gatheredBytes === 0) {
          clearTimeout(partialTimer);
          partialTimer = undefined;
        }
        if (gatheredBytes > 0) partialTimer ??= setTimeout(passPartial, PARTIAL_BATCH_MS);
      }
      if (passed === undefined) cb();
      else Promise.race([passed, failedEarly]).then(() => cb(), cb);
    },
    final(cb) {
      clearTimeout(partialTimer);
      partialTimer = undefined;
      const waiting = passOn(rest());
      Promise.race([Promise.resolve(waiting), failedEarly]).then(() => {
        downstream?.end();
        return Promise.all([done, allStored()]);
      }).then(() => cb(), cb);
    },
  });

  try {
    await new Promise<void>((resolve, reject) => {
      tee.on('finish', resolve);
      tee.on('error', reject);
      finished(stream, { writable: false }, (err) => { if (err) reject(err); });
      // The extraction runs behind the input (on its own thread): it may fail while the tee
      // waits for more input, which then must not be waited for.
      failedEarly.catch(reject);
      stream.pipe(tee);
    });
  } catch (err) {
    // Decided before the teardown below, whose own "premature close" must not mask the cause.
    const failure = downstreamFailure !== undefined ? extractionError(downstreamFailure) : err;
    clearTimeout(partialTimer);
    stream.unpipe(tee);
    tee.destroy();
    downstream?.destroy();
    // The extraction thread may still be finishing a write: the caller removes the partial tree
    // only after this.
    if (extractor !== undefined) await extractor.stop();
    else sink?.destroy();
    // Nothing more is stored; let the store() in flight finish before the caller aborts what
    // it stores into.
    storeFailure ??= { err: failure };
    await allStored().catch(() => {});
    stream.resume();
    throw failure;
  }

  if (compression === 'none') return { compression, rawSize, size: rawSize };
  if (extractor !== undefined) {
    const r = extractor.result();
    return { compression, rawSize, diffID: r.diffID, size: r.size };
  }
  return { compression, rawSize, diffID: `sha256:${digester!.hash.digest('hex')}`, size: digester!.bytes };
}
