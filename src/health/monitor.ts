// The health monitor: runs every container's health probe on one shared DeadlineQueue (one Node
// timer for all containers, however many), applies the results to State.Health as dockerd does,
// publishes `health_status: <status>` when the status changes, and has the record persisted.
//
// Each probe is one exec in the container (the OCI runtime's exec, run by berthd directly: that
// process is the real cost of a probe; berthd itself only schedules, collects output and writes
// the state).
// Persistence: a status change is written at once; any other result (the log grew, the failing
// streak moved) is written with the next batch, all containers in one commit, every few seconds,
// so 100 containers probing every second do not mean 100 database commits a second. Inspect
// always shows the in-memory state; after a crash at most the last few seconds of log are lost
// (the status and the streak start over on restore anyway, as in dockerd).
import type { Logger } from '../common/logger';
import { rfc3339Nano } from '../containers/format';
import { goDuration, probeSpec, type HealthConfig, type ProbeSpec } from './config';
import { DeadlineQueue } from './scheduler';
import { applyProbeResult, LimitedOutput, resetHealth, type HealthcheckResult, type HealthState } from './state';

/** What the monitor reads and writes of a container (the container record satisfies it). */
export interface HealthSubject {
  id: string;
  config: { Healthcheck?: HealthConfig | null; Shell?: string[] | null };
  state: { StartedAt: string; Health?: HealthState };
}

/** A running probe process. */
export interface ProbeProcess {
  /** SIGKILLs the probe (timeout, container stopped); a no-op once it has exited. */
  kill(): void;
  /** Its output, stdout and stderr; 'end' once drained. */
  output?: {
    on(ev: 'stdout' | 'stderr', fn: (b: Buffer) => void): unknown;
    on(ev: 'end', fn: () => void): unknown;
    readonly closed: boolean;
    close(): void;
  };
  /** startError: the runtime could not start the command (docker's wording); the result is then -1. */
  exited: Promise<{ exitCode: number; startError?: string }>;
  /** Forget the exec once its result is taken. */
  release(): void;
}

/** Starts a probe in a running container: an exec without tty or stdin, as dockerd runs it. */
export interface ProbeExecutor {
  startProbe(containerId: string, cmd: string[]): Promise<ProbeProcess>;
}

/** The container side: records, persistence, events. */
export interface HealthHost {
  subject(id: string): HealthSubject | undefined;
  /** Writes these containers' state (Health included) to the store, in one commit. */
  persist(ids: string[]): void;
  /** Publishes a container event (with the container's usual attributes). */
  event(id: string, action: string): void;
}

export interface HealthMonitorOptions {
  host: HealthHost;
  probes: ProbeExecutor;
  log: Logger;
  /** Probes being started at once; more wait their turn. Default 8. */
  maxConcurrentStarts?: number;
  /** How long a started probe keeps its start slot at most (until it exits otherwise). Default 50 ms. */
  startHoldMs?: number;
  /** How often results that only grew the log are written. Default 5 s. */
  flushIntervalMs?: number;
  /** dockerd gives up on an exec that has not started after 30 s. */
  startTimeoutMs?: number;
  now?: () => number;
}

const FLUSH_KEY = '\0flush';

interface Watch {
  id: string;
  spec: ProbeSpec;
  /** Bumped whenever probing stops or restarts: a result of an older run is dropped. */
  generation: number;
  probing?: { kill(): void };
}

export class HealthMonitor {
  private readonly queue: DeadlineQueue;
  private readonly watches = new Map<string, Watch>();
  private readonly dirty = new Set<string>();
  private generations = 0;
  private probeSeq = 0;
  private starting = 0;
  private readonly startWaiters: (() => void)[] = [];
  private readonly o: Required<Omit<HealthMonitorOptions, 'now'>> & { now: () => number };
  private closed = false;

  constructor(o: HealthMonitorOptions) {
    this.o = { maxConcurrentStarts: 8, startHoldMs: 50, flushIntervalMs: 5000, startTimeoutMs: 30_000, now: Date.now, ...o };
    this.queue = new DeadlineQueue(this.o.now);
  }

  /** Containers being probed (for tests and diagnostics). */
  get watching(): number {
    return this.watches.size;
  }

