// Volume routes (/volumes/...): HTTP shapes only; the work is the VolumeService's.
import { invalidParameter } from '../../common/errors';
import { boolParam, parseFilters, readJSON, sendJSON, sendNoContent } from '../httputil';
import type { Route } from '../router';
import type { CreateVolumeRequest, VolumeService } from '../../volumes/service';

export function volumeRoutes(volumes: VolumeService): Route[] {
  return [
    {
      method: 'GET',
      path: '/volumes',
      handler: (ctx) => {
        const filters = parseFilters(ctx.query.get('filters'), ['dangling', 'name', 'label', 'label!', 'driver']);
        sendJSON(ctx, 200, { Volumes: volumes.list(filters), Warnings: [] });
      },
    },
    {
      method: 'POST',
      path: '/volumes/create',
      handler: async (ctx) => {
        const body = (await readJSON<CreateVolumeRequest>(ctx)) ?? {};
        if (typeof body !== 'object' || Array.isArray(body)) throw invalidParameter('invalid volume create request');
        sendJSON(ctx, 201, volumes.create(body));
      },
    },
    {
      method: 'POST',
      path: '/volumes/prune',
      handler: (ctx) => sendJSON(ctx, 200, volumes.prune(parseFilters(ctx.query.get('filters'), ['label', 'label!', 'all']))),
    },
    { method: 'GET', path: '/volumes/{name}', handler: (ctx) => sendJSON(ctx, 200, volumes.get(ctx.params.name)) },
    {
      method: 'DELETE',
      path: '/volumes/{name}',
      handler: (ctx) => {
        volumes.remove(ctx.params.name, { force: boolParam(ctx.query, 'force') });
        sendNoContent(ctx);
      },
    },
  ];
}
