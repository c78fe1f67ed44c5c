// HTTP routing for the Engine API. Routes are declared as data (method, path template, handler);
// the router strips the optional /v1.NN prefix (version middleware), matches the route, and maps
// thrown errors to docker-shaped bodies {"message": "..."} through errors.statusOf.
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { BerthError, invalidParameter, messageOf, statusOf } from '../common/errors';
import type { Logger } from '../common/logger';

export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

export interface RequestContext {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  /** Path parameters from the route template, decoded. */
  readonly params: Record<string, string>;
  readonly query: URLSearchParams;
  /** The API version the client asked for (the path prefix), or the daemon's own. */
  readonly apiVersion: string;
  /** Present when the client asked to upgrade the connection (attach, exec start). */
  readonly upgrade?: { socket: Duplex; head: Buffer };
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

export interface Route {
  method: Method;
  /** A template such as /containers/{name}/json; {name*} matches the rest, slashes included. */
  path: string;
  handler: Handler;
}

interface CompiledRoute extends Route {
  regex: RegExp;
  names: string[];
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/[.+?^$()[\]\\|]/g, '\\$&').replace(/\{(\w+)(\*?)\}/g, (_m, name: string, rest: string) => {
    names.push(name);
    return rest ? '(.+)' : '([^/]+)';
  });
  return { ...route, regex: new RegExp(`^${source}$`), names };
}

export function compareVersions(a: string, b: string): number {
  const [am, an] = a.split('.').map(Number);
  const [bm, bn] = b.split('.').map(Number);
  return am !== bm ? am - bm : an - bn;
}

export class Router {
  private readonly routes: CompiledRoute[] = [];

  constructor(private readonly log: Logger) {}

  add(routes: Route[]): this {
    for (const r of routes) this.routes.push(compile(r));
    return this;
  }

  /** Splits "/v1.45/containers/json" into version and path; validates the version range. */
  static splitVersion(pathname: string): { version: string; path: string } {
    const m = /^\/v([0-9]+\.[0-9]+)(\/.*)?$/.exec(pathname);
    if (!m) return { version: API_VERSION, path: pathname };
    const version = m[1];
    if (compareVersions(version, API_VERSION) > 0) {
      throw invalidParameter(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
    }
    if (compareVersions(version, MIN_API_VERSION) < 0) {
      throw invalidParameter(
        `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
      );
    }
    return { version, path: m[2] ?? '/' };
  }

  async dispatch(req: http.IncomingMessage, res: http.ServerResponse, upgrade?: { socket: Duplex; head: Buffer }): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://berth');
    const method = (req.method ?? 'GET').toUpperCase();
    const started = process.hrtime.bigint();
    try {
      const { version, path } = Router.splitVersion(url.pathname);
      let pathMatched = false;
      for (const r of this.routes) {
        const m = r.regex.exec(path);
        if (!m) continue;
        pathMatched = true;
        if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) continue;
        const params: Record<string, string> = {};
        r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
        await r.handler({ req, res, params, query: url.searchParams, apiVersion: version, upgrade });
        return;
      }
      // dockerd answers an unknown path with 404 "page not found"; a known path with a wrong
      // method gets the same from gorilla/mux in dockerd, so we keep the message.
      void pathMatched;
      throw new BerthError('NotFound', 'page not found');
    } catch (err) {
      this.writeError(res, err, upgrade?.socket);
    } finally {
      this.log.debug('API request', { method, path: url.pathname, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    }
  }

  writeError(res: http.ServerResponse, err: unknown, socket?: Duplex): void {
    const status = statusOf(err);
    const message = messageOf(err);
    if (status >= 500) this.log.error('Handler for request returned an error', { err: message, stack: (err as Error)?.stack });
    else this.log.debug('request error', { status, err: message });
    const body = JSON.stringify({ message }) + '\n';
    if (socket && !res.headersSent) {
      // An upgrade request has no ServerResponse attached to a socket: write the reply by hand.
      if (!socket.destroyed) {
        socket.end(
          `HTTP/1.1 ${status} ${httpReason(status)}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      return;
    }
    if (res.headersSent) {
      // A streaming reply already started: the best we can do is end it (a handler whose body
      // must not look whole when cut short has destroyed the response already).
      if (!res.writableEnded && !res.destroyed) res.end();
      return;
    }
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }
}

function httpReason(status: number): string {
  const reasons: Record<number, string> = {
    400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict',
    500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable', 304: 'Not Modified',
  };
  return reasons[status] ?? 'Error';
}
