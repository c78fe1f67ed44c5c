// Rotation of a container's log. conmon writes the log and enforces the size cap itself (its
// --log-size-max: when the next record would pass the cap it fsyncs and closes the file, opens
// <log>.tmp with O_TRUNC and renames <log>.tmp over <log>), so the disk bound holds even while
// berthd is down. berthd makes conmon's switches lose nothing:
//   - <log> is a symlink to the current generation, <dir>/log-files/<seq>.log; conmon opens
//     through it;
//   - berthd arms <log>.tmp as a symlink to a new, empty generation. When conmon switches it
//     opens that generation through the symlink and renames the *symlink* over <log>: no
//     generation is ever replaced, and the writes land in log-files/, so the directory berthd
//     watches sees only the switches (no event per write);
//   - when berthd sees a switch (fs.watch on <dir>, in a worker thread) it drops generations
//     beyond max-file, compresses finished ones (compress=true) and arms the next. If conmon
//     switches again before that, it makes <log>.tmp itself (a plain file, renamed over the
//     symlink): berthd links that file into log-files/ when it sees it. Only a file conmon
//     made itself and replaced again before berthd saw it is lost: three switches while berthd
//     does not react (a stall of two files' worth of writing, or berthd being down). Even the
//     SCHED_FIFO worker stalls for 20-50 ms now and then on a loaded machine, so berthd counts:
//     every rename onto <log> is a switch, every switch must leave a file berthd keeps (the arm
//     taken or a plain file linked), and a shortfall is logged as lost output;
//   - the arm is placed before retention's unlinks, which can take milliseconds.
//
// Disk bound: with max-file N >= 2 conmon's cap is N*max-size/(N+2), not max-size: while berthd
// does not react there are at most N+2 non-empty files (N-1 older generations, the one conmon
// left, the armed one it filled, the plain file it made), and they still fit in N*max-size. With
// max-file 1 nothing of this is used: conmon's cap is max-size and the full file is replaced, as
// docker's json-file truncates it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Worker } from 'node:worker_threads';
import { execFile } from 'node:child_process';
import { lazyModule } from '../common/lazy';
import type { Logger } from '../common/logger';
import { logPolicy, type LogConfig, type LogPolicy } from './config';
import { allGenerations, armedTarget, generationPath, generationsDir, GZ_TMP_SUFFIX, TMP_SUFFIX } from './files';

// zlib and worker_threads are loaded when a log first rotates or is watched, not by an idle daemon.
const gzip = lazyModule(() => promisify((require('node:zlib') as typeof import('node:zlib')).gzip));
const workerThreads = lazyModule(() => require('node:worker_threads') as typeof import('node:worker_threads'));
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

/** Whether berthd keeps generations for this policy (else conmon's file is all there is). */
function rotates(p: LogPolicy): boolean {
  return p.readable && p.maxSize > 0 && p.maxFile >= 2;
}

function statOf(p: string): fs.Stats | undefined {
  return fs.statSync(p, { throwIfNoEntry: false }) ?? undefined;
}

function lstatOf(p: string): fs.Stats | undefined {
  return fs.lstatSync(p, { throwIfNoEntry: false }) ?? undefined;
}

function rmQuiet(p: string): void {
  fs.rmSync(p, { force: true });
}

interface Watched {
  logPath: string;
  policy: LogPolicy;
  watcher?: fs.FSWatcher;
  /** A settle is queued (events are counted first, then settled once). */
  queued?: boolean;
  /** conmon's switches seen (renames onto the log's name) minus the files berthd kept for them. */
  unaccounted: number;
  /** Whether an arm was in place when the last settle ended. */
  armLeft: boolean;
}

/** What one settle found: the files conmon switched to since the last one that berthd holds. */
interface Settled {
  /** The arm of the last settle was taken by conmon. */
  armTaken: boolean;
  /** A file conmon made itself was linked into log-files/. */
  linkedPlain: boolean;
  /** An arm is in place now. */
  armed: boolean;
}

