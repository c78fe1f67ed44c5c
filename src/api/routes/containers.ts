// Container routes (/containers/..., /commit): HTTP shapes only; the work is the ContainerBackend's.
import { invalidParameter } from '../../common/errors';
import { boolParam, intParam, parseFilters, readJSON, sendJSON, sendNoContent, type Filters } from '../httputil';
import type { RequestContext, Route } from '../router';
import { readUpgradeBody } from './exec';

export interface ContainerBackend {
  create(name: string | null, body: Record<string, unknown>, apiVersion: string): Promise<object>;
  list(opts: { all: boolean; limit: number; size: boolean; filters: Filters }): Promise<object[]>;
  inspect(ref: string, size: boolean): Promise<object>;
  start(ref: string): Promise<boolean>;
  stop(ref: string, opts: { signal?: string; timeout?: number }): Promise<boolean>;
  restart(ref: string, opts: { signal?: string; timeout?: number }): Promise<void>;
  kill(ref: string, signal: string): Promise<void>;
  pause(ref: string): Promise<void>;
  unpause(ref: string): Promise<void>;
  rename(ref: string, name: string): Promise<void>;
  remove(ref: string, opts: { force: boolean; volumes: boolean; link: boolean }): Promise<void>;
  resize(ref: string, h: number, w: number): void;
  /** Starts the wait (registering it) and returns its completion. */
  wait(ref: string, condition: string): Promise<object>;
  top(ref: string, psArgs: string): Promise<object>;
  changes(ref: string): Promise<object[]>;
  logs(ctx: RequestContext, ref: string): Promise<void>;
  /** Writes the stats response (stream, or one object) for the container. */
  stats(ctx: RequestContext, ref: string): Promise<void>;
  attach(ctx: RequestContext, ref: string): Promise<void>;
  export(ctx: RequestContext, ref: string): Promise<void>;
  /** docker cp: HEAD stats a path, GET sends its tar, PUT extracts a tar into it. */
  archive(ctx: RequestContext, ref: string, method: 'HEAD' | 'GET' | 'PUT'): Promise<void>;
  commit(ref: string, opts: { repo?: string; tag?: string; comment?: string; author?: string; pause: boolean; changes: string[]; config?: Record<string, unknown> }): Promise<object>;
  prune(filters: Filters): Promise<object>;
  /** docker update: resources and restart policy; answers {"Warnings": [...]}. */
  update(ref: string, body: Record<string, unknown>): Promise<object>;
}

const LIST_FILTERS = ['ancestor', 'before', 'expose', 'exited', 'health', 'id', 'isolation', 'is-task', 'label', 'name', 'network', 'publish', 'since', 'status', 'volume'];

/** docker's ?t= (seconds; -1 waits forever); absent means the container's own default. */
function timeoutParam(q: URLSearchParams): number | undefined {
  const t = q.get('t') ?? q.get('timeout');
  if (t === null || t === '') return undefined;
  const n = Number(t);
  if (!Number.isInteger(n)) throw invalidParameter(`invalid value for t: ${JSON.stringify(t)}`);
  return n;
}

