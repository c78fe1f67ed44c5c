// The extraction of a cp tar stream (a docker cp upload in berthd, a download in `berth cp`):
// on a pooled extraction thread (extract-thread.ts) when the tar is big, so the thread that reads
// the socket keeps reading while the other one creates files; inline when the whole stream fits
// in the first MiB, since starting a thread (~30 ms) would cost more than such a copy itself.
import { finished, type Readable } from 'node:stream';
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
 * the error, or unmount what it extracted into. The input is read by 'data' events (a docker CLI
 * upload comes as ~90 pieces per MiB: an async iterator's promise per piece was a tenth of the
 * reading thread's time).
 */
export function extractCopy(input: Readable, job: CopyJob): Promise<void> {
  return new Promise((resolve, reject) => {
    const head: Buffer[] = [];
    let headBytes = 0;
    let thread: ThreadedExtraction | undefined;
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      input.off('data', onData);
      input.destroy();
      const t = thread;
      if (t === undefined) {
        reject(err);
        return;
      }
      // Nothing is written once abort() resolves (the thread closed the file it had open).
      const done = (): void => reject(t.failure ?? err);
      t.abort().then(done, done);
    };
    const onData = (chunk: Buffer): void => {
      let t = thread;
      if (t === undefined) {
        head.push(chunk);
        headBytes += chunk.length;
        if (headBytes < INLINE_MAX) return;
        t = thread = new ThreadedExtraction(job, fail);
        t.write(head);
        head.length = 0;
      } else {
        t.write([chunk]);
      }
      if (t.inFlight > AHEAD && !input.isPaused()) {
        input.pause();
        t.waitBelow(AHEAD).then(() => {
          if (!settled) input.resume();
        }, () => {});
      }
    };
    input.on('data', onData);
    finished(input, (err) => {
      if (settled) return;
      if (err) {
        fail(err);
        return;
      }
      const t = thread;
      if (t === undefined) {
        // The whole tar came within the first MiB: extracted here.
        settled = true;
        const sink = sinkOf(job);
        const reader = new TarReader(sink);
        try {
          for (const c of head) reader.write(c);
          reader.finish();
          sink.finish();
        } catch (e) {
          try { sink.abort(); } catch { /* the first error is the one to report */ }
          reject(e as Error);
          return;
        }
        resolve();
        return;
      }
      t.end().then(() => {
        settled = true;
        resolve();
      }, fail);
    });
  });
}
