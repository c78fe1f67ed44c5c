// A container's health as docker reports it (State.Health), and the rules that move it: each probe
// result is appended to a five-entry log, a success makes the container healthy, `retries`
// failures in a row make it unhealthy, and failures during the start period (while it has never
// been healthy) do not count.
import type { ProbeSpec } from './config';

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';
/** What the `health` filter of a container list matches: a status, or none without a check. */
export type HealthFilterValue = HealthStatus | 'none';
export const HEALTH_FILTER_VALUES: readonly HealthFilterValue[] = ['starting', 'healthy', 'unhealthy', 'none'];

export interface HealthcheckResult {
  /** RFC 3339 with nanoseconds. */
  Start: string;
  End: string;
  /** 0 healthy, 1 unhealthy, 2 reserved; -1 when the probe could not run or timed out. */
  ExitCode: number;
  Output: string;
}

export interface HealthState {
  Status: HealthStatus;
  FailingStreak: number;
  /** The newest results, oldest first. */
  Log: HealthcheckResult[];
}

export const MAX_LOG_ENTRIES = 5;
/** Probe output kept per result; the rest is dropped and "..." marks the cut, as in dockerd. */
export const MAX_OUTPUT_LEN = 4096;

/** Collects a probe's stdout and stderr (interleaved as they come) up to MAX_OUTPUT_LEN bytes. */
export class LimitedOutput {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  push(data: Buffer): void {
    const keep = Math.min(MAX_OUTPUT_LEN - this.size, data.length);
    if (keep > 0) {
      this.chunks.push(keep === data.length ? Buffer.from(data) : Buffer.from(data.subarray(0, keep)));
      this.size += keep;
    }
    if (keep < data.length) this.truncated = true;
  }

  toString(): string {
    const out = Buffer.concat(this.chunks, this.size).toString('utf8');
    return this.truncated ? `${out}...` : out;
  }
}

/** A fresh run (start, restart, daemon restore): starting, no failures; the log is kept. */
export function resetHealth(h: HealthState | undefined): HealthState {
  return { Status: 'starting', FailingStreak: 0, Log: h?.Log ?? [] };
}

/**
 * Applies one probe result in place. startedAtMs is when the container's current run started
 * (State.StartedAt), startMs when the probe started. Returns the status before, so that the
 * caller can tell a change (which is what gets an event).
 */
export function applyProbeResult(h: HealthState, result: HealthcheckResult, startMs: number, startedAtMs: number, spec: Pick<ProbeSpec, 'retries' | 'startPeriodMs'>): HealthStatus {
  const before = h.Status;
  h.Log = [...h.Log.slice(Math.max(0, h.Log.length + 1 - MAX_LOG_ENTRIES)), result];
  if (result.ExitCode === 0) {
    h.FailingStreak = 0;
    h.Status = 'healthy';
    return before;
  }
  // A container that has never been healthy is still in its start period for a while.
  const inStartPeriod = h.Status === 'starting' && startMs - startedAtMs < spec.startPeriodMs;
  if (!inStartPeriod) {
    h.FailingStreak++;
    if (h.FailingStreak >= spec.retries) h.Status = 'unhealthy';
  }
  return before;
}

/** The text `docker ps` puts in parentheses after "Up 5 seconds". */
export function healthString(h: HealthState): string {
  return h.Status === 'starting' ? 'health: starting' : h.Status;
}

export function healthFilterValue(h: HealthState | undefined): HealthFilterValue {
  return h ? h.Status : 'none';
}