  /**
   * A run of the container began (start, restart policy, daemon restore): with a check, its
   * Health becomes starting with no failures (the log is kept) and probing begins. The caller
   * persists the record.
   */
  containerStarted(id: string): void {
    const subject = this.o.host.subject(id);
    if (!subject) return;
    const spec = probeSpec(subject.config.Healthcheck, subject.config.Shell);
    this.unwatch(id);
    if (!spec) return;
    subject.state.Health = resetHealth(subject.state.Health);
    this.watch(id, spec);
  }

  /** Probing resumes without a reset (unpause); the status stays until the next result. */
  containerResumed(id: string): void {
    const subject = this.o.host.subject(id);
    if (!subject || this.watches.has(id)) return;
    const spec = probeSpec(subject.config.Healthcheck, subject.config.Shell);
    if (!spec) return;
    subject.state.Health ??= resetHealth(undefined);
    this.watch(id, spec);
  }

  /**
   * The run ended or was paused: probing stops (a probe under way is killed) and, as dockerd
   * reports it, the container counts as unhealthy. The caller persists the record.
   */
  containerStopped(id: string): void {
    if (!this.unwatch(id)) return;
    const subject = this.o.host.subject(id);
    if (subject?.state.Health) subject.state.Health.Status = 'unhealthy';
  }

  /** The container is gone. */
  forget(id: string): void {
    this.unwatch(id);
    this.dirty.delete(id);
  }

  /** Stops all probing (daemon shutdown); the state is left as it is, the pending writes made. */
  close(): void {
    this.closed = true;
    for (const id of [...this.watches.keys()]) this.unwatch(id);
    this.queue.close();
    this.flush();
  }

  private watch(id: string, spec: ProbeSpec): void {
    const w: Watch = { id, spec, generation: ++this.generations };
    this.watches.set(id, w);
    this.scheduleNext(w);
  }

  /** Returns whether it was being watched. */
  private unwatch(id: string): boolean {
    const w = this.watches.get(id);
    if (!w) return false;
    this.watches.delete(id);
    w.generation = -1;
    this.queue.cancel(id);
    w.probing?.kill();
    return true;
  }

  /** The wait before the next probe: the start interval while starting within the start period. */
  private nextDelay(w: Watch): number {
    const subject = this.o.host.subject(w.id);
    const started = Date.parse(subject?.state.StartedAt ?? '');
    const sinceStart = this.o.now() - (Number.isNaN(started) ? 0 : started);
    if (sinceStart >= w.spec.startPeriodMs) return w.spec.intervalMs;
    return subject?.state.Health?.Status === 'starting' ? w.spec.startIntervalMs : w.spec.intervalMs;
  }

  private scheduleNext(w: Watch): void {
    if (this.closed) return;
    const generation = w.generation;
    this.queue.schedule(w.id, this.o.now() + this.nextDelay(w), () => {
      if (w.generation === generation) void this.probe(w, generation);
    });
  }

  private async probe(w: Watch, generation: number): Promise<void> {
    const startMs = this.o.now();
    let result: HealthcheckResult;
    let killed = false;
    let proc: ProbeProcess | undefined;
    w.probing = {
      kill: () => {
        killed = true;
        if (proc) killProbe(proc);
      },
    };
    try {
      result = await this.runProbe(w, () => killed, (p) => (proc = p));
    } catch (err) {
      result = { Start: '', End: rfc3339Nano(new Date(this.o.now())), ExitCode: -1, Output: (err as Error).message };
    } finally {
      w.probing = undefined;
    }
    result.Start = rfc3339Nano(new Date(startMs));
    if (w.generation !== generation || this.closed) return;
    const subject = this.o.host.subject(w.id);
    if (!subject) return;
    const h = (subject.state.Health ??= resetHealth(undefined));
    const before = applyProbeResult(h, result, startMs, Date.parse(subject.state.StartedAt), w.spec);
    if (before !== h.Status) {
      this.dirty.delete(w.id);
      this.persist([w.id]);
    } else {
      this.markDirty(w.id);
    }
    if (before !== h.Status) this.o.host.event(w.id, `health_status: ${h.Status}`);
    this.scheduleNext(w);
  }

