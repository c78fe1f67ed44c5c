// Rotation of a container's log. conmon writes the log and enforces the size cap itself (its
// --log-size-max: when the next record would pass the cap it fsyncs, opens <log>.tmp with O_TRUNC
// and renames it over <log>), so the disk bound holds even while berthd is down. What conmon
// replaces would be lost: berthd keeps a hard link (<log>.hold) to the file conmon writes, and
// links an empty file of its own (<log>.next) as <log>.tmp, so the file conmon switches to is
// held before conmon switches. When berthd sees the replacement (fs.watch on the container's
// directory) it shifts the files as docker's json-file does: the held file becomes .1, .1 becomes
// .2, ..., the oldest beyond max-file goes, compression (compress=true) turns .1 into .1.gz in the
// background, and it re-arms. A file is lost only if conmon replaces the log twice before berthd
// reacts once (an event-loop stall as long as two files' worth of writing, or berthd being down).
//
// Disk bound: with max-file N >= 2 conmon's cap is N*max-size/(N+2), not max-size. While berthd
// does not react there are at most N+2 files on disk (the held one, the armed one conmon took and
// filled, the one conmon made itself, N-1 rotated ones); with that cap they still fit in
// N*max-size, however long berthd takes (or while it is down). With max-file 1 conmon's cap is
// max-size and nothing is held: the full file is replaced, as docker's json-file truncates it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../common/logger';
import { logPolicy, type LogConfig, type LogPolicy } from './config';
import { GZ_TMP_SUFFIX, HOLD_SUFFIX, NEXT_SUFFIX, TMP_SUFFIX, rotatedFiles } from './files';

const gzip = promisify(zlib.gzip);
const readFd = promisify((fd: number, cb: (err: NodeJS.ErrnoException | null, data: Buffer) => void) => fs.readFile(fd, cb));

/** What conmon is started with for a container's log. */
export interface ConmonLogOptions {
  /** No log file (the none driver). */
  none: boolean;
  /** conmon's --log-size-max (bytes), when the driver rotates. */
  logSizeMax?: number;
}

/** conmon's cap on one file for a policy (see the disk bound above). */
export function conmonCap(p: LogPolicy): number | undefined {
  if (!p.readable || p.maxSize <= 0) return undefined;
  if (p.maxFile < 2) return p.maxSize;
  return Math.max(1, Math.floor((p.maxFile * p.maxSize) / (p.maxFile + 2)));
}

function statOf(p: string): fs.Stats | undefined {
  return fs.statSync(p, { throwIfNoEntry: false }) ?? undefined;
}

function rmQuiet(p: string): void {
  fs.rmSync(p, { force: true });
}

interface Watched {
  logPath: string;
  policy: LogPolicy;
  watcher?: fs.FSWatcher;
}

/** The logging a keeper needs (a Logger, or the worker's messages to the main thread). */
export type KeeperLog = Pick<Logger, 'warn' | 'debug'>;

/**
 * Keeps the files of rotating logs in order: runs in the rotation worker (watch, settle,
 * compress), and in the main thread before a container starts. Every change to the files is made
 * inside a seqlock (seq odd while changing), so that readers in another thread can list and open
 * the files consistently (see LogRotation.consistent).
 */
export class LogFilesKeeper {
  private readonly watched = new Map<string, Watched>();
  private readonly compressing = new Set<number>();
  /** Settles that came after conmon had switched files twice (for tests and diagnostics). */
  lateSettles = 0;

  constructor(
    private readonly log: KeeperLog,
    private readonly seq: Int32Array,
    /** Called after each settle of a log (followers pin the files that appeared). */
    private readonly settled: (logPath: string) => void = () => {},
  ) {}

  /** Runs fn as one change readers never see half-done. */
  private locked<T>(fn: () => T): T {
    Atomics.add(this.seq, 0, 1);
    try {
      return fn();
    } finally {
      Atomics.add(this.seq, 0, 1);
    }
  }

