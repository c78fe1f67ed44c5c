// The extraction of a cp tar stream (a docker cp upload in berthd, a download in `berth cp`): the
// tar is parsed and written synchronously in each 'data' event, straight from the stream's
// buffers, by copy-in.ts' CopyInSink or copy-out.ts' CopyOutSink.
//
// An extraction thread (as image layers get, extract-thread.ts) was tried for both: it measured
// no faster on the shared two-core machine (the client and berthd already keep both cores busy)
// and cost berthd 0.3-0.7 CPU-s more per GB (the staging copy, the messages, a second JIT).
import { finished, type Readable } from 'node:stream';
import { CopyInSink, type CopyInJob } from './copy-in';
import { CopyOutSink } from './copy-out';
import type { Rebase } from './copy-out';
import { TarReader } from './reader';

export type CopyJob = ({ kind: 'copy-in' } & CopyInJob) | { kind: 'copy-out'; root: string; rebase: Rebase; keepOwner: boolean };

/**
 * Extracts the tar read from input as job says. Resolves once every entry is on disk; on a
 * failure (of the input or of the extraction) reading stops and the file being written is closed
 * before the promise rejects; the caller then destroys input. The input is read by 'data' events, without a Writable or
 * an async iterator between: a docker CLI upload comes as ~90 pieces per MiB (its HTTP chunks).
 */
export function extractCopy(input: Readable, job: CopyJob): Promise<void> {
  return new Promise((resolve, reject) => {
    const sink = job.kind === 'copy-in' ? new CopyInSink(job) : new CopyOutSink(job.root, job.rebase, job.keepOwner);
    const reader = new TarReader(sink);
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      // Reading stops; the caller destroys the input once it has the error (not here, inside a
      // 'data' event: an HTTP request destroyed before it is complete takes its socket with it,
      // and the client would get no 400 for a bad upload it had already sent whole).
      input.off('data', onData);
      input.pause();
      try { sink.abort(); } catch { /* the first error is the one to report */ }
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      try {
        reader.write(chunk);
      } catch (err) {
        fail(err as Error);
      }
    };
    input.on('data', onData);
    finished(input, (err) => {
      if (settled) return;
      if (err) {
        fail(err);
        return;
      }
      try {
        reader.finish();
        sink.finish();
      } catch (e) {
        fail(e as Error);
        return;
      }
      settled = true;
      resolve();
    });
  });
}
