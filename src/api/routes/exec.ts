// Exec routes (/containers/{id}/exec, /exec/...): HTTP shapes only; the work is the ExecBackend's.
import { intParam, sendJSON } from '../httputil';
import { readJSON } from '../httputil';
import type { RequestContext, Route } from '../router';
import { invalidParameter } from '../../common/errors';

export interface ExecBackend {
  createExec(ref: string, body: Record<string, unknown>): Promise<object>;
  /** Starts the exec; hijacks the connection unless Detach. */
  startExec(ctx: RequestContext, id: string, body: { Detach?: boolean; Tty?: boolean; ConsoleSize?: [number, number] | null }): Promise<void>;
  inspectExec(id: string): Promise<object>;
  resizeExec(id: string, h: number, w: number): Promise<void>;
}

/**
 * The JSON body of a request that asked to upgrade: Node hands such requests over before their
 * body is read, so the body is the first Content-Length bytes of the connection, and whatever
 * follows is the client's stdin.
 */
export async function readUpgradeBody(ctx: RequestContext): Promise<{ body: Buffer; rest: Buffer }> {
  const up = ctx.upgrade!;
  const len = Number(ctx.req.headers['content-length'] ?? 0);
  if (!Number.isInteger(len) || len < 0 || len > 1 << 20) throw invalidParameter('invalid Content-Length');
  let buf = up.head;
  if (buf.length < len) {
    const chunks: Buffer[] = [buf];
    let have = buf.length;
    await new Promise<void>((resolve, reject) => {
      const onData = (c: Buffer): void => {
        chunks.push(c);
        have += c.length;
        if (have >= len) {
          done();
          resolve();
        }
      };
      const onEnd = (): void => {
        done();
        reject(invalidParameter('connection closed before the request body was read'));
      };
      const done = (): void => {
        up.socket.off('data', onData);
        up.socket.off('end', onEnd);
        up.socket.pause();
      };
      up.socket.on('data', onData);
      up.socket.on('end', onEnd);
      up.socket.resume();
    });
    buf = Buffer.concat(chunks);
  }
  return { body: buf.subarray(0, len), rest: buf.subarray(len) };
}

export function execRoutes(b: ExecBackend): Route[] {
  return [
    {
      method: 'POST',
      path: '/containers/{id}/exec',
      handler: async (ctx) => {
        const body = await readJSON<Record<string, unknown>>(ctx);
        if (!body) throw invalidParameter('config cannot be empty in order to create an exec');
        sendJSON(ctx, 201, await b.createExec(ctx.params.id, body));
      },
    },
    {
      method: 'POST',
      path: '/exec/{id}/start',
      handler: async (ctx) => {
        let raw: Buffer;
        let upgradeCtx = ctx;
        if (ctx.upgrade) {
          const { body, rest } = await readUpgradeBody(ctx);
          raw = body;
          upgradeCtx = { ...ctx, upgrade: { socket: ctx.upgrade.socket, head: rest } };
        } else {
          const chunks: Buffer[] = [];
          for await (const c of ctx.req) chunks.push(c as Buffer);
          raw = Buffer.concat(chunks);
        }
        let body: { Detach?: boolean; Tty?: boolean; ConsoleSize?: [number, number] | null } = {};
        if (raw.length > 0) {
          try {
            body = JSON.parse(raw.toString('utf8')) as typeof body;
          } catch (err) {
            throw invalidParameter(`invalid JSON: ${(err as Error).message}`);
          }
        }
        await b.startExec(upgradeCtx, ctx.params.id, body);
      },
    },
    {
      method: 'POST',
      path: '/exec/{id}/resize',
      handler: async (ctx) => {
        await b.resizeExec(ctx.params.id, intParam(ctx.query, 'h', 0), intParam(ctx.query, 'w', 0));
        ctx.res.writeHead(200, { 'Content-Length': 0 });
        ctx.res.end();
      },
    },
    { method: 'GET', path: '/exec/{id}/json', handler: async (ctx) => sendJSON(ctx, 200, await b.inspectExec(ctx.params.id)) },
  ];
}
