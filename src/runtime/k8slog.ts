// Reader of conmon's k8s-file log: one record per line,
//   <RFC3339Nano time> <stdout|stderr> <F|P> <data>
// F ends a line of the container's output, P is a piece of a longer line (or output not yet
// ended by a newline). tail reads the file backwards in blocks, so that the last lines of a huge
// log cost only their own size; follow waits on fs.watch for appended records.
import * as fs from 'node:fs';

export interface LogRecord {
  stream: 'stdout' | 'stderr';
  /** Time as written, normalised to UTC RFC3339 with nanoseconds ("2024-05-01T10:00:00.123456789Z"). */
  readonly timestamp: string;
  /** Nanoseconds since the epoch (0 when the record's time does not parse). */
  readonly timeNs: bigint;
  readonly time: Date;
  /** The data, without the record's newline. */
  readonly line: Buffer;
  /** What the container wrote: line, and for an F record the newline that ended it. */
  readonly output: Buffer;
  /** True for a P record: the container's line continues in the next record (no newline here). */
  readonly partial: boolean;
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
/** Reads going forwards: large, since a whole log is often read. */
const READ_BLOCK = 256 * 1024;
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

/**
 * A record whose time is parsed only when asked for: a big log is mostly copied out as it is, and
 * parsing every timestamp cost more than everything else per line.
 */
class K8sRecord implements LogRecord {
  private ns: bigint | undefined;
  private lineData: Buffer | undefined;

  constructor(
    readonly stream: 'stdout' | 'stderr',
    /** The buffer holding the record, and where its time ends in it (the time starts at start). */
    private readonly buf: Buffer,
    private readonly start: number,
    private readonly timeEnd: number,
    readonly output: Buffer,
    readonly partial: boolean,
    /** Whether output ends with the record's newline. */
    private readonly hasNewline: boolean,
  ) {}

  /** Made on demand: most readers want output, and a subarray per record counts in a big log. */
  get line(): Buffer {
    return (this.lineData ??= this.hasNewline ? this.output.subarray(0, this.output.length - 1) : this.output);
  }

  /** The record's time, or undefined when it does not parse. */
  parsedTime(): bigint | undefined {
    if (this.ns === undefined) this.ns = parseRfc3339Nano(this.buf.toString('latin1', this.start, this.timeEnd)) ?? -1n;
    return this.ns < 0n ? undefined : this.ns;
  }

  get timeNs(): bigint {
    return this.parsedTime() ?? 0n;
  }

  get timestamp(): string {
    const ns = this.parsedTime();
    return ns === undefined ? this.buf.toString('latin1', this.start, this.timeEnd) : formatRfc3339NanoUTC(ns);
  }

  get time(): Date {
    return new Date(Number(this.timeNs / 1_000_000n));
  }
}

const SPACE = 0x20;
const NEWLINE = 0x0a;
const LETTER_F = 0x46;
const LETTER_P = 0x50;
/** "stdout" and "stderr" differ from "std" on: their fourth byte. */
const LETTER_O = 0x6f;
const LETTER_E = 0x65;

/**
 * Parses the record in buf[start, end) (end is where its newline is, or buf's length when it has
 * none); undefined for a malformed record. Only the shape of the time is checked here (it starts
 * with a digit and is at least as long as a time without fraction); it is parsed when needed.
 */
function parseRecordAt(buf: Buffer, start: number, end: number): K8sRecord | undefined {
  const s1 = buf.indexOf(SPACE, start);
  if (s1 < 0 || s1 >= end || s1 - start < 20 || buf[start] < 0x30 || buf[start] > 0x39) return undefined;
  // " stdout F" or " stderr P": the stream, a space and the tag end 8 bytes after the space.
  if (s1 + 8 >= end || buf[s1 + 7] !== SPACE) return undefined;
  if (buf[s1 + 1] !== 0x73 || buf[s1 + 2] !== 0x74 || buf[s1 + 3] !== 0x64) return undefined;
  let stream: 'stdout' | 'stderr';
  if (buf[s1 + 4] === LETTER_O && buf[s1 + 5] === 0x75 && buf[s1 + 6] === 0x74) stream = 'stdout';
  else if (buf[s1 + 4] === LETTER_E && buf[s1 + 5] === 0x72 && buf[s1 + 6] === 0x72) stream = 'stderr';
  else return undefined;
  const tag = buf[s1 + 8];
  if (tag !== LETTER_F && tag !== LETTER_P) return undefined;
  let lineStart = end;
  if (s1 + 9 < end) {
    if (buf[s1 + 9] !== SPACE) return undefined;
    lineStart = s1 + 10;
  }
  const partial = tag === LETTER_P;
  const withNewline = !partial && end < buf.length && buf[end] === NEWLINE;
  return new K8sRecord(stream, buf, start, s1, buf.subarray(lineStart, withNewline ? end + 1 : end), partial, withNewline);
}

/** Parses one record (without its newline); undefined for a malformed line. */
export function parseK8sRecord(raw: Buffer): LogRecord | undefined {
  const rec = parseRecordAt(raw, 0, raw.length);
  return rec && rec.parsedTime() !== undefined ? rec : undefined;
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

/** Reads len bytes at pos into buf (a file descriptor's pread, or a copy out of memory). */
export type ReadAt = (buf: Buffer, len: number, pos: number) => void;

/** A ReadAt on a file descriptor. */
export function fdReader(fd: number): ReadAt {
  return (buf, len, pos) => {
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, pos + got);
      if (n === 0) break;
      got += n;
    }
  };
}

