// teeLayer: reads a layer stream (a tar, plain or compressed) once, handing every byte as it
// arrives both to a store callback (the content writer keeping the blob) and, uncompressed, to
// the extractor or to a digest. Importing a layer this way costs one pass over the data instead
// of two (store, then read the blob back to unpack it); the blob write runs on the thread pool
// while the main thread extracts the same chunk.
//
// The input is never destroyed, even on failure: it is usually an HTTP request, and destroying
// it would take the socket, and with it the error response, down. What is left of it is drained.
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { finished, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplyOptions, extractionError, LayerExtractor } from './apply';
import { Compression, decompressor, detectCompression, peek } from './compression';

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

/** Bytes read ahead of the store before the input waits. */
const MAX_QUEUED_BYTES = 16 << 20;

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
 * Reads input to its end, awaiting store(chunk) for each chunk before taking the next, and
 * extracts or digests the uncompressed tar alongside. Rejects with the extraction's error
 * (InvalidParameter for bad or hostile data, see extractionError) or with the input's or the
 * store's; store() is never called again once the returned promise settles.
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

  // The store runs behind the extraction: chunks queue up (to a bound) and are stored in order,
  // as one write when several are waiting. Waiting for each chunk's store before extracting the
  // next left the main thread idle for a quarter of an import.
  let rawSize = 0;
  const queue: Buffer[] = [];
  let queuedBytes = 0;
  let storing: Promise<void> | undefined;
  let storeFailure: { err: unknown } | undefined;
  let wakeWriter: (() => void) | undefined;
  const pump = async (): Promise<void> => {
    while (queue.length > 0 && storeFailure === undefined) {
      const batch = queue.length === 1 ? queue[0] : Buffer.concat(queue, queuedBytes);
      queue.length = 0;
      const n = batch.length;
      try {
        await store(batch);
      } catch (err) {
        storeFailure = { err };
      }
      queuedBytes -= n;
      wakeWriter?.();
    }
    storing = undefined;
  };
  const stored = (): Promise<void> => new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (storeFailure !== undefined) reject(storeFailure.err);
      else if (queuedBytes <= MAX_QUEUED_BYTES) resolve();
      else return;
      wakeWriter = undefined;
    };
    wakeWriter = check;
    check();
  });
  const allStored = async (): Promise<void> => {
    while (storing !== undefined) await storing;
    if (storeFailure !== undefined) throw storeFailure.err;
  };

  const tee = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      if (storeFailure !== undefined) {
        cb(storeFailure.err as Error);
        return;
      }
      rawSize += chunk.length;
      queue.push(chunk);
      queuedBytes += chunk.length;
      storing ??= pump();
      // The sink works synchronously inside write() for a plain tar: by the time this returns
      // the chunk is on disk (or queued in the decompressor).
      const passed = downstream !== undefined && !downstream.write(chunk) ? once(downstream, 'drain').catch(markDownstream) : undefined;
      Promise.race([Promise.all([stored(), passed]), failedEarly]).then(() => cb(), cb);
    },
    final(cb) {
      downstream?.end();
      Promise.all([done, allStored()]).then(() => cb(), cb);
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