/** The logging a keeper needs (a Logger, or the worker's messages to the main thread). */
export type KeeperLog = Pick<Logger, 'warn' | 'debug'>;

/**
 * Keeps the files of rotating logs in order: runs in the rotation worker (watch, settle,
 * compress), and in the main thread before a container starts. Every change to the files is made
 * inside a seqlock (seq odd while changing), so that readers in another thread list and open the
 * files consistently (see LogRotation.consistent).
 */
export class LogFilesKeeper {
  private readonly watched = new Map<string, Watched>();
  private readonly compressing = new Set<number>();

  constructor(
    private readonly log: KeeperLog,
    private readonly seq: Int32Array,
    /** Called after each settle of a log (the worker pins new files for followers). */
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
   * Called before conmon starts for a new run (no conmon writes the log). conmon counts a file's
   * size from 0 when it starts, so the new run gets a new generation; the options conmon gets are
   * returned.
   */
  beforeStart(logPath: string, cfg: LogConfig): ConmonLogOptions {
    const policy = logPolicy(cfg);
    if (!policy.readable) return { none: true };
    const cap = conmonCap(policy);
    if (!rotates(policy)) return { none: false, logSizeMax: cap };
    return this.locked(() => {
      this.settle(logPath, policy, false);
      this.disarm(logPath);
      fs.mkdirSync(generationsDir(logPath), { recursive: true, mode: 0o700 });
      const gen = generationPath(logPath, this.maxSeq(logPath) + 1);
      fs.writeFileSync(gen, '', { mode: 0o600 });
      this.pointAt(logPath, gen);
      this.retain(logPath, policy);
      return { none: false, logSizeMax: cap };
    });
  }

  /**
   * Starts watching a running container's log (after conmon opened it, or when berthd comes back
   * to a container that kept running: switches made meanwhile are settled now).
   */
  watch(id: string, logPath: string, cfg: LogConfig): void {
    this.unwatch(id, false);
    const policy = logPolicy(cfg);
    if (!rotates(policy)) return;
    const w: Watched = { logPath, policy, unaccounted: 0, armLeft: false };
    this.watched.set(id, w);
    const base = path.basename(logPath);
    try {
      w.watcher = fs.watch(path.dirname(logPath), { persistent: false }, (type, name) => {
        if (type !== 'rename' || name !== base) return;
        // Each rename onto the log's name is one switch of conmon's. The events read together
        // (after a stall, several) are counted, then settled once.
        w.unaccounted++;
        if (w.queued) return;
        w.queued = true;
        setImmediate(() => {
          w.queued = false;
          if (this.watched.get(id) === w) this.check(w);
        });
      });
      w.watcher.on('error', (err: Error) => this.log.warn('watching a container log failed', { id, error: err.message }));
    } catch (err) {
      this.log.warn('cannot watch a container log', { id, error: (err as Error).message });
    }
    // A compression cut short by a stop of berthd left its temp file.
    try {
      for (const f of fs.readdirSync(generationsDir(logPath))) if (f.endsWith(GZ_TMP_SUFFIX)) rmQuiet(path.join(generationsDir(logPath), f));
    } catch {
      // no generations yet
    }
    this.check(w);
    // Switches before the watch began are not counted.
    w.unaccounted = 0;
  }

  /** Stops watching (the container exited, or berthd stops); with final, the last switch is settled and the arm goes. */
  unwatch(id: string, final = true): void {
    const w = this.watched.get(id);
    if (!w) return;
    this.watched.delete(id);
    w.watcher?.close();
    if (final) {
      this.locked(() => {
        this.settle(w.logPath, w.policy, false);
        this.disarm(w.logPath);
      });
      this.settled(w.logPath);
    }
  }

  close(): void {
    for (const id of [...this.watched.keys()]) this.unwatch(id, false);
  }

  private check(w: Watched): void {
    try {
      const r = this.locked(() => this.settle(w.logPath, w.policy, true));
      // Every switch of conmon's leaves berthd a file: the arm it took, or the file it made
      // itself (linked here). A file it made itself and replaced again before this settle is
      // gone with its lines: conmon switched more often than berthd kept files. Events may be
      // read after the settle that saw their switch, so the count may run below zero for a while.
      w.unaccounted -= Number(r.armTaken && w.armLeft) + Number(r.linkedPlain);
      w.armLeft = r.armed;
      if (w.unaccounted > 0) {
        this.log.warn('conmon switched log files faster than berthd could keep them: output lost', { log: w.logPath, files: w.unaccounted });
        w.unaccounted = 0;
      }
      this.settled(w.logPath);
    } catch (err) {
      this.log.warn('rotating a container log failed', { log: w.logPath, error: (err as Error).message });
    }
  }

  private maxSeq(logPath: string): number {
    return allGenerations(logPath).reduce((m, g) => Math.max(m, g.seq), 0);
  }

  /** Makes <log> a symlink to gen (no conmon may be switching: before start only). */
  private pointAt(logPath: string, gen: string): void {
    const tmp = `${logPath}.lnk`;
    rmQuiet(tmp);
    fs.symlinkSync(path.relative(path.dirname(logPath), gen), tmp);
    fs.renameSync(tmp, logPath);
  }

  /** Removes the arm and its generation if still empty (no conmon runs). */
  private disarm(logPath: string): void {
    const target = armedTarget(logPath);
    rmQuiet(logPath + TMP_SUFFIX);
    if (target && statOf(target)?.size === 0 && statOf(logPath)?.ino !== statOf(target)?.ino) rmQuiet(target);
  }

  /**
   * After conmon switched: a plain file it made itself is linked into log-files/, generations
   * beyond max-file go, finished ones are compressed, and (with arm) the next switch is armed.
   */
  private settle(logPath: string, policy: LogPolicy, arm: boolean): Settled {
    fs.mkdirSync(generationsDir(logPath), { recursive: true, mode: 0o700 });
    // The arm first: a generation it names that conmon takes meanwhile is current when looked at next.
    const armed = armedTarget(logPath);
    const cur = lstatOf(logPath);
    let linkedPlain = false;
    if (cur?.isFile()) {
      // conmon's own file (it switched with no arm in place), or a log from before rotation.
      const gens = allGenerations(logPath);
      if (!gens.some((g) => statOf(g.path)?.ino === cur.ino)) {
        if (arm) this.log.debug('conmon switched log files before berthd armed the switch', { log: logPath });
        // It was written before the armed generation will be (conmon made it in the moment
        // before the arm was in place): it takes the number left free below the arm's.
        const armedSeq = armed ? gens.find((g) => g.path === armed)?.seq : undefined;
        const seq = armedSeq !== undefined && !gens.some((g) => g.seq === armedSeq - 1) ? armedSeq - 1 : this.maxSeq(logPath) + 1;
        try {
          fs.linkSync(logPath, generationPath(logPath, seq));
          linkedPlain = true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    }
    // The next arm before retention: conmon may switch again within a file's worth of writing,
    // and retention's unlinks of full files can take milliseconds on a busy disk.
    let placed = false;
    if (arm && !lstatOf(logPath + TMP_SUFFIX)) {
      // A number left free below the arm's, for a file conmon may make before the arm is in place.
      const gen = generationPath(logPath, this.maxSeq(logPath) + 2);
      fs.writeFileSync(gen, '', { mode: 0o600, flag: 'wx' });
      try {
        fs.symlinkSync(path.relative(path.dirname(logPath), gen), logPath + TMP_SUFFIX);
        placed = true;
      } catch (err) {
        // conmon is between making its own <log>.tmp and renaming it: the next event settles it.
        rmQuiet(gen);
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    // The arm as it is now (the one just made, or none if conmon took it meanwhile: then it is current).
    this.retain(logPath, policy);
    // An arm conmon may take from now on: the one found (if conmon did not take it meanwhile, the
    // next settle finds it still there) or the one placed.
    return { armTaken: armed === undefined, linkedPlain, armed: placed || armed !== undefined };
  }

  /** Keeps the newest max-file generations up to the current one; compresses the finished ones. */
  private retain(logPath: string, policy: LogPolicy, armed = armedTarget(logPath)): void {
    const curIno = statOf(logPath)?.ino;
    const gens = allGenerations(logPath).filter((g) => g.path !== armed);
    const ci = gens.findIndex((g) => !g.compressed && statOf(g.path)?.ino === curIno);
    // Generations after the current one are only the armed one (filtered) or a stale arm.
    const upto = ci >= 0 ? ci : gens.length - 1;
    const older = gens.slice(0, upto + 1);
    for (const g of gens.slice(upto + 1)) if (statOf(g.path)?.size === 0) rmQuiet(g.path);
    // Empty finished generations (a run that wrote nothing) are not worth a slot.
    const kept = older.filter((g, i) => i === older.length - 1 || statOf(g.path)?.size !== 0 || (rmQuiet(g.path), false));
    for (const g of kept.slice(0, Math.max(0, kept.length - policy.maxFile))) rmQuiet(g.path);
    if (policy.compress) for (const g of kept.slice(-policy.maxFile, -1)) if (!g.compressed) this.compress(g.path);
  }

  /**
   * Compresses a finished generation off the event loop; the compressed file replaces it in one
   * locked step (unless retention dropped it meanwhile).
   */
  private compress(file: string): void {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return;
    }
    const ino = fs.fstatSync(fd).ino;
    if (this.compressing.has(ino)) {
      fs.closeSync(fd);
      return;
    }
    this.compressing.add(ino);
    void (async () => {
      let data: Buffer;
      try {
        data = await readFd(fd);
      } finally {
        fs.closeSync(fd);
      }
      const gz = await gzip()(data);
      if (statOf(file)?.ino !== ino) return;
      const tmp = file + GZ_TMP_SUFFIX;
      fs.writeFileSync(tmp, gz, { mode: 0o600 });
      this.locked(() => {
        if (statOf(file)?.ino !== ino) return rmQuiet(tmp);
        fs.renameSync(tmp, `${file}.gz`);
        rmQuiet(file);
      });
    })()
      .catch((err) => this.log.warn('compressing a container log failed', { file, error: (err as Error).message }))
      .finally(() => this.compressing.delete(ino));
  }
}

// ---- the main thread's side ----

type WorkerRequest = { op: 'watch'; id: string; logPath: string; cfg: LogConfig } | { op: 'unwatch'; id: string; final: boolean; reqId: number } | { op: 'follow'; logPath: string; reqId: number } | { op: 'unfollow'; logPath: string } | { op: 'release'; logPath: string; upTo: number };
/** A generation the worker holds open for followers: its number, inode and the worker's descriptor (shared by the process). */
export interface PinnedFile {
  seq: number;
  ino: number;
  fd: number;
}
type WorkerMessage = { op: 'tid'; tid: number } | { op: 'settled'; logPath: string; pins: PinnedFile[] } | { op: 'done'; reqId: number } | { op: 'log'; level: 'warn' | 'debug'; msg: string; fields: Record<string, unknown> };

/**
 * Rotation for every running container whose driver rotates. Watching and settling run in a
 * worker thread: conmon switches files as fast as a container writes, and berthd must hold the
 * new file before conmon switches twice; the main thread's event loop, busy sending logs or
 * attach output, answered too late under load, the worker's does at once.
 */
export class LogRotation {
  private readonly seq = new Int32Array(new SharedArrayBuffer(4));
  private readonly keeper: LogFilesKeeper;
  /** Started at the first container to watch: a thread is a V8 isolate (~8 MB), which an idle daemon does without. */
  private worker: Worker | undefined;
  private readonly listeners = new Map<string, Set<(pins: PinnedFile[]) => void>>();
  private readonly pending = new Map<number, () => void>();
  private nextReq = 0;
  private closed = false;
  /** Containers the worker watches (their logs rotate). */
  private readonly watchedIds = new Set<string>();

  constructor(private readonly log: Logger) {
    this.keeper = new LogFilesKeeper(log, this.seq);
  }

  private theWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new (workerThreads().Worker)(path.join(__dirname, 'rotate-worker.js'), { workerData: { seq: this.seq } });
    this.worker = worker;
    worker.unref();
    worker.on('message', (m: WorkerMessage) => {
      if (m.op === 'settled') this.notify(m.logPath, m.pins);
      else if (m.op === 'tid') {
        // The lowest real-time priority: the worker preempts ordinary tasks when it wakes, and
        // it wakes only when conmon switches files (about a millisecond of work each time).
        // One chrt at start-up: Node cannot set a thread's scheduling policy itself.
        execFile('chrt', ['-f', '-p', '1', String(m.tid)], (err) => {
          if (err) this.log.debug('log rotation worker keeps its ordinary priority', { error: err.message });
        });
      }
      else if (m.op === 'done') {
        this.pending.get(m.reqId)?.();
        this.pending.delete(m.reqId);
      } else if (m.op === 'log') this.log[m.level](m.msg, m.fields);
    });
    worker.on('error', (err) => this.log.error('log rotation worker failed', { error: err.message }));
    // Nobody waits for an answer from a worker that is gone.
    worker.on('exit', () => {
      for (const r of this.pending.values()) r();
      this.pending.clear();
    });
    return worker;
  }

  /** See LogFilesKeeper.beforeStart (the container is not running: the worker does not watch it). */
  beforeStart(logPath: string, cfg: LogConfig): ConmonLogOptions {
    return this.keeper.beforeStart(logPath, cfg);
  }

  watch(id: string, logPath: string, cfg: LogConfig): void {
    if (this.closed) return;
    // Only logs that rotate concern the worker (the default json-file without max-size does
    // not): no message, no worker thread, no round trip at exit for the others.
    if (!rotates(logPolicy(cfg))) {
      if (this.watchedIds.has(id)) void this.unwatch(id, false);
      return;
    }
    this.watchedIds.add(id);
    this.post({ op: 'watch', id, logPath, cfg });
  }

  /** Stops rotating a container's log; with final (it exited), the last switch is settled and berthd's links go. */
  unwatch(id: string, final = true): Promise<void> {
    if (this.closed || !this.watchedIds.delete(id)) return Promise.resolve();
    const reqId = ++this.nextReq;
    return new Promise((resolve) => {
      this.pending.set(reqId, resolve);
      this.post({ op: 'unwatch', id, final, reqId });
    });
  }

  private post(m: WorkerRequest): void {
    this.theWorker().postMessage(m);
  }

  /**
   * Calls fn each time berthd has settled the files of logPath, with the files the worker holds
   * open for followers (oldest first). ready resolves once the worker pins files for this
   * follower: from then on no file escapes it.
   */
  subscribe(logPath: string, fn: (pins: PinnedFile[]) => void): { ready: Promise<void>; unsubscribe: () => void } {
    let set = this.listeners.get(logPath);
    if (!set) this.listeners.set(logPath, (set = new Set()));
    set.add(fn);
    const unsubscribe = (): void => {
      set.delete(fn);
      if (set.size === 0 && this.listeners.get(logPath) === set) this.listeners.delete(logPath);
      if (!this.closed) this.post({ op: 'unfollow', logPath });
    };
    if (this.closed) return { ready: Promise.resolve(), unsubscribe };
    const reqId = ++this.nextReq;
    const ready = new Promise<void>((resolve) => {
      this.pending.set(reqId, resolve);
      this.post({ op: 'follow', logPath, reqId });
    });
    return { ready, unsubscribe };
  }

  private notify(logPath: string, pins: PinnedFile[]): void {
    for (const fn of this.listeners.get(logPath) ?? []) {
      try {
        fn(pins);
      } catch (err) {
        this.log.warn('log follower failed to pin files', { log: logPath, error: (err as Error).message });
      }
    }
    // The followers hold their own descriptors now: the worker's can go.
    if (pins.length > 0 && !this.closed) this.post({ op: 'release', logPath, upTo: Math.max(...pins.map((p) => p.seq)) });
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
    void this.worker?.terminate();
  }
}
