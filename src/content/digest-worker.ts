// The body of the file-digest worker thread (see filedigest.ts): it hashes ingest files as they
// grow, from shared buffers the writer is writing, or reading back what it has written. Messages
// are handled in order; each job keeps its file open and its hash state until it is finished or
// dropped.
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { DigestReply, DigestRequest } from './filedigest';

interface Job {
  fd: number;
  hash: Hash;
  /** Bytes hashed so far. */
  hashed: number;
  /** Set once a read failed: reported by the finish. */
  failure?: string;
}

const jobs = new Map<number, Job>();
const buf = Buffer.allocUnsafe(4 << 20);

function hashUpTo(job: Job, upTo: number): void {
  while (job.failure === undefined && job.hashed < upTo) {
    let n: number;
    try {
      n = fs.readSync(job.fd, buf, 0, Math.min(buf.length, upTo - job.hashed), job.hashed);
    } catch (err) {
      job.failure = (err as Error).message;
      return;
    }
    if (n === 0) {
      job.failure = `file ended at ${job.hashed} bytes, before ${upTo}`;
      return;
    }
    job.hash.update(n === buf.length ? buf : buf.subarray(0, n));
    job.hashed += n;
  }
}

function drop(id: number): void {
  const job = jobs.get(id);
  if (!job) return;
  jobs.delete(id);
  if (job.fd >= 0) fs.closeSync(job.fd);
}

parentPort!.on('message', (m: DigestRequest) => {
  switch (m.op) {
    case 'open': {
      // A file that cannot be opened fails the job's finish, the one reply a job gets.
      try {
        jobs.set(m.id, { fd: fs.openSync(m.path, 'r'), hash: createHash('sha256'), hashed: 0 });
      } catch (err) {
        jobs.set(m.id, { fd: -1, hash: createHash('sha256'), hashed: 0, failure: (err as Error).message });
      }
      break;
    }
    case 'bytes': {
      const job = jobs.get(m.id);
      if (job) {
        // Bytes before these that came by advance() only are read back first.
        hashUpTo(job, m.at);
        if (job.failure === undefined) {
          if (job.hashed === m.at) {
            job.hash.update(new Uint8Array(m.buf, m.offset, m.length));
            job.hashed += m.length;
          } else {
            job.failure = `bytes for offset ${m.at} came after offset ${job.hashed} was hashed`;
          }
        }
      }
      // The buffer is the writer's again; a failure is reported by the finish.
      parentPort!.postMessage({ ack: m.seq } satisfies DigestReply);
      break;
    }
    case 'advance': {
      const job = jobs.get(m.id);
      if (job) hashUpTo(job, m.upTo);
      break;
    }
    case 'finish': {
      const job = jobs.get(m.id);
      let reply: DigestReply;
      if (!job) {
        reply = { id: m.id, error: 'no such digest job' };
      } else {
        hashUpTo(job, m.size);
        reply = job.failure !== undefined ? { id: m.id, error: job.failure } : { id: m.id, digest: `sha256:${job.hash.digest('hex')}` };
      }
      drop(m.id);
      parentPort!.postMessage(reply);
      break;
    }
    case 'drop':
      drop(m.id);
      break;
  }
});
