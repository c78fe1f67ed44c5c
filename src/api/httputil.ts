// Helpers for handlers: reading JSON bodies and docker-style query parameters, writing JSON and
// JSON progress streams.
import type * as http from 'node:http';
import { invalidParameter } from '../common/errors';
import type { RequestContext } from './router';

export function sendJSON(ctx: RequestContext, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  ctx.res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : text);
}

export function sendNoContent(ctx: RequestContext, status = 204): void {
  ctx.res.writeHead(status);
  ctx.res.end();
}

export async function readBody(req: http.IncomingMessage, limit = 64 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw invalidParameter('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads a JSON body; an empty body gives `undefined`. Malformed JSON is a 400 as in dockerd. */
export async function readJSON<T>(ctx: RequestContext): Promise<T | undefined> {
  const body = await readBody(ctx.req);
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (err) {
    throw invalidParameter(`invalid JSON: ${(err as Error).message}`);
  }
}

/** dockerd's boolean query parsing: "", "0", "false", "no", "none" (any case) are false. */
export function boolParam(q: URLSearchParams, name: string, def = false): boolean {
  const v = q.get(name);
  if (v === null) return def;
  return !['', '0', 'false', 'no', 'none'].includes(v.trim().toLowerCase());
}

export function intParam(q: URLSearchParams, name: string, def: number): number {
  const v = q.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n)) throw invalidParameter(`invalid ${name} value: ${JSON.stringify(v)}`);
  return n;
}

/**
 * Filters as the API takes them: JSON of {"key": ["v1", "v2"]}, or the older
 * {"key": {"v1": true}} form, which clients before 1.30 still send.
 */
export type Filters = Map<string, string[]>;

export function parseFilters(raw: string | null, allowed?: string[]): Filters {
  const out: Filters = new Map();
  if (raw === null || raw === '') return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalidParameter(`invalid filter: ${raw}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidParameter(`invalid filter: ${raw}`);
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (allowed && !allowed.includes(k)) throw invalidParameter(`invalid filter '${k}'`);
    if (Array.isArray(v)) out.set(k, v.map(String));
    else if (typeof v === 'object' && v !== null) out.set(k, Object.keys(v).filter((x) => (v as Record<string, unknown>)[x]));
    else throw invalidParameter(`invalid filter: ${raw}`);
  }
  return out;
}

/** Starts a JSON message stream (pull, push, load, build): one JSON object per line. */
export function startJSONStream(ctx: RequestContext): (msg: object) => void {
  ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
  return (msg) => {
    if (!ctx.res.writableEnded) ctx.res.write(JSON.stringify(msg) + '\r\n');
  };
}
