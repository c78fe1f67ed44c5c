// System routes: /_ping, /version, /info, /system/df. The handlers only shape HTTP; the figures
// come from a SystemBackend that the daemon implements.
import { sendJSON } from '../httputil';
import { API_VERSION, MIN_API_VERSION, type Route } from '../router';

export interface SystemBackend {
  info(): Promise<Record<string, unknown>>;
  version(): Record<string, unknown>;
  diskUsage(types: string[]): Promise<Record<string, unknown>>;
  experimental: boolean;
}

export function systemRoutes(b: SystemBackend): Route[] {
  const ping: Route['handler'] = (ctx) => {
    const headers = {
      'Api-Version': API_VERSION,
      'Builder-Version': '1',
      'Docker-Experimental': String(b.experimental),
      'Ostype': 'linux',
      'Swarm': 'inactive',
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      'Pragma': 'no-cache',
      'Content-Type': 'text/plain; charset=utf-8',
    };
    ctx.res.writeHead(200, { ...headers, 'Content-Length': ctx.req.method === 'HEAD' ? 0 : 2 });
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : 'OK');
  };
  return [
    { method: 'GET', path: '/_ping', handler: ping },
    { method: 'HEAD', path: '/_ping', handler: ping },
    { method: 'GET', path: '/version', handler: (ctx) => sendJSON(ctx, 200, b.version()) },
    { method: 'GET', path: '/info', handler: async (ctx) => sendJSON(ctx, 200, await b.info()) },
    {
      method: 'GET',
      path: '/system/df',
      handler: async (ctx) => sendJSON(ctx, 200, await b.diskUsage(ctx.query.getAll('type'))),
    },
  ];
}

export { API_VERSION, MIN_API_VERSION };