export function containerRoutes(b: ContainerBackend): Route[] {
  return [
    {
      method: 'POST',
      path: '/containers/create',
      handler: async (ctx) => {
        const body = await readJSON<Record<string, unknown>>(ctx);
        if (!body) throw invalidParameter('config cannot be empty in order to create a container');
        sendJSON(ctx, 201, await b.create(ctx.query.get('name') || null, body, ctx.apiVersion));
      },
    },
    {
      method: 'GET',
      path: '/containers/json',
      handler: async (ctx) => {
        const q = ctx.query;
        const filters = parseFilters(q.get('filters'), LIST_FILTERS);
        sendJSON(ctx, 200, await b.list({ all: boolParam(q, 'all'), limit: intParam(q, 'limit', -1), size: boolParam(q, 'size'), filters }));
      },
    },
    {
      method: 'POST',
      path: '/containers/prune',
      handler: async (ctx) => sendJSON(ctx, 200, await b.prune(parseFilters(ctx.query.get('filters'), ['until', 'label', 'label!']))),
    },
    { method: 'GET', path: '/containers/{id}/json', handler: async (ctx) => sendJSON(ctx, 200, await b.inspect(ctx.params.id, boolParam(ctx.query, 'size'))) },
    {
      method: 'POST',
      path: '/containers/{id}/start',
      handler: async (ctx) => {
        const started = await b.start(ctx.params.id);
        sendNoContent(ctx, started ? 204 : 304);
      },
    },
    {
      method: 'POST',
      path: '/containers/{id}/stop',
      handler: async (ctx) => {
        const stopped = await b.stop(ctx.params.id, { signal: ctx.query.get('signal') || undefined, timeout: timeoutParam(ctx.query) });
        sendNoContent(ctx, stopped ? 204 : 304);
      },
    },
    {
      method: 'POST',
      path: '/containers/{id}/restart',
      handler: async (ctx) => {
        await b.restart(ctx.params.id, { signal: ctx.query.get('signal') || undefined, timeout: timeoutParam(ctx.query) });
        sendNoContent(ctx);
      },
    },
    {
      method: 'POST',
      path: '/containers/{id}/kill',
      handler: async (ctx) => {
        await b.kill(ctx.params.id, ctx.query.get('signal') || 'SIGKILL');
        sendNoContent(ctx);
      },
    },
    { method: 'POST', path: '/containers/{id}/pause', handler: async (ctx) => { await b.pause(ctx.params.id); sendNoContent(ctx); } },
    { method: 'POST', path: '/containers/{id}/unpause', handler: async (ctx) => { await b.unpause(ctx.params.id); sendNoContent(ctx); } },
    {
      method: 'POST',
      path: '/containers/{id}/rename',
      handler: async (ctx) => {
        await b.rename(ctx.params.id, ctx.query.get('name') ?? '');
        sendNoContent(ctx);
      },
    },
    {
      method: 'POST',
      path: '/containers/{id}/resize',
      handler: (ctx) => {
        b.resize(ctx.params.id, intParam(ctx.query, 'h', 0), intParam(ctx.query, 'w', 0));
        ctx.res.writeHead(200, { 'Content-Length': 0 });
        ctx.res.end();
      },
    },
    {
      method: 'POST',
      path: '/containers/{id}/wait',
      handler: async (ctx) => {
        const done = b.wait(ctx.params.id, ctx.query.get('condition') ?? '');
        // The header goes out at once: clients (docker run) wait for it before starting the
        // container, and by then the wait is registered.
        ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
        ctx.res.flushHeaders();
        const result = await done;
        ctx.res.end(JSON.stringify(result) + '\n');
      },
    },
    {
      method: 'DELETE',
      path: '/containers/{id}',
      handler: async (ctx) => {
        const q = ctx.query;
        await b.remove(ctx.params.id, { force: boolParam(q, 'force'), volumes: boolParam(q, 'v'), link: boolParam(q, 'link') });
        sendNoContent(ctx);
      },
    },
    {
      method: 'POST',
      path: '/containers/{id}/update',
      handler: async (ctx) => {
        const body = await readJSON<Record<string, unknown>>(ctx);
        sendJSON(ctx, 200, await b.update(ctx.params.id, body ?? {}));
      },
    },
    { method: 'GET', path: '/containers/{id}/top', handler: async (ctx) => sendJSON(ctx, 200, await b.top(ctx.params.id, ctx.query.get('ps_args') ?? '')) },
    { method: 'GET', path: '/containers/{id}/changes', handler: async (ctx) => sendJSON(ctx, 200, await b.changes(ctx.params.id)) },
    { method: 'GET', path: '/containers/{id}/logs', handler: (ctx) => b.logs(ctx, ctx.params.id) },
    { method: 'GET', path: '/containers/{id}/stats', handler: (ctx) => b.stats(ctx, ctx.params.id) },
    {
      method: 'POST',
      path: '/containers/{id}/attach',
      handler: async (ctx) => {
        // dockerd ignores a body on attach (its hijack drops what the request buffered); dockerode
        // sends its options as one, which must not reach the container's stdin.
        if (ctx.upgrade && Number(ctx.req.headers['content-length'] ?? 0) > 0) {
          const { rest } = await readUpgradeBody(ctx);
          ctx = { ...ctx, upgrade: { socket: ctx.upgrade.socket, head: rest } };
        }
        await b.attach(ctx, ctx.params.id);
      },
    },
    { method: 'GET', path: '/containers/{id}/export', handler: (ctx) => b.export(ctx, ctx.params.id) },
    { method: 'HEAD', path: '/containers/{id}/archive', handler: (ctx) => b.archive(ctx, ctx.params.id, 'HEAD') },
    { method: 'GET', path: '/containers/{id}/archive', handler: (ctx) => b.archive(ctx, ctx.params.id, 'GET') },
    { method: 'PUT', path: '/containers/{id}/archive', handler: (ctx) => b.archive(ctx, ctx.params.id, 'PUT') },
    {
      method: 'POST',
      path: '/commit',
      handler: async (ctx) => {
        const q = ctx.query;
        const container = q.get('container');
        if (!container) throw invalidParameter('No container name or ID supplied');
        const config = await readJSON<Record<string, unknown>>(ctx);
        const res = await b.commit(container, {
          repo: q.get('repo') || undefined,
          tag: q.get('tag') || undefined,
          comment: q.get('comment') || undefined,
          author: q.get('author') || undefined,
          pause: boolParam(q, 'pause', true),
          changes: q.getAll('changes').flatMap((c) => c.split('\n')).filter((c) => c.trim() !== ''),
          config: config ?? undefined,
        });
        sendJSON(ctx, 201, res);
      },
    },
  ];
}