  /**
   * Called before conmon starts for a new run. conmon counts a file's size from 0 when it starts
   * (it appends to what is there), so a file left from the last run is rotated now; the options
   * conmon gets are returned.
   */
  beforeStart(logPath: string, cfg: LogConfig): ConmonLogOptions {
    const policy = logPolicy(cfg);
    if (!policy.readable) return { none: true };
    const cap = conmonCap(policy);
    return this.locked(() => {
      // Replacements seen late (berthd was down when the last run ended) first.
      if (cap !== undefined && policy.maxFile >= 2) this.settle(logPath, policy, false);
      for (const suffix of [HOLD_SUFFIX, NEXT_SUFFIX, TMP_SUFFIX]) rmQuiet(logPath + suffix);
      if (cap === undefined) return { none: false };
      const st = statOf(logPath);
      if (st && st.size > 0) {
        if (policy.maxFile >= 2) this.shift(logPath, logPath, policy);
        else rmQuiet(logPath);
      }
      return { none: false, logSizeMax: cap };
    });
  }

  /**
   * Starts watching a running container's log (after conmon made the file, or when berthd comes
   * back to a container that kept running: replacements made meanwhile are shifted in now).
   */
  watch(id: string, logPath: string, cfg: LogConfig): void {
    this.unwatch(id, false);
    const policy = logPolicy(cfg);
    if (!policy.readable || policy.maxSize <= 0 || policy.maxFile < 2) return;
    const w: Watched = { logPath, policy };
    this.watched.set(id, w);
    const dir = path.dirname(logPath);
    const base = path.basename(logPath);
    try {
      // Events for every write to the log arrive too (inotify's IN_MODIFY cannot be masked out
      // through fs.watch); they cost a string compare each and coalesce while berthd is busy.
      w.watcher = fs.watch(dir, { persistent: false }, (type, name) => {
        if (type === 'rename' && name === base) this.check(w);
      });
      w.watcher.on('error', (err: Error) => this.log.warn('watching a container log failed', { id, error: err.message }));
    } catch (err) {
      this.log.warn('cannot watch a container log', { id, error: (err as Error).message });
    }
    for (const f of fs.readdirSync(dir)) if (f.startsWith(base) && f.endsWith(GZ_TMP_SUFFIX)) rmQuiet(path.join(dir, f));
    this.check(w);
    if (policy.compress) for (const f of rotatedFiles(logPath)) if (!f.compressed) this.compress(f.path, policy);
  }

  /** Stops watching (the container exited, or berthd stops); with final, the links berthd holds go. */
  unwatch(id: string, final = true): void {
    const w = this.watched.get(id);
    if (!w) return;
    this.watched.delete(id);
    w.watcher?.close();
    if (final) {
      this.locked(() => {
        this.settle(w.logPath, w.policy, false);
        for (const suffix of [HOLD_SUFFIX, NEXT_SUFFIX, TMP_SUFFIX]) rmQuiet(w.logPath + suffix);
      });
      this.settled(w.logPath);
    }
  }

  close(): void {
    for (const id of [...this.watched.keys()]) this.unwatch(id, false);
  }

  private check(w: Watched): void {
    try {
      this.locked(() => this.settle(w.logPath, w.policy, true));
      this.settled(w.logPath);
    } catch (err) {
      this.log.warn('rotating a container log failed', { log: w.logPath, error: (err as Error).message });
    }
  }

