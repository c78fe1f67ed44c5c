// Reader of conmon's k8s-file log: one record per line,
//   <RFC3339Nano time> <stdout|stderr> <F|P> <data>
// F ends a line of the container's output, P is a piece of a longer line (or output not yet
// ended by a newline). tail reads the file backwards in blocks, so that the last lines of a huge
// log cost only their own size; follow waits on fs.watch for appended records.
import * as fs from 'node:fs';

export interface LogRecord {
  stream: 'stdout' | 'stderr';
  /** Time as written, normalised to UTC RFC3339 with nanoseconds ("2024-05-01T10:00:00.123456789Z"). */
  timestamp: string;
  /** Nanoseconds since the epoch. */
  timeNs: bigint;
  time: Date;
  /** The data, without the record's newline. */
  line: Buffer;
  /** True for a P record: the container's line continues in the next record (no newline here). */
  partial: boolean;
}

export interface ReadLogOptions {
  follow?: boolean;
  /** Only records at or after this time (unix seconds, may be fractional; or nanoseconds as bigint). */
  since?: number | bigint;
  /** Only records before this time. */
  until?: number | bigint;
  /** Only the last n lines (a line is its P records and the F record that ends it). */
  tail?: number;
  /** Ends following (or reading) when aborted. */
  signal?: AbortSignal;
  /** With follow: stop once this resolves (the container exited) and what it wrote is read. */
  followUntil?: Promise<unknown>;
}

const BLOCK = 64 * 1024;
const MAX_RECORD = 1024 * 1024;
const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** Parses an RFC3339 time with up to nanosecond precision. */
export function parseRfc3339Nano(s: string): bigint | undefined {
  const m = TIME_RE.exec(s);
  if (!m) return undefined;
  const secs = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
  let offset = 0;
  if (m[8] !== 'Z') {
    const sign = m[8][0] === '-' ? -1 : 1;
    offset = sign * (Number(m[8].slice(1, 3)) * 3600 + Number(m[8].slice(4, 6)) * 60);
  }
  const nanos = BigInt((m[7] ?? '').padEnd(9, '0') || '0');
  return BigInt(secs - offset) * 1_000_000_000n + nanos;
}

export function formatRfc3339NanoUTC(ns: bigint): string {
  const secs = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  const iso = new Date(Number(secs) * 1000).toISOString(); // ...T..:..:..(.000)Z
  return `${iso.slice(0, 19)}.${frac}Z`;
}

/** Parses one record (without its newline); undefined for a malformed line. */
export function parseK8sRecord(raw: Buffer): LogRecord | undefined {
  const s1 = raw.indexOf(0x20);
  if (s1 < 0) return undefined;
  const s2 = raw.indexOf(0x20, s1 + 1);
  if (s2 < 0) return undefined;
  const s3 = raw.indexOf(0x20, s2 + 1);
  const stream = raw.toString('latin1', s1 + 1, s2);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = raw.toString('latin1', s2 + 1, s3 < 0 ? raw.length : s3);
  if (tag !== 'F' && tag !== 'P') return undefined;
  const ns = parseRfc3339Nano(raw.toString('latin1', 0, s1));
  if (ns === undefined) return undefined;
  return {
    stream,
    timestamp: formatRfc3339NanoUTC(ns),
    timeNs: ns,
    time: new Date(Number(ns / 1_000_000n)),
    line: s3 < 0 ? Buffer.alloc(0) : raw.subarray(s3 + 1),
    partial: tag === 'P',
  };
}

function toNs(t: number | bigint): bigint {
  if (typeof t === 'bigint') return t;
  return BigInt(Math.round(t * 1e6)) * 1000n;
}

/** True when the raw record's tag is F (it ends a line). Cheap: no time parsing. */
function endsLine(raw: Buffer): boolean {
  const s1 = raw.indexOf(0x20);
  const s2 = s1 < 0 ? -1 : raw.indexOf(0x20, s1 + 1);
  return s2 >= 0 && raw[s2 + 1] === 0x46 /* F */ && (raw.length === s2 + 2 || raw[s2 + 2] === 0x20);
}

/**
 * Offset where the last n lines of the file start, found by reading backwards in blocks. Only
 * complete records (ending in a newline) are considered; a trailing P record with no F after it
 * counts as a line of its own (output not yet ended by a newline).
 */
