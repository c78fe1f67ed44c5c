// A container's health check as configured (docker's HealthConfig: durations in nanoseconds, 0
// meaning "inherit" or "default"), its validation at create, its merge with the image's
// HEALTHCHECK, and the resolved probe that the monitor runs.
import { invalidParameter } from '../common/errors';
import type { HealthConfig } from '../images/types';

export type { HealthConfig };

const NS_PER_MS = 1_000_000;
/** docker's defaults (daemon/health.go). */
export const DEFAULT_INTERVAL_MS = 30_000;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_START_PERIOD_MS = 0;
export const DEFAULT_START_INTERVAL_MS = 5_000;
export const DEFAULT_RETRIES = 3;
/** containertypes.MinimumDuration: durations other than 0 must be at least 1 ms. */
const MINIMUM_DURATION_NS = NS_PER_MS;

/** A health check resolved to what is run and when (all in milliseconds). */
export interface ProbeSpec {
  /** The argv run inside the container (CMD-SHELL already wrapped in the shell). */
  cmd: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  startIntervalMs: number;
  retries: number;
}

/**
 * Refuses what dockerd refuses at create (400), with its words. Absent or null is fine: the
 * image's check, if any, applies.
 */
export function validateHealthConfig(hc: unknown): void {
  if (hc === undefined || hc === null) return;
  if (typeof hc !== 'object' || Array.isArray(hc)) throw invalidParameter('Healthcheck must be an object');
  const c = hc as Record<string, unknown>;
  if (c.Test !== undefined && c.Test !== null && (!Array.isArray(c.Test) || !c.Test.every((t) => typeof t === 'string'))) {
    throw invalidParameter('Healthcheck.Test must be a list of strings');
  }
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries']) {
    const v = c[k];
    if (v !== undefined && v !== null && (typeof v !== 'number' || !Number.isInteger(v))) throw invalidParameter(`Healthcheck.${k} must be an integer`);
  }
  // dockerd's order of checks, so that the first error reported is the same.
  const tooShort = (name: string): void => {
    const v = c[name];
    if (typeof v === 'number' && v !== 0 && v < MINIMUM_DURATION_NS) throw invalidParameter(`${name} in Healthcheck cannot be less than 1ms`);
  };
  tooShort('Interval');
  tooShort('Timeout');
  if (typeof c.Retries === 'number' && c.Retries < 0) throw invalidParameter('Retries in Healthcheck cannot be negative');
  tooShort('StartPeriod');
  tooShort('StartInterval');
}

/**
 * docker's merge of the create request's check with the image's: no request check means the
 * image's; otherwise each unset (empty or 0) field of the request is taken from the image.
 */
export function mergeHealthConfig(user: HealthConfig | null | undefined, image: HealthConfig | null | undefined): HealthConfig | undefined {
  if (!user) return image ? { ...image } : undefined;
  const out: HealthConfig = { ...user };
  if (!image) return out;
  if (!out.Test || out.Test.length === 0) out.Test = image.Test;
  if (!out.Interval) out.Interval = image.Interval;
  if (!out.Timeout) out.Timeout = image.Timeout;
  if (!out.StartPeriod) out.StartPeriod = image.StartPeriod;
  if (!out.StartInterval) out.StartInterval = image.StartInterval;
  if (!out.Retries) out.Retries = image.Retries;
  for (const k of Object.keys(out) as (keyof HealthConfig)[]) if (out[k] === undefined) delete out[k];
  return out;
}

function msOr(ns: number | undefined, def: number): number {
  return ns && ns > 0 ? Math.max(1, Math.round(ns / NS_PER_MS)) : def;
}

/**
 * The probe a config asks for; undefined when there is none to run (no check, NONE, or a test
 * type dockerd does not know, which it only warns about).
 */
export function probeSpec(hc: HealthConfig | null | undefined, shell?: string[] | null): ProbeSpec | undefined {
  const test = hc?.Test;
  if (!hc || !test || test.length === 0) return undefined;
  let cmd: string[];
  switch (test[0]) {
    case 'CMD':
      cmd = test.slice(1);
      break;
    case 'CMD-SHELL':
      cmd = [...(shell && shell.length > 0 ? shell : ['/bin/sh', '-c']), ...test.slice(1)];
      break;
    default:
      return undefined;
  }
  if (cmd.length === 0) return undefined;
  return {
    cmd,
    intervalMs: msOr(hc.Interval, DEFAULT_INTERVAL_MS),
    timeoutMs: msOr(hc.Timeout, DEFAULT_TIMEOUT_MS),
    startPeriodMs: msOr(hc.StartPeriod, DEFAULT_START_PERIOD_MS),
    startIntervalMs: msOr(hc.StartInterval, DEFAULT_START_INTERVAL_MS),
    retries: hc.Retries && hc.Retries > 0 ? hc.Retries : DEFAULT_RETRIES,
  };
}

/** A duration as Go's time.Duration prints it ("30s", "1.5s", "500ms", "1m30s", "1h0m0s"). */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  const neg = ms < 0;
  let rest = Math.abs(ms);
  let out: string;
  if (rest < 1000) {
    out = `${trimFraction(rest)}ms`;
  } else {
    const h = Math.floor(rest / 3_600_000);
    rest -= h * 3_600_000;
    const m = Math.floor(rest / 60_000);
    rest -= m * 60_000;
    const s = `${trimFraction(rest / 1000)}s`;
    out = h > 0 ? `${h}h${m}m${s}` : m > 0 ? `${m}m${s}` : s;
  }
  return neg ? `-${out}` : out;
}

function trimFraction(n: number): string {
  return String(Number(n.toFixed(9)));
}
