// Reads a container's log across its files (rotated, compressed, held, current), oldest first,
// with docker's since/until/tail/follow. tail reads backwards from the end in blocks, file by
// file, so the last lines of a huge log cost only their own size. follow keeps its descriptor on
// the file it reads: when conmon replaces the file, the reader finishes the old one (conmon
// closed it before replacing it) and goes on with the next one, found by inode among the
// rotated files, so a follower misses nothing and repeats nothing as long as the file after the
// one it is reading still exists (or, once retention dropped the one it reads, by number).
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { fdReader, lastRecordTime, parseRecords, tailScan, toNanos, type LogRecord, type ReadAt, type ReadLogOptions } from '../runtime/k8slog';
import { logFiles } from './files';

const gunzip = promisify(zlib.gunzip);
const READ_BLOCK = 256 * 1024;
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Source {
  ino: number;
  /**
   * The generation's number, when known. Inode numbers are reused once a file is deleted, so a
   * follower tells files apart by number, and by inode only among files it holds open.
   */
  seq?: number;
  /** Set for a file on disk (the one conmon may still write). */
  fd?: number;
  /** A compressed file, inflated. */
  data?: Buffer;
}

function sizeOf(s: Source): number {
  return s.data ? s.data.length : fs.fstatSync(s.fd!).size;
}

function readerOf(s: Source): ReadAt {
  if (s.fd !== undefined) return fdReader(s.fd);
  const data = s.data!;
  return (buf, len, pos) => data.copy(buf, 0, pos, pos + len);
}

function closeAll(sources: Source[]): void {
  for (const s of sources) if (s.fd !== undefined) fs.closeSync(s.fd);
}

/** Runs a listing until no rotation overlapped it (LogRotation.consistent). */
export type Consistent = <T extends Source[]>(fn: () => T, undo: (t: T) => void) => T;

/**
 * Opens every file of the log at once, consistently (rotation runs in another thread: see
 * LogRotation.consistent), each inode once, oldest first.
 */
function openFiles(logPath: string): (Source & { compressed: boolean })[] {
  {
    const opened: (Source & { compressed: boolean })[] = [];
    for (const f of logFiles(logPath)) {
      let fd: number;
      try {
        fd = fs.openSync(f.path, 'r');
      } catch {
        continue;
      }
      const ino = fs.fstatSync(fd).ino;
      // A file seen under two names (a generation and the current one) counts where it comes last.
      const dup = opened.findIndex((o) => o.ino === ino);
      let seq = f.seq;
      if (dup >= 0) {
        seq ??= opened[dup].seq;
        fs.closeSync(opened[dup].fd!);
        opened.splice(dup, 1);
      }
      opened.push({ ino, fd, compressed: f.compressed, seq });
    }
    return opened;
  }
}

async function openSources(logPath: string, after?: Pick<Source, 'ino' | 'seq'>, consistent?: Consistent): Promise<Source[]> {
  const openAll = (): (Source & { compressed: boolean })[] => openFiles(logPath);
  const opened = consistent ? consistent(openAll, closeAll) : openAll();
  let sources: Source[] = opened;
  if (after !== undefined) {
    // Only the files after `after` (a follower moving on): found by inode while it is still
    // listed; once retention has dropped it (the follower held it open, reading its end, while
    // conmon switched files and berthd rotated), by number — every generation after it still on
    // disk, not just the current file. Only a file conmon made itself and not yet linked has no
    // number: it is the current one, the newest.
    const i = opened.findIndex((o) => o.ino === after.ino);
    const afterSeq = after.seq;
    const keep = i >= 0 ? opened.slice(i + 1) : afterSeq !== undefined ? opened.filter((o) => o.seq === undefined || o.seq > afterSeq) : opened.slice(-1);
    closeAll(opened.filter((o) => !keep.includes(o)));
    sources = keep;
  }
  try {
    for (const s of sources as (Source & { compressed?: boolean })[]) {
      if (!s.compressed) continue;
      const fd = s.fd!;
      s.data = await gunzip(fs.readFileSync(fd));
      fs.closeSync(fd);
      s.fd = undefined;
    }
  } catch (err) {
    closeAll(sources);
    throw err;
  }
  return sources;
}

/** The current file's inode, or undefined when there is none. */
function currentIno(logPath: string): number | undefined {
  return fs.statSync(logPath, { throwIfNoEntry: false })?.ino;
}

