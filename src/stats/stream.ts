// The body of GET /containers/{id}/stats: one JSON object per line every second while `stream`
// (docker's default), or one object: after a second sample (so precpu_stats is filled) for
// stream=false, or at once for stream=false&one-shot=true.
import type * as http from 'node:http';
import { invalidParameter } from '../common/errors';
import { emptyStats, readStats, type ReadStatsOptions } from './read';
import type { StatsResponse } from './types';

/** Where a running container's figures are; undefined while it is not running. */
export interface StatsTarget {
  cgroupsPath: string;
  /** The container's init pid, for its network namespace; 0 for none (host or none network). */
  pid: number;
}

export interface StatsRequest {
  stream: boolean;
  oneShot: boolean;
}

export interface StatsStreamOptions extends Omit<ReadStatsOptions, 'name' | 'id'> {
  /** The container's name with its leading slash, as docker sends it. */
  name: string;
  id: string;
  intervalMs?: number;
  /** stream=false: how long after the first sample the second is taken (default 100 ms). */
  settleMs?: number;
}

function flag(q: URLSearchParams, name: string, def: boolean): boolean {
  const v = q.get(name);
  if (v === null) return def;
  return !['', '0', 'false', 'no', 'none'].includes(v.trim().toLowerCase());
}

/** stream (default true) and one-shot (default false), which only goes with stream=false. */
export function parseStatsQuery(q: URLSearchParams): StatsRequest {
  const stream = flag(q, 'stream', true);
  const oneShot = flag(q, 'one-shot', false);
  if (stream && oneShot) throw invalidParameter('cannot have stream=true and one-shot=true');
  return { stream, oneShot };
}

function sample(target: () => StatsTarget | undefined, prev: StatsResponse | undefined, opts: StatsStreamOptions): StatsResponse {
  const t = target();
  if (!t) return emptyStats(opts.name, opts.id);
  try {
    return readStats(t.cgroupsPath, t.pid, prev, { ...opts, name: opts.name, id: opts.id });
  } catch {
    // The container stopped between target() and the reads (its cgroup went away).
    return emptyStats(opts.name, opts.id);
  }
}

/**
 * Writes the stats response for one request. Resolves when the response is finished: after the
 * single object, or when the client goes away while streaming.
 */
export function writeStats(res: http.ServerResponse, target: () => StatsTarget | undefined, req: StatsRequest, opts: StatsStreamOptions): Promise<void> {
  const interval = opts.intervalMs ?? 1000;
  res.writeHead(200, { 'Content-Type': 'application/json' });
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    const done = (): void => {
      closed = true;
      if (timer) clearTimeout(timer);
      if (!res.writableEnded) res.end();
      resolve();
    };
    res.once('close', done);

    if (!req.stream) {
      const first = sample(target, undefined, opts);
      if (req.oneShot || first.read === '0001-01-01T00:00:00Z') {
        res.end(JSON.stringify(first) + '\n');
        return done();
      }
      // The second sample only gives precpu_stats a baseline; CPU% is a rate, so a short window
      // serves as well as docker's one-second tick and `docker stats --no-stream` answers quickly.
      timer = setTimeout(() => {
        if (closed) return;
        res.end(JSON.stringify(sample(target, first, opts)) + '\n');
        done();
      }, opts.settleMs ?? 100);
      return;
    }

    let prev: StatsResponse | undefined;
    const tick = (): void => {
      if (closed) return;
      const s = sample(target, prev, opts);
      // A stopped container restarts precpu from zero when it runs again.
      prev = s.read === '0001-01-01T00:00:00Z' ? undefined : s;
      res.write(JSON.stringify(s) + '\n');
      timer = setTimeout(tick, interval);
    };
    tick();
  });
}
