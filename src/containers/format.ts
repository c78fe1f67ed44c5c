// docker's human-readable times and the Status column of `docker ps`.
import type { RunState } from './store';
import { ZERO_TIME } from './store';
import { healthString } from '../health/state';

/** go-units HumanDuration, as docker prints "Up 3 seconds". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3600000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3600000 / 24 / 365)} years`;
}

export function isZeroTime(t: string): boolean {
  return t === '' || t === ZERO_TIME;
}

/** The Status string of a container summary (`Up 3 seconds`, `Exited (0) 2 seconds ago`, ...). */
export function statusString(s: RunState, now = Date.now()): string {
  switch (s.Status) {
    case 'paused':
      return `Up ${humanDuration(now - Date.parse(s.StartedAt))} (Paused)`;
    case 'restarting':
      return `Restarting (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
    case 'running':
      // "Up 5 seconds (healthy)" once the container has a health state.
      return s.Health ? `Up ${humanDuration(now - Date.parse(s.StartedAt))} (${healthString(s.Health)})` : `Up ${humanDuration(now - Date.parse(s.StartedAt))}`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    case 'created':
      return 'Created';
    case 'exited':
      if (isZeroTime(s.StartedAt)) return 'Created';
      if (isZeroTime(s.FinishedAt)) return '';
      return `Exited (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
  }
}

/** RFC 3339 with nanoseconds, as Go prints time.Time in JSON. */
export function rfc3339Nano(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}000000Z`.replace(/0+Z$/, 'Z')).replace(/\.Z$/, 'Z');
}