export interface ContainerLogReadOptions extends ReadLogOptions {
  /**
   * With follow: subscribes to berthd's rotation of this log (LogRotation.subscribe). Each time
   * berthd has shifted the files, the follower opens the files it has not seen, so that rotation
   * cannot take a file from a follower that has not read it yet. A follower subscribes before it
   * lists the files (ready: the rotation worker knows of it), so no file can come and go between
   * its listing and its first notice.
   */
  onRotate?: (fn: (pins: { seq: number; ino: number; fd: number }[]) => void) => { ready: Promise<void>; unsubscribe: () => void };
  /** How many bytes of files a follower may keep open ahead of the one it reads (default 64 MiB). */
  pinBudget?: number;
  /** Lists files consistently while rotation runs in another thread (LogRotation.consistent). */
  consistent?: Consistent;
}

const DEFAULT_PIN_BUDGET = 64 * 1024 * 1024;

/**
 * Yields the log's records in batches (one read of a file each). With follow, waits for more
 * until followUntil resolves (the container exited) and everything written is read, or signal
 * aborts.
 */
export async function* readContainerLog(logPath: string, opts: ContainerLogReadOptions = {}): AsyncGenerator<LogRecord[]> {
  const since = opts.since !== undefined ? toNanos(opts.since) : undefined;
  const until = opts.until !== undefined ? toNanos(opts.until) : undefined;
  let sources: Source[] = [];
  /** The newest generation number the follower has seen (files after it are new to it). */
  let newestSeq = -1;
  let watcher: fs.FSWatcher | undefined;
  let unsubscribe: (() => void) | undefined;
  let wake: (() => void) | undefined;
  let stopAfterDrain = false;
  /** Files pinned for this follower before it listed the files. */
  let early: Source[] | undefined = [];
  try {
    if (opts.follow && opts.onRotate) {
      const budget = opts.pinBudget ?? DEFAULT_PIN_BUDGET;
      const sub = opts.onRotate((pins) => {
        // The files berthd's rotation worker opened right after settling them (it drops files
        // only later): a follower behind the rotation still gets each file, through the
        // worker's descriptor (the worker closes it once this call returns). Beyond the budget
        // the oldest are let go (a gap, as for a docker follower too slow for its log).
        const into = early ?? sources;
        for (const p of pins) {
          if (p.seq <= newestSeq || into.some((y) => y.ino === p.ino)) continue;
          let fd: number;
          try {
            fd = fs.openSync(`/proc/self/fd/${p.fd}`, 'r');
          } catch {
            continue;
          }
          // The worker may have closed it and the number gone to another file meanwhile.
          if (fs.fstatSync(fd).ino !== p.ino) {
            fs.closeSync(fd);
            continue;
          }
          newestSeq = p.seq;
          into.push({ ino: p.ino, fd, seq: p.seq });
        }
        let pinned = 0;
        for (let i = into.length - 1; i >= 1; i--) {
          if (into[i].fd === undefined) continue;
          pinned += fs.fstatSync(into[i].fd!).size;
          if (pinned > budget && i < into.length - 1) {
            closeAll(into.splice(1, i));
            break;
          }
        }
        wake?.();
      });
      unsubscribe = sub.unsubscribe;
      await sub.ready;
    }
    // The files still to read, the one being read first.
    sources = await openSources(logPath, undefined, opts.consistent);
    newestSeq = Math.max(-1, ...sources.map((x) => x.seq ?? -1));
    // Files pinned meanwhile come after the listed ones, or are among them.
    for (const p of early) {
      if (p.seq! > newestSeq && !sources.some((y) => y.ino === p.ino)) {
        sources.push(p);
        newestSeq = p.seq!;
      } else closeAll([p]);
    }
    early = undefined;
    if (sources.length === 0) return;
    // Where to start: the tail, counted backwards across files.
    let first = 0;
    let pos = 0;
    if (opts.tail !== undefined && opts.tail >= 0) {
      let need = opts.tail;
      first = sources.length - 1;
      pos = sizeOf(sources[first]);
      for (let i = sources.length - 1; i >= 0 && need > 0; i--) {
        const r = tailScan(readerOf(sources[i]), sizeOf(sources[i]), need);
        first = i;
        pos = r.offset;
        need -= r.lines;
        if (r.offset > 0) break;
      }
    }
    // Files that end before since are skipped without reading them through.
    if (since !== undefined) {
      while (first < sources.length - 1) {
        const x = sources[first];
        const last = lastRecordTime(readerOf(x), sizeOf(x));
        if (last === undefined || last >= since) break;
        first++;
        pos = 0;
      }
    }
    closeAll(sources.slice(0, first));
    sources = sources.slice(first);
    if (opts.follow) {
      // Armed before reading, so a write landing meanwhile wakes the wait below.
      watcher = fs.watch(logPath, () => wake?.());
      watcher.on('error', () => {});
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
      const x = sources[0];
      // Bytes read but not yet parsed: the start of a record whose newline is still to come.
      let pending: Buffer = Buffer.alloc(0);
      for (;;) {
        if (opts.signal?.aborted) return;
        let data: Buffer;
        if (x.data) {
          data = pos < x.data.length ? x.data.subarray(pos) : Buffer.alloc(0);
          pos = x.data.length;
        } else {
          // A fresh buffer per read (records handed out point into it), after the pending bytes.
          const chunk = Buffer.allocUnsafe(pending.length + READ_BLOCK);
          pending.copy(chunk, 0);
          const n = fs.readSync(x.fd!, chunk, pending.length, READ_BLOCK, pos);
          pos += n;
          data = n > 0 ? chunk.subarray(0, pending.length + n) : Buffer.alloc(0);
        }
        if (data.length > 0) {
          const batch: LogRecord[] = [];
          const r = parseRecords(data, batch, since, until);
          if (batch.length > 0) yield batch;
          if (r.done) return;
          pending = data.subarray(r.rest);
          // Reading and sending run on promises only; without a turn of the event loop now and
          // then, a reader catching up would starve everything else, rotation included.
          await yieldToEventLoop();
          continue;
        }
        // At the end of this file. A file with a known successor is finished (conmon closes a
        // file before it switches to the next).
        if (sources.length > 1) break;
        if (!opts.follow) return;
        if (x.fd !== undefined && currentIno(logPath) !== x.ino) {
          // conmon replaced the file (it closed this one first): read what is left, move on.
          if (fs.fstatSync(x.fd).size > pos) continue;
          break;
        }
        if (stopAfterDrain) return;
        if (until !== undefined && BigInt(Date.now()) * 1_000_000n >= until) return;
        // Re-check for data after arming the wake-up: a write may have landed in between. The
        // timer bounds the wait for filesystems where fs.watch misses events, and notices a
        // replacement when berthd does not rotate this log (max-file 1).
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, 250);
          function done(): void {
            clearTimeout(t);
            wake = undefined;
            resolve();
          }
          wake = done;
          if (sources.length > 1 || fs.fstatSync(x.fd!).size > pos || stopAfterDrain || opts.signal?.aborted || currentIno(logPath) !== x.ino) done();
        });
      }
      pos = 0;
      // Nothing pinned yet: a turn of the event loop first, so that settle notices the rotation
      // worker already sent (files pinned for this follower) are taken before listing anew.
      if (sources.length === 1) await yieldToEventLoop();
      if (sources.length === 1) {
        // Still nothing pinned: the files after this one, freshly listed (this one is still
        // open, so its inode number cannot have gone to another file).
        const next = await openSources(logPath, x, opts.consistent);
        closeAll(sources);
        sources = next;
        for (const y of sources) newestSeq = Math.max(newestSeq, y.seq ?? -1);
        if (sources.length === 0) return;
      } else closeAll(sources.splice(0, 1));
      if (opts.follow && currentIno(logPath) === sources[sources.length - 1].ino) {
        watcher?.close();
        watcher = fs.watch(logPath, () => wake?.());
        watcher.on('error', () => {});
      }
    }
  } finally {
    unsubscribe?.();
    watcher?.close();
    closeAll(sources);
    if (early) closeAll(early);
  }
}

/** The records one by one (see readContainerLog). */
export async function* readContainerLogRecords(logPath: string, opts: ContainerLogReadOptions = {}): AsyncGenerator<LogRecord> {
  for await (const batch of readContainerLog(logPath, opts)) {
    for (const rec of batch) {
      yield rec;
      if (opts.signal?.aborted) return;
    }
  }
}