  /**
   * Brings the files back to order after conmon replaced the current one, synchronously (readers
   * in berthd never see a half-done shift):
   *   - the held file, when no longer current, is finished: it becomes .1;
   *   - the armed file (.next, linked as conmon's <log>.tmp) that conmon took: current now, so it
   *     becomes the held one; or, if conmon replaced it too, finished as well: shifted in;
   *   - the current file is held, and (with arm) a new empty file is linked as <log>.tmp, so that
   *     the file conmon switches to next is berthd's already.
   * A file conmon made itself (when berthd did not re-arm in time) is held as soon as berthd sees
   * it; only a file conmon made and replaced again before that is lost.
   */
  private settle(logPath: string, policy: LogPolicy, arm: boolean): void {
    const hold = logPath + HOLD_SUFFIX;
    const next = logPath + NEXT_SUFFIX;
    const tmp = logPath + TMP_SUFFIX;
    const cur = statOf(logPath);
    const held = statOf(hold);
    const nx0 = statOf(next);
    if (cur && held && cur.ino !== held.ino && cur.ino !== nx0?.ino) {
      // conmon made the current file itself: it switched twice since berthd last settled, and
      // a file it made in between (if any) may be gone.
      this.log.debug('conmon switched log files twice before berthd settled them', { log: logPath });
      this.lateSettles++;
    }
    if (held && held.ino !== cur?.ino) {
      if (held.size > 0) this.shift(logPath, hold, policy);
      else rmQuiet(hold);
    }
    const nx = statOf(next);
    if (nx) {
      const armed = statOf(tmp)?.ino === nx.ino;
      if (nx.ino === cur?.ino) fs.renameSync(next, hold);
      else if (!armed) {
        if (nx.size > 0) this.shift(logPath, next, policy);
        else rmQuiet(next);
      }
    }
    if (cur && !statOf(hold)) fs.linkSync(logPath, hold);
    if (!arm || statOf(next) || statOf(tmp)) return;
    fs.closeSync(fs.openSync(next, 'wx', 0o600));
    try {
      fs.linkSync(next, tmp);
    } catch (err) {
      // conmon is between opening its own <log>.tmp and renaming it: the next event settles it.
      rmQuiet(next);
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }

  /** docker's rotate: drop the oldest, renumber, src becomes .1. */
  private shift(logPath: string, src: string, policy: LogPolicy): void {
    const n = policy.maxFile;
    for (const f of rotatedFiles(logPath)) if (f.n >= n - 1) rmQuiet(f.path);
    for (let i = n - 2; i >= 1; i--) {
      for (const ext of ['', '.gz']) {
        const from = `${logPath}.${i}${ext}`;
        if (fs.existsSync(from)) fs.renameSync(from, `${logPath}.${i + 1}${ext}`);
      }
    }
    fs.renameSync(src, `${logPath}.1`);
    if (policy.compress) this.compress(`${logPath}.1`, policy);
  }

  /**
   * Compresses a rotated file off the event loop. The file may be renumbered meanwhile; it is
   * found again by inode, and the compressed file replaces it in one synchronous step.
   */
  private compress(file: string, policy: LogPolicy): void {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return;
    }
    // The open descriptor pins the file: a shift that renames it meanwhile changes nothing here.
    const ino = fs.fstatSync(fd).ino;
    if (this.compressing.has(ino)) {
      fs.closeSync(fd);
      return;
    }
    this.compressing.add(ino);
    const logPath = file.replace(/\.\d+$/, '');
    void (async () => {
      let data: Buffer;
      try {
        data = await readFd(fd);
      } finally {
        fs.closeSync(fd);
      }
      const gz = await gzip(data);
      const now = rotatedFiles(logPath).find((f) => !f.compressed && statOf(f.path)?.ino === ino);
      if (!now || now.n > policy.maxFile - 1) return;
      const tmp = now.path + GZ_TMP_SUFFIX;
      fs.writeFileSync(tmp, gz, { mode: 0o600 });
      this.locked(() => {
        fs.renameSync(tmp, `${now.path}.gz`);
        rmQuiet(now.path);
      });
    })()
      .catch((err) => this.log.warn('compressing a container log failed', { file, error: (err as Error).message }))
      .finally(() => this.compressing.delete(ino));
  }
}

// ---- the main thread's side ----

