// Image routes (/images/...): HTTP shapes only; the work is the ImageBackend's.
import type { Readable } from 'node:stream';
import { invalidParameter, notImplemented } from '../../common/errors';
import { boolParam, parseFilters, sendJSON, startJSONStream, type Filters } from '../httputil';
import type { RequestContext, Route } from '../router';

export interface ImageBackend {
  list(opts: { all: boolean; digests: boolean; filters: Filters; manifests: boolean; apiVersion: string }): Promise<object[]>;
  inspect(name: string, apiVersion: string): Promise<object>;
  history(name: string): Promise<object[]>;
  tag(source: string, repo: string, tag: string | null): Promise<void>;
  remove(name: string, opts: { force: boolean; noprune: boolean }): Promise<object[]>;
  importRootfs(input: Readable, opts: { repo?: string; tag?: string; changes: string[]; message?: string; platform?: string }): Promise<string>;
  load(input: Readable, quiet: boolean, progress: (msg: object) => void): Promise<void>;
  save(names: string[]): Promise<Readable>;
  prune(filters: Filters): Promise<object>;
  /** Pull (fromImage); provided by the distribution client once it exists. */
  pull?(ctx: RequestContext, progress: (msg: object) => void): Promise<void>;
  push?(ctx: RequestContext, name: string, progress: (msg: object) => void): Promise<void>;
}

const IMAGE_LIST_FILTERS = ['dangling', 'label', 'label!', 'before', 'since', 'reference', 'until'];

export function imageRoutes(b: ImageBackend): Route[] {
  return [
    {
      method: 'GET',
      path: '/images/json',
      handler: async (ctx) => {
        const q = ctx.query;
        const filters = parseFilters(q.get('filters'), IMAGE_LIST_FILTERS);
        // Old clients send the reference filter as ?filter=name.
        if (q.get('filter')) filters.set('reference', [...(filters.get('reference') ?? []), q.get('filter')!]);
        sendJSON(ctx, 200, await b.list({ all: boolParam(q, 'all'), digests: boolParam(q, 'digests'), filters, manifests: boolParam(q, 'manifests'), apiVersion: ctx.apiVersion }));
      },
    },
    {
      method: 'POST',
      path: '/images/create',
      handler: async (ctx) => {
        const q = ctx.query;
        const fromSrc = q.get('fromSrc');
        const fromImage = q.get('fromImage');
        if (fromSrc !== null && fromSrc !== '') {
          if (fromSrc !== '-') throw notImplemented('importing from a URL is not supported; stream the archive in the request body (fromSrc=-)');
          const changes = q.getAll('changes');
          // Validate everything before the response starts, so bad input is a plain 4xx.
          const id = await b.importRootfs(ctx.req, {
            repo: q.get('repo') ?? undefined,
            tag: q.get('tag') ?? undefined,
            changes,
            message: q.get('message') ?? undefined,
            platform: q.get('platform') ?? undefined,
          });
          const send = startJSONStream(ctx);
          send({ status: id });
          ctx.res.end();
          return;
        }
        if (fromImage !== null && fromImage !== '') {
          if (!b.pull) throw notImplemented('pulling images is not supported by this daemon yet');
          await b.pull(ctx, startJSONStreamLazy(ctx));
          return;
        }
        throw invalidParameter('fromImage or fromSrc is required');
      },
    },
    {
      method: 'POST',
      path: '/images/load',
      handler: async (ctx) => {
        const quiet = boolParam(ctx.query, 'quiet');
        const send = startJSONStreamLazy(ctx);
        try {
          await b.load(ctx.req, quiet, send);
        } catch (err) {
          if (!ctx.res.headersSent) throw err;
          // Once the stream started, errors travel inside it, as docker's do.
          send({ errorDetail: { message: (err as Error).message }, error: (err as Error).message });
        }
        if (!ctx.res.headersSent) send({ stream: '' });
        ctx.res.end();
      },
    },
    {
      method: 'GET',
      path: '/images/get',
      handler: async (ctx) => {
        const names = ctx.query.getAll('names').flatMap((n) => n.split(',')).filter(Boolean);
        if (names.length === 0) throw invalidParameter('no image names given');
        await sendTar(ctx, await b.save(names));
      },
    },
    {
      method: 'POST',
      path: '/images/prune',
      handler: async (ctx) => {
        const filters = parseFilters(ctx.query.get('filters'), ['dangling', 'label', 'label!', 'until']);
        sendJSON(ctx, 200, await b.prune(filters));
      },
    },
    {
      method: 'GET',
      path: '/images/{name*}/json',
      handler: async (ctx) => sendJSON(ctx, 200, await b.inspect(ctx.params.name, ctx.apiVersion)),
    },
    {
      method: 'GET',
      path: '/images/{name*}/history',
      handler: async (ctx) => sendJSON(ctx, 200, await b.history(ctx.params.name)),
    },
    {
      method: 'GET',
      path: '/images/{name*}/get',
      handler: async (ctx) => sendTar(ctx, await b.save([ctx.params.name])),
    },
    {
      method: 'POST',
      path: '/images/{name*}/tag',
      handler: async (ctx) => {
        const repo = ctx.query.get('repo') ?? '';
        await b.tag(ctx.params.name, repo, ctx.query.get('tag') || null);
        ctx.res.writeHead(201);
        ctx.res.end();
      },
    },
    {
      method: 'POST',
      path: '/images/{name*}/push',
      handler: async (ctx) => {
        if (!b.push) throw notImplemented('pushing images is not supported by this daemon yet');
        await b.push(ctx, ctx.params.name, startJSONStreamLazy(ctx));
      },
    },
    {
      method: 'DELETE',
      path: '/images/{name*}',
      handler: async (ctx) => {
        const q = ctx.query;
        sendJSON(ctx, 200, await b.remove(ctx.params.name, { force: boolParam(q, 'force'), noprune: boolParam(q, 'noprune') }));
      },
    },
  ];
}

/** A JSON stream whose 200 header goes out with the first message, so early errors stay 4xx. */
export function startJSONStreamLazy(ctx: RequestContext): (msg: object) => void {
  let send: ((msg: object) => void) | undefined;
  return (msg) => {
    send = send ?? startJSONStream(ctx);
    send(msg);
  };
}

async function sendTar(ctx: RequestContext, tar: Readable): Promise<void> {
  ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
  const { pipeline } = await import('node:stream/promises');
  await pipeline(tar, ctx.res);
}
