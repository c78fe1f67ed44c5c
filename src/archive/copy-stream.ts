// The extraction of a cp tar stream (a docker cp upload in berthd, a download in `berth cp`):
// on a pooled extraction thread (extract-thread.ts) when the tar is big, so the thread that reads
// the socket keeps reading while the other one creates files; inline when the whole stream fits
// in the first MiB, since starting a thread (~30 ms) would cost more than such a copy itself.
import type { Readable } from 'node:stream';
import { CopyInSink } from './copy-in';
import { CopyOutSink } from './copy-out';
import { ThreadedExtraction, type ExtractionJob } from './extract-thread';
import { TarReader } from './reader';

export type CopyJob = Extract<ExtractionJob, { kind: 'copy-in' | 'copy-out' }>;

/** A stream that ends within this many bytes is extracted on the calling thread. */
const INLINE_MAX = 1 << 20;
/** Bytes handed to the thread and not yet written, before reading pauses. */
const AHEAD = 8 << 20;

/** The job's sink, made on this thread (as the extraction thread makes it for its jobs). */
function sinkOf(job: CopyJob): CopyInSink | CopyOutSink {
  return job.kind === 'copy-in' ? new CopyInSink(job) : new CopyOutSink(job.root, job.rebase, job.keepOwner);
}

/**
 * Extracts the tar read from input as job says. Resolves once every entry is on disk; on a
 * failure (of the input or of the extraction) input is destroyed, and the promise rejects only
 * once nothing writes any more (the file being written is closed): the caller may then report
 * the error, or unmount what it extracted into.
 */
export async function extractCopy(input: Readable, job: CopyJob): Promise<void> {
  const pieces = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let headBytes = 0;
  let ended = false;
  try {
    while (headBytes < INLINE_MAX) {
      const r = await pieces.next();
      if (r.done) {
        ended = true;
        break;
      }
      head.push(r.value);
      headBytes += r.value.length;
    }
  } catch (err) {
    input.destroy();
    throw err;
  }
  if (ended) {
    const sink = sinkOf(job);
    const reader = new TarReader(sink);
    try {
      for (const c of head) reader.write(c);
      reader.finish();
      sink.finish();
    } catch (err) {
      try { sink.abort(); } catch { /* the first error is the one to report */ }
      throw err;
    }
    return;
  }
  const thread = new ThreadedExtraction(job, (err) => input.destroy(err));
  try {
    thread.write(head);
    for (;;) {
      if (thread.inFlight > AHEAD) await thread.waitBelow(AHEAD);
      if (thread.failure) throw thread.failure;
      const r = await pieces.next();
      if (r.done) break;
      thread.write([r.value]);
    }
    await thread.end();
  } catch (err) {
    input.destroy();
    // Nothing is written once abort() resolves (the thread closed the file it had open).
    await thread.abort();
    throw thread.failure ?? err;
  }
}