type WorkerRequest = { op: 'watch'; id: string; logPath: string; cfg: LogConfig } | { op: 'unwatch'; id: string; final: boolean; reqId: number };
type WorkerMessage = { op: 'settled'; logPath: string } | { op: 'done'; reqId: number } | { op: 'log'; level: 'warn' | 'debug'; msg: string; fields: Record<string, unknown> };

/**
 * Rotation for every running container whose driver rotates. Watching and settling run in a
 * worker thread: conmon switches files as fast as a container writes, and berthd must hold the
 * new file before conmon switches twice; the main thread's event loop, busy sending logs or
 * attach output, answered too late under load, the worker's does at once.
 */
export class LogRotation {
  private readonly seq = new Int32Array(new SharedArrayBuffer(4));
  private readonly keeper: LogFilesKeeper;
  private readonly worker: Worker;
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly pending = new Map<number, () => void>();
  private nextReq = 0;
  private closed = false;

  constructor(private readonly log: Logger) {
    this.keeper = new LogFilesKeeper(log, this.seq);
    this.worker = new Worker(path.join(__dirname, 'rotate-worker.js'), { workerData: { seq: this.seq } });
    this.worker.unref();
    this.worker.on('message', (m: WorkerMessage) => {
      if (m.op === 'settled') this.notify(m.logPath);
      else if (m.op === 'done') {
        this.pending.get(m.reqId)?.();
        this.pending.delete(m.reqId);
      } else if (m.op === 'log') this.log[m.level](m.msg, m.fields);
    });
    this.worker.on('error', (err) => this.log.error('log rotation worker failed', { error: err.message }));
  }

  /** See LogFilesKeeper.beforeStart (the container is not running: the worker does not watch it). */
  beforeStart(logPath: string, cfg: LogConfig): ConmonLogOptions {
    return this.keeper.beforeStart(logPath, cfg);
  }

  watch(id: string, logPath: string, cfg: LogConfig): void {
    if (this.closed) return;
    this.post({ op: 'watch', id, logPath, cfg });
  }

  /** Stops rotating a container's log; with final (it exited), the last switch is settled and berthd's links go. */
  unwatch(id: string, final = true): Promise<void> {
    if (this.closed) return Promise.resolve();
    const reqId = ++this.nextReq;
    return new Promise((resolve) => {
      this.pending.set(reqId, resolve);
      this.post({ op: 'unwatch', id, final, reqId });
    });
  }

  private post(m: WorkerRequest): void {
    this.worker.postMessage(m);
  }

  /** Calls fn each time berthd has settled the files of logPath; returns the unsubscribe. */
  subscribe(logPath: string, fn: () => void): () => void {
    let set = this.listeners.get(logPath);
    if (!set) this.listeners.set(logPath, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.listeners.get(logPath) === set) this.listeners.delete(logPath);
    };
  }

  private notify(logPath: string): void {
    for (const fn of this.listeners.get(logPath) ?? []) {
      try {
        fn();
      } catch (err) {
        this.log.warn('log follower failed to pin files', { log: logPath, error: (err as Error).message });
      }
    }
  }

  /**
   * Runs fn (which lists and opens log files) until no change by the worker overlapped it: a
   * seqlock. A change takes microseconds, so waiting for it spins.
   */
  consistent<T>(fn: () => T, undo: (t: T) => void): T {
    // Bounded: a worker terminated inside a change (at shutdown) leaves the count odd for good.
    const deadline = Date.now() + 200;
    for (;;) {
      const before = Atomics.load(this.seq, 0);
      if (before % 2 === 1 && Date.now() < deadline) continue;
      const t = fn();
      if (Atomics.load(this.seq, 0) === before || Date.now() >= deadline) return t;
      undo(t);
    }
  }

  /** Stops the worker; containers keep running and berthd's links stay for the next start. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.pending.values()) r();
    this.pending.clear();
    void this.worker.terminate();
  }
}
