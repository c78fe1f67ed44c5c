// GET /distribution/{name}/json: a reference's descriptor and platforms as its registry reports them.
import { sendJSON } from '../httputil';
import type { Route } from '../router';
import type { RequestContext } from '../router';

export interface DistributionInspectBackend {
  inspectDistribution(ctx: RequestContext, name: string): Promise<object>;
}

export function distributionRoutes(b: DistributionInspectBackend): Route[] {
  return [
    {
      method: 'GET',
      path: '/distribution/{name*}/json',
      handler: async (ctx) => sendJSON(ctx, 200, await b.inspectDistribution(ctx, ctx.params.name)),
    },
  ];
}
