// The log rotation worker thread (see LogRotation in rotate.ts): watches the directories of
// rotating logs and settles their files as soon as conmon switches, whatever the main thread is
// busy with. For logs that someone follows, it also opens each new file right after settling it
// (before a later settle can drop it) and hands the descriptors to the main thread, whose
// followers open them again through /proc/self/fd: a follower slower than the rotation still
// gets every file, within a budget of bytes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { LogFilesKeeper } from './rotate';
import { allGenerations, armedTarget } from './files';

/** Bytes of files kept open for a followed log, newest first. */
const PIN_BUDGET = 64 * 1024 * 1024;

const port = parentPort!;

// This thread must answer conmon's switches within one file's worth of writing, even on a busy
// machine: it sleeps nearly always, and a higher priority (nice -20 for this thread only, and
// SCHED_FIFO 1 when the main thread can set it; root may) lets it run as soon as it wakes.
// Without the privilege it stays as it is.
try {
  const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  if (tid > 0) {
    os.setPriority(tid, -20);
    // The main thread also asks for a real-time priority for this thread (see LogRotation).
    port.postMessage({ op: 'tid', tid });
  }
} catch {
  // not permitted: run at the daemon's priority
}
const log = {
  warn: (msg: string, fields: Record<string, unknown> = {}) => port.postMessage({ op: 'log', level: 'warn', msg, fields }),
  debug: (msg: string, fields: Record<string, unknown> = {}) => port.postMessage({ op: 'log', level: 'debug', msg, fields }),
};

interface Followed {
  count: number;
  /** The newest generation pinned so far. */
  lastSeq: number;
  pins: { seq: number; ino: number; fd: number }[];
}
const followed = new Map<string, Followed>();

/**
 * Opens the generations of a followed log newer than those opened before (numbers, not inodes:
 * inode numbers are reused), oldest first. The main thread releases them once its followers
 * have their own descriptors; a budget bounds what is held meanwhile.
 */
function pin(logPath: string): { seq: number; ino: number; fd: number }[] {
  const f = followed.get(logPath);
  if (!f) return [];
  const armed = armedTarget(logPath);
  for (const g of allGenerations(logPath)) {
    if (g.compressed || g.path === armed || g.seq <= f.lastSeq) continue;
    let fd: number;
    try {
      fd = fs.openSync(g.path, 'r');
    } catch {
      continue;
    }
    f.lastSeq = g.seq;
    f.pins.push({ seq: g.seq, ino: fs.fstatSync(fd).ino, fd });
  }
  let total = 0;
  for (let i = f.pins.length - 1; i >= 0; i--) {
    total += fs.fstatSync(f.pins[i].fd).size;
    if (total > PIN_BUDGET && i < f.pins.length - 1) {
      for (const p of f.pins.splice(0, i + 1)) fs.closeSync(p.fd);
      break;
    }
  }
  return f.pins.map((p) => ({ ...p }));
}

const keeper = new LogFilesKeeper(log, (workerData as { seq: Int32Array }).seq, (logPath) => port.postMessage({ op: 'settled', logPath, pins: pin(logPath) }));

type Request =
  | { op: 'watch'; id: string; logPath: string; cfg: never }
  | { op: 'unwatch'; id: string; final: boolean; reqId: number }
  | { op: 'follow'; logPath: string; reqId: number }
  | { op: 'unfollow'; logPath: string }
  | { op: 'release'; logPath: string; upTo: number };

port.on('message', (m: Request) => {
  try {
    if (m.op === 'watch') keeper.watch(m.id, m.logPath, m.cfg);
    else if (m.op === 'unwatch') keeper.unwatch(m.id, m.final);
    else if (m.op === 'follow') {
      let f = followed.get(m.logPath);
      if (!f) followed.set(m.logPath, (f = { count: 0, lastSeq: -1, pins: [] }));
      f.count++;
    } else if (m.op === 'release') {
      const f = followed.get(m.logPath);
      if (f) for (const p of f.pins.splice(0, f.pins.filter((x) => x.seq <= m.upTo).length)) fs.closeSync(p.fd);
    } else if (m.op === 'unfollow') {
      const f = followed.get(m.logPath);
      if (f && --f.count <= 0) {
        for (const p of f.pins) fs.closeSync(p.fd);
        followed.delete(m.logPath);
      }
    }
  } catch (err) {
    log.warn('log rotation failed', { error: (err as Error).message });
  }
  if (m.op === 'unwatch' || m.op === 'follow') port.postMessage({ op: 'done', reqId: m.reqId });
});