export function tailOffset(fd: number, size: number, n: number): number {
  if (n <= 0) return size;
  let pos = size;
  let carry = Buffer.alloc(0); // bytes after the last newline seen so far (going backwards)
  let lines = 0;
  let sawTrailingPartial = false;
  let first = true;
  const buf = Buffer.alloc(BLOCK);
  while (pos > 0) {
    const len = Math.min(BLOCK, pos);
    pos -= len;
    fs.readSync(fd, buf, 0, len, pos);
    const chunk = Buffer.concat([buf.subarray(0, len), carry]);
    // Walk records from the end of chunk; a record is complete when a newline precedes it.
    let end = chunk.length;
    if (first) {
      // Drop an incomplete last record (no trailing newline): it is still being written.
      const lastNl = chunk.lastIndexOf(0x0a);
      if (lastNl < 0) {
        carry = Buffer.alloc(0);
        continue;
      }
      end = lastNl + 1;
      first = false;
    }
    for (;;) {
      if (end <= 0) break;
      const prevNl = end >= 2 ? chunk.lastIndexOf(0x0a, end - 2) : -1;
      if (prevNl < 0 && pos > 0) break; // record start lies in an earlier block
      const rec = chunk.subarray(prevNl + 1, end - 1);
      if (endsLine(rec)) {
        lines++;
        if (lines > n) return pos + prevNl + 1 + rec.length + 1;
      } else if (lines === 0 && !sawTrailingPartial) {
        sawTrailingPartial = true;
        lines++;
        if (lines > n) return pos + prevNl + 1 + rec.length + 1;
      }
      end = prevNl + 1;
    }
    // No record is this long (conmon writes at most a few KiB per record): this is not a log
    // line but garbage (a hole, a corrupt region). The tail starts after it.
    if (end > MAX_RECORD) return pos + end;
    carry = Buffer.from(chunk.subarray(0, end));
  }
  return 0;
}

/**
 * Yields the log's records. Records are complete lines of the file; with follow, a record being
 * written is waited for.
 */
export async function* readK8sLog(file: string, opts: ReadLogOptions = {}): AsyncGenerator<LogRecord> {
  const since = opts.since !== undefined ? toNs(opts.since) : undefined;
  const until = opts.until !== undefined ? toNs(opts.until) : undefined;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !opts.follow) return;
    throw err;
  }
  let watcher: fs.FSWatcher | undefined;
  try {
    let pos = 0;
    if (opts.tail !== undefined && opts.tail >= 0) pos = tailOffset(fd, fs.fstatSync(fd).size, opts.tail);
    let pending = Buffer.alloc(0);
    const buf = Buffer.alloc(BLOCK);
    let wake: (() => void) | undefined;
    let stopAfterDrain = false;
    if (opts.follow) {
      watcher = fs.watch(file, () => wake?.());
      opts.followUntil?.then(
        () => {
          stopAfterDrain = true;
          wake?.();
        },
        () => {
          stopAfterDrain = true;
          wake?.();
        },
      );
      opts.signal?.addEventListener('abort', () => wake?.(), { once: true });
    }
    for (;;) {
      if (opts.signal?.aborted) return;
      const n = fs.readSync(fd, buf, 0, BLOCK, pos);
      if (n > 0) {
        pos += n;
        pending = pending.length ? Buffer.concat([pending, buf.subarray(0, n)]) : Buffer.from(buf.subarray(0, n));
        let start = 0;
        let nl: number;
        while ((nl = pending.indexOf(0x0a, start)) >= 0) {
          const rec = parseK8sRecord(pending.subarray(start, nl));
          start = nl + 1;
          if (!rec) continue;
          if (since !== undefined && rec.timeNs < since) continue;
          if (until !== undefined && rec.timeNs >= until) return;
          yield rec;
          if (opts.signal?.aborted) return;
        }
        pending = pending.subarray(start);
        continue;
      }
      // At the end of the file.
      if (!opts.follow || stopAfterDrain) return;
      if (until !== undefined && BigInt(Date.now()) * 1_000_000n >= until) return;
      // Re-check for data after arming the wake-up: a write may have landed in between. The
      // timer bounds the wait for filesystems where fs.watch misses events.
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 1000);
        function done(): void {
          clearTimeout(t);
          wake = undefined;
          resolve();
        }
        wake = done;
        if (fs.fstatSync(fd).size > pos || stopAfterDrain || opts.signal?.aborted) done();
      });
    }
  } finally {
    watcher?.close();
    fs.closeSync(fd);
  }
}
