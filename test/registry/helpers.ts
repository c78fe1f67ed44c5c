// Shared helpers of the registry tests: temp roots, servers on 127.0.0.1:0, and a raw HTTP client
// (node:http, not fetch) so tests can send paths exactly as written, "/../" and "%2e%2e" included.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import * as https from 'node:https';
import { createHash } from 'node:crypto';
import { startRegistry, type RegistryOptions, type RunningRegistry } from '../../src/registry/server';

export const PREFIX = path.join(os.tmpdir(), 'berth-registry-test-');

export function tmpDir(): string {
  return fs.mkdtempSync(PREFIX);
}

export function rmrf(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export async function startTestRegistry(opts: Partial<RegistryOptions> & { root?: string; tls?: { cert: Buffer; key: Buffer } } = {}): Promise<RunningRegistry & { root: string }> {
  const root = opts.root ?? tmpDir();
  const running = await startRegistry({ ...opts, root, addr: '127.0.0.1:0' });
  return Object.assign(running, { root });
}

export interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = unknown>(): T;
}

export interface ReqOptions {
  headers?: Record<string, string | number>;
  body?: Buffer | string;
  /** Stream the body from an iterable of chunks (chunked transfer encoding). */
  chunks?: AsyncIterable<Buffer> | Iterable<Buffer>;
}

/** Sends one request with the path exactly as given. */
export function request(base: string, method: string, rawPath: string, opts: ReqOptions = {}): Promise<Resp> {
  const url = new URL(base);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: rawPath,
        // A body always travels with its length (node frames DELETE bodies otherwise not at all).
        headers: opts.body !== undefined && !Object.keys(opts.headers ?? {}).some((k) => k.toLowerCase() === 'content-length')
          ? { ...opts.headers, 'Content-Length': Buffer.byteLength(opts.body) }
          : opts.headers,
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body.toString('utf8')) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.chunks) {
      (async () => {
        for await (const c of opts.chunks!) if (!req.write(c)) await new Promise((r) => req.once('drain', r));
        req.end();
      })().catch(reject);
    } else {
      req.end(opts.body);
    }
  });
}

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function errorCode(r: Resp): string | undefined {
  try {
    return r.json<{ errors: { code: string }[] }>().errors[0].code;
  } catch {
    return undefined;
  }
}

/** Monolithic single-POST push of a blob; asserts nothing, returns the response. */
export function postBlob(base: string, name: string, data: Buffer | string, headers: Record<string, string> = {}): Promise<Resp> {
  return request(base, 'POST', `/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, {
    body: data,
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': Buffer.byteLength(data), ...headers },
  });
}

export const MT_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MT_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MT_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MT_OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** Pushes a config and one layer, returns an OCI manifest (not pushed) referencing them. */
export async function pushImageBlobs(base: string, name: string, seed: string, headers: Record<string, string> = {}): Promise<{ manifest: Buffer; config: string; layer: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = Buffer.from(`layer-${seed}`);
  for (const b of [config, layer]) {
    const r = await postBlob(base, name, b, headers);
    if (r.status !== 201) throw new Error(`blob push failed: ${r.status} ${r.body}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT_OCI_MANIFEST,
      config: { mediaType: MT_OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MT_OCI_LAYER, digest: sha256(layer), size: layer.length }],
    }),
  );
  return { manifest, config: sha256(config), layer: sha256(layer) };
}

export function putManifest(base: string, name: string, ref: string, manifest: Buffer, mediaType = MT_OCI_MANIFEST, headers: Record<string, string> = {}): Promise<Resp> {
  return request(base, 'PUT', `/v2/${name}/manifests/${ref}`, { body: manifest, headers: { 'Content-Type': mediaType, ...headers } });
}