  /** One probe: start the exec (its start time does not count against the timeout), collect output, enforce the timeout. */
  private async runProbe(w: Watch, killed: () => boolean, started: (p: ProbeProcess) => void): Promise<HealthcheckResult> {
    const { spec } = w;
    await this.acquireStart();
    let proc: ProbeProcess;
    try {
      proc = await withTimeout(this.o.probes.startProbe(w.id, spec.cmd), this.o.startTimeoutMs, `timed out starting health check for container ${w.id}`, (late) => {
        // It started after all: it must not linger.
        killProbe(late);
        void late.exited.finally(() => late.release());
      });
    } catch (err) {
      this.releaseStart();
      throw err;
    }
    // The slot is held until the probe exits, or for startHoldMs at most (a slow probe must not
    // hold back the others): probes that fall due together (after a stall, or at daemon start)
    // then run a few at a time instead of all at once, which would make them contend, finish
    // together and stay in lockstep from then on.
    const slotKey = `\0slot:${++this.probeSeq}`;
    let slotHeld = true;
    const freeSlot = (): void => {
      if (!slotHeld) return;
      slotHeld = false;
      this.queue.cancel(slotKey);
      this.releaseStart();
    };
    this.queue.schedule(slotKey, this.o.now() + this.o.startHoldMs, freeSlot);
    void proc.exited.then(() => exitedProbes.add(proc), () => exitedProbes.add(proc)).finally(freeSlot);
    started(proc);
    const output = new LimitedOutput();
    const drained = new Promise<void>((resolve) => {
      if (!proc.output || proc.output.closed) return resolve();
      proc.output.on('stdout', (b) => output.push(b));
      proc.output.on('stderr', (b) => output.push(b));
      proc.output.on('end', () => resolve());
    });
    try {
      if (killed()) killProbe(proc);
      // The timeout is one more deadline on the shared queue, not a timer of its own.
      // Unique per probe: a killed probe of an earlier run may still be winding down.
      const timeoutKey = `\0timeout:${w.id}:${++this.probeSeq}`;
      const timedOut = new Promise<true>((resolve) => this.queue.schedule(timeoutKey, this.o.now() + spec.timeoutMs, () => resolve(true)));
      const exit = await Promise.race([proc.exited, timedOut]);
      this.queue.cancel(timeoutKey);
      if (exit === true) {
        killProbe(proc);
        // Wait for it to be gone, so that dying probes do not pile up.
        await proc.exited;
        await settle(drained, 200);
        const out = output.toString();
        const msg = `Health check exceeded timeout (${goDuration(spec.timeoutMs)})`;
        return { Start: '', End: rfc3339Nano(new Date(this.o.now())), ExitCode: -1, Output: out ? `${msg}: ${out}` : msg };
      }
      if (exit.startError !== undefined) return { Start: '', End: rfc3339Nano(new Date(this.o.now())), ExitCode: -1, Output: exit.startError };
      // A process the probe left in the background may hold the output open: do not wait forever.
      await settle(drained, 1000);
      return { Start: '', End: rfc3339Nano(new Date(this.o.now())), ExitCode: exit.exitCode, Output: output.toString() };
    } finally {
      proc.output?.close();
      proc.release();
    }
  }

  private acquireStart(): Promise<void> {
    if (this.starting < this.o.maxConcurrentStarts) {
      this.starting++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.startWaiters.push(() => {
      this.starting++;
      resolve();
    }));
  }

  private releaseStart(): void {
    this.starting--;
    this.startWaiters.shift()?.();
  }

  private markDirty(id: string): void {
    this.dirty.add(id);
    if (!this.queue.has(FLUSH_KEY)) this.queue.schedule(FLUSH_KEY, this.o.now() + this.o.flushIntervalMs, () => this.flush());
  }

  /** Writes the records changed since they were last written. */
  flush(): void {
    const ids = [...this.dirty].filter((id) => this.o.host.subject(id));
    this.dirty.clear();
    if (ids.length > 0) this.persist(ids);
  }

  private persist(ids: string[]): void {
    try {
      this.o.host.persist(ids);
    } catch (err) {
      this.o.log.warn('saving health state failed', { ids: ids.join(','), error: (err as Error).message });
    }
  }
}

/** Probes whose exit was seen: their pid may belong to someone else by now. */
const exitedProbes = new WeakSet<ProbeProcess>();

function killProbe(p: ProbeProcess): void {
  if (exitedProbes.has(p)) return;
  try {
    p.kill();
  } catch {
    // Already gone.
  }
}

async function settle(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** p, or an error after ms; a value that arrives late goes to onLate. */
function withTimeout<T>(p: Promise<T>, ms: number, message: string, onLate: (v: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      reject(new Error(message));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        if (expired) onLate(v);
        else resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!expired) reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
