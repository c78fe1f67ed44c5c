// Timestamps of GET /events since/until: the docker CLI sends "seconds.nanoseconds" (it converts
// durations and dates client-side), but other clients send RFC 3339 dates, so both are taken.
import { invalidParameter } from '../common/errors';

const UNIX_RE = /^(-?\d+)(?:\.(\d{1,9}))?$/;
const RFC3339_RE = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?$/;

/** Parses a timestamp to nanoseconds since the epoch; "" or null gives undefined. */
export function parseEventTimestamp(raw: string | null, name: string): bigint | undefined {
  if (raw === null || raw === '') return undefined;
  const value = raw.trim();
  let m = UNIX_RE.exec(value);
  if (m) {
    const sec = BigInt(m[1]);
    const frac = BigInt((m[2] ?? '').padEnd(9, '0'));
    return sec * 1_000_000_000n + (value.startsWith('-') ? -frac : frac);
  }
  m = RFC3339_RE.exec(value);
  if (m) {
    // Date.parse handles the calendar and zone to the millisecond; the fraction is added exactly.
    const zone = m[4] === undefined ? 'Z' : m[4].toUpperCase();
    const ms = Date.parse(`${m[1]}T${m[2]}${zone}`);
    if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n + BigInt((m[3] ?? '').padEnd(9, '0'));
  }
  throw invalidParameter(`failed to parse value of ${name} as a timestamp: ${JSON.stringify(raw)}`);
}

/** Nanoseconds to docker's error-message form, RFC 3339 with nanoseconds. */
export function formatNano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}
