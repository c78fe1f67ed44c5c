// The body of an extraction thread (see extract-thread.ts): parses tar bytes posted by the main
// thread and writes them to disk with the same LayerWriter the in-thread path uses, one job at a
// time. Every message is answered in order, so the main thread always knows how far the writes
// have got; after a failure the job is quiet (file closed, nothing more written) *before* the
// error is posted, and an abort is confirmed only once the writer is closed.
import { parentPort } from 'node:worker_threads';
import { BerthError } from '../common/errors';
import { LayerWriter } from './apply';
import { TarReader } from './reader';
import type { ToWorker, FromWorker, WireError } from './extract-thread';

function toWire(err: unknown): WireError {
  const e = err as NodeJS.ErrnoException;
  return {
    message: e?.message ?? String(err),
    kind: err instanceof BerthError ? err.kind : undefined,
    code: typeof e?.code === 'string' ? e.code : undefined,
    errno: typeof e?.errno === 'number' ? e.errno : undefined,
    syscall: typeof e?.syscall === 'string' ? e.syscall : undefined,
    path: typeof e?.path === 'string' ? e.path : undefined,
  };
}

let job: { id: number; writer: LayerWriter; reader: TarReader; failed: boolean; cancel: Int32Array } | undefined;
const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);

function fail(err: unknown): void {
  if (job === undefined || job.failed) return;
  job.failed = true;
  try {
    job.writer.abort();
  } catch {
    // The first error is the one to report.
  }
  post({ type: 'error', id: job.id, error: toWire(err) });
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'start': {
      const writer = new LayerWriter(m.dir, m.opts);
      job = { id: m.id, writer, reader: new TarReader(writer), failed: false, cancel: new Int32Array(m.cancel) };
      return;
    }
    case 'data': {
      // A cancelled job stops writing at once, without waiting for its abort message to come up.
      if (job !== undefined && job.id === m.id && !job.failed && Atomics.load(job.cancel, 0) === 0) {
        try {
          job.reader.write(Buffer.from(m.buf, 0, m.length));
        } catch (err) {
          fail(err);
        }
      }
      // The buffer goes back for reuse; nothing here keeps a view of it (bodies are written
      // before write() returns, and partial headers are copied).
      port.postMessage({ type: 'ack', id: m.id, bytes: m.length, buf: m.buf } satisfies FromWorker, [m.buf]);
      return;
    }
    case 'shared': {
      if (job !== undefined && job.id === m.id && !job.failed && Atomics.load(job.cancel, 0) === 0) {
        try {
          job.reader.write(Buffer.from(m.buf, m.offset, m.length));
        } catch (err) {
          fail(err);
        }
      }
      // The memory is the main thread's again (nothing here keeps a view of it).
      post({ type: 'sharedAck', id: m.id, bytes: m.length });
      return;
    }
    case 'end': {
      if (job === undefined || job.id !== m.id || job.failed) return;
      try {
        job.reader.finish();
        job.writer.finish();
      } catch (err) {
        fail(err);
        return;
      }
      post({ type: 'done', id: m.id });
      job = undefined;
      return;
    }
    case 'abort': {
      if (job !== undefined && job.id === m.id) {
        if (!job.failed) {
          try {
            job.writer.abort();
          } catch {
            // Closing a file of a failed extraction: nothing more to do with it.
          }
        }
        job = undefined;
      }
      post({ type: 'aborted', id: m.id });
      return;
    }
  }
});