/**
 * Where the last n lines of a log start, found by reading backwards in blocks, and how many lines
 * (up to n) there are from there. Only complete records (ending in a newline) are considered; a
 * trailing P record with no F after it counts as a line of its own (output not yet ended by a
 * newline). With fewer than n lines, offset is 0 and lines says how many there are, so that a
 * reader of rotated files knows how many more to take from the file before.
 */
export function tailScan(read: ReadAt, size: number, n: number): { offset: number; lines: number } {
  if (n <= 0) return { offset: size, lines: 0 };
  let pos = size;
  let carry = Buffer.alloc(0); // bytes after the last newline seen so far (going backwards)
  let lines = 0;
  let sawTrailingPartial = false;
  let first = true;
  const buf = Buffer.alloc(BLOCK);
  while (pos > 0) {
    const len = Math.min(BLOCK, pos);
    pos -= len;
    read(buf, len, pos);
    const chunk = carry.length > 0 ? Buffer.concat([buf.subarray(0, len), carry]) : buf.subarray(0, len);
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
        if (lines > n) return { offset: pos + prevNl + 1 + rec.length + 1, lines: n };
      } else if (lines === 0 && !sawTrailingPartial) {
        sawTrailingPartial = true;
        lines++;
        if (lines > n) return { offset: pos + prevNl + 1 + rec.length + 1, lines: n };
      }
      end = prevNl + 1;
    }
    // No record is this long (conmon writes at most a few KiB per record): this is not a log
    // line but garbage (a hole, a corrupt region). The tail starts after it.
    if (end > MAX_RECORD) return { offset: pos + end, lines };
    carry = Buffer.from(chunk.subarray(0, end));
  }
  return { offset: 0, lines };
}

/** Offset where the last n lines of the file start (see tailScan). */
export function tailOffset(fd: number, size: number, n: number): number {
  return tailScan(fdReader(fd), size, n).offset;
}

/**
 * Splits data into records (complete lines only); returns where the unparsed rest starts. With
 * since/until (nanoseconds), records before since are skipped, and reaching until stops: done.
 */
export function parseRecords(data: Buffer, out: LogRecord[], since?: bigint, until?: bigint): { rest: number; done: boolean } {
  let start = 0;
  let nl: number;
  while ((nl = data.indexOf(NEWLINE, start)) >= 0) {
    const rec = parseRecordAt(data, start, nl);
    start = nl + 1;
    if (!rec) continue;
    if (since !== undefined || until !== undefined) {
      const t = rec.parsedTime();
      if (t === undefined || (since !== undefined && t < since)) continue;
      if (until !== undefined && t >= until) return { rest: start, done: true };
    }
    out.push(rec);
  }
  return { rest: start, done: false };
}

/** The time of the last complete record in a log (nanoseconds), or undefined. */
export function lastRecordTime(read: ReadAt, size: number): bigint | undefined {
  const { offset, lines } = tailScan(read, size, 1);
  if (lines === 0) return undefined;
  const len = Math.min(size - offset, MAX_RECORD);
  const buf = Buffer.alloc(len);
  read(buf, len, offset);
  const nl = buf.indexOf(NEWLINE);
  const rec = parseRecordAt(buf, 0, nl < 0 ? buf.length : nl);
  return rec?.parsedTime();
}

export function toNanos(t: number | bigint): bigint {
  return toNs(t);
}

/**
 * Yields the log's records, in batches of what one read of the file brought (a generator step
 * per record made reading a big log cost several times more than the records themselves).
 * Records are complete lines of the file; with follow, a record being written is waited for.
 */
export async function* readK8sLogBatches(file: string, opts: ReadLogOptions = {}): AsyncGenerator<LogRecord[]> {
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
    /** Bytes read but not yet parsed: the start of a record whose newline is still to come. */
    let pending = Buffer.alloc(0);
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
      // A fresh buffer per read (records handed out point into it), after the pending bytes.
      const chunk = Buffer.allocUnsafe(pending.length + READ_BLOCK);
      pending.copy(chunk, 0);
      const n = fs.readSync(fd, chunk, pending.length, READ_BLOCK, pos);
      if (n > 0) {
        pos += n;
        const data = chunk.subarray(0, pending.length + n);
        const batch: LogRecord[] = [];
        let start = 0;
        let nl: number;
        while ((nl = data.indexOf(NEWLINE, start)) >= 0) {
          const rec = parseRecordAt(data, start, nl);
          start = nl + 1;
          if (!rec) continue;
          if (since !== undefined || until !== undefined) {
            const t = rec.parsedTime();
            if (t === undefined || (since !== undefined && t < since)) continue;
            if (until !== undefined && t >= until) {
              if (batch.length > 0) yield batch;
              return;
            }
          }
          batch.push(rec);
        }
        pending = data.subarray(start);
        if (batch.length > 0) yield batch;
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

/** Yields the log's records one by one (see readK8sLogBatches). */
export async function* readK8sLog(file: string, opts: ReadLogOptions = {}): AsyncGenerator<LogRecord> {
  for await (const batch of readK8sLogBatches(file, opts)) {
    for (const rec of batch) {
      yield rec;
      if (opts.signal?.aborted) return;
    }
  }
}
