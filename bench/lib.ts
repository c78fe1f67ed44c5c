// Helpers every bench shares: argument parsing, timing and medians, the result table with
// PASS/MISS, and a berthd set up for the run and cleaned up on exit or on a signal.
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { setupDaemon, type CtrEnv } from '../test/containers/fixtures';

export const MiB = 1 << 20;

/**
 * Walks the command line. `-h`/`--help` print `usage` and exit 0; every other argument goes to
 * `onArg`, which returns false for one it does not know (an error). `value()` takes the argument's
 * value, a positive number.
 */
export function parseArgs(argv: string[], usage: string, onArg: (arg: string, value: () => number) => boolean): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): number => {
      const v = argv[++i];
      if (v === undefined || !(Number(v) > 0)) throw new Error(`${a} needs a positive number`);
      return Number(v);
    };
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    } else if (!onArg(a, value)) throw new Error(`unknown argument ${a}`);
  }
}

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Flushes dirty pages of earlier steps, so that their writeback does not land on the next one. */
export function sync(): void {
  execFileSync('sync');
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, value };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const best = (xs: number[]): number => Math.min(...xs);

/** Runs fn over items with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One line of a result table: a figure beside its baseline from the same run, and its target. */
export interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
  result: string;
}

export function printTable(title: string, rows: Row[]): void {
  const header = ['figure', 'value', 'baseline', 'ratio', 'target', 'result'];
  const cells = rows.map((r) => [r.figure, r.value, r.baseline, r.ratio, r.target, r.result]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string => c.map((s, i) => s.padEnd(widths[i])).join('  ').trimEnd();
  process.stdout.write(`\n${title}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${cells.map(line).join('\n')}\n`);
}

export const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
export const ratio = (a: number, b: number): string => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : '-');

/** A port on 127.0.0.1 that was free a moment ago (for programs that take a number, not a socket). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts berthd (test/containers/fixtures' setupDaemon) and runs `body` with it; the daemon is
 * cleaned up afterwards, and on SIGINT/SIGTERM too (then the process exits 130).
 */
export async function withDaemon(prefix: string, opts: Parameters<typeof setupDaemon>[1], body: (env: CtrEnv) => Promise<void>): Promise<void> {
  let env: CtrEnv | undefined;
  const onSignal = (): void => {
    void (env?.cleanup() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log('starting berthd');
    env = await setupDaemon(prefix, opts);
    await body(env);
  } finally {
    await env?.cleanup();
  }
}

/** Runs a bench's main: a failure prints its stack and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
