// Build routes: POST /build (the classic builder's JSON stream), /build/prune and /build/cancel.
// HTTP shapes only; the work is the Builder's.
import type { Readable } from 'node:stream';
import { messageOf, notFound } from '../../common/errors';
import type { BuildParams } from '../../build/builder';
import { sendJSON } from '../httputil';
import type { Route } from '../router';
import { startJSONStreamLazy } from './images';

export interface BuildBackend {
  /** Runs a build; see Builder.build (throws before output, streams errorDetail after). */
  build(params: BuildParams, context: Readable, send: (msg: object) => void, signal?: AbortSignal): Promise<string | undefined>;
  /** Forgets the step cache; returns how many entries went. */
  pruneCache(): number;
}

export function buildRoutes(b: BuildBackend): Route[] {
  /** Builds in progress by the client's buildid, for /build/cancel. */
  const running = new Map<string, AbortController>();
  return [
    {
      method: 'POST',
      path: '/build',
      handler: async (ctx) => {
        // X-Registry-Config (credentials for FROM pulls) is accepted and ignored: berth's
        // builder does not pull.
        // The builder is loaded on first use (see common/lazy.ts).
        const { parseBuildParams } = require('../../build/builder') as typeof import('../../build/builder');
        const params = parseBuildParams(ctx.query);
        const buildId = ctx.query.get('buildid') ?? '';
        const cancel = new AbortController();
        // A client that goes away (Ctrl-C) cancels the build, as with dockerd: a RUN in progress
        // is killed and no further step runs.
        const onClose = (): void => {
          if (!ctx.res.writableEnded) cancel.abort();
        };
        ctx.res.on('close', onClose);
        if (buildId) running.set(buildId, cancel);
        const send = startJSONStreamLazy(ctx);
        try {
          await b.build(params, ctx.req, send, cancel.signal);
        } catch (err) {
          // Before the first message the router answers with a plain 4xx/5xx JSON error.
          if (!ctx.res.headersSent) throw err;
          const message = messageOf(err);
          send({ errorDetail: { message }, error: message });
        } finally {
          if (buildId && running.get(buildId) === cancel) running.delete(buildId);
          ctx.res.off('close', onClose);
        }
        ctx.res.end();
      },
    },
    {
      method: 'POST',
      path: '/build/prune',
      handler: (ctx) => {
        b.pruneCache();
        // The classic cache is a table of step → image: its images are ordinary images (pruned by
        // `docker image prune`), so dropping the entries reclaims no space by itself.
        sendJSON(ctx, 200, { CachesDeleted: null, SpaceReclaimed: 0 });
      },
    },
    {
      method: 'POST',
      path: '/build/cancel',
      handler: (ctx) => {
        const id = ctx.query.get('id') ?? '';
        const c = running.get(id);
        if (!c) throw notFound(`build ${id} not found`);
        c.abort();
        ctx.res.writeHead(200);
        ctx.res.end();
      },
    },
  ];
}
