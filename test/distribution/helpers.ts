// Shared pieces of the distribution tests: a real registry (`berth registry serve`, as a child
// process on 127.0.0.1 with its own temp root), docker-save archives with any number of layers
// (to load multi-layer images), raw registry uploads, a recording HTTP proxy that can stall a
// blob download mid-way, and a reader for JSON progress streams.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import * as tar from 'tar-stream';
import { REPO_ROOT } from '../helpers/daemon';

export function sha256(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

export interface TestRegistry {
  /** host:port, as image references name it. */
  host: string;
  url: string;
  root: string;
  dir: string;
  proc: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/** Runs `berth registry serve` on 127.0.0.1:0 with extra flags; the temp dir holds its root and files. */
export async function startRegistry(name: string, extraArgs: (dir: string) => string[] = () => []): Promise<TestRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `berth-dist-${name}-`));
  const root = path.join(dir, 'root');
  const args = ['serve', '--addr', '127.0.0.1:0', '--root', root, ...extraArgs(dir)];
  const cli = path.join(REPO_ROOT, 'dist', 'src', 'registry', 'cli.js');
  const proc = spawn(process.execPath, ['-e', `require(${JSON.stringify(cli)}).registryMain(${JSON.stringify(args)}).then((c) => process.exit(c))`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`registry did not start:\n${output}`)), 15_000);
    const check = (): void => {
      const m = /url="(https?:\/\/[^"]+)"/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stderr!.on('data', check);
    proc.stdout!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited with ${code}:\n${output}`));
    });
  });
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { host: new URL(url).host, url, root, dir, proc, logs: () => output, stop };
}

export interface LayerSpec {
  entries: { name: string; data?: Buffer | string; type?: 'file' | 'directory' }[];
}

/** A tar of the given entries (fixed mtimes, so the same spec gives the same bytes). */
export function tarOf(entries: LayerSpec['entries']): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(1_700_000_000_000) };
    if (type === 'file') pack.entry(header, typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0)));
    else pack.entry(header);
  }
  pack.finalize();
  return done;
}

/** A docker-save archive (manifest.json form) of one image with the given layer tars, for `docker load`. */
export async function imageArchive(repoTag: string, layers: Buffer[], created = '2024-01-01T00:00:00Z'): Promise<Buffer> {
  const diffIDs = layers.map((l) => sha256(l));
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created,
    config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: diffIDs },
    history: layers.map(() => ({ created, created_by: 'test' })),
  }));
  const files: { name: string; data: Buffer }[] = [];
  files.push({ name: `${sha256(config).slice(7)}.json`, data: config });
  const layerPaths = layers.map((l, i) => `layer${i}/layer.tar`);
  layers.forEach((l, i) => files.push({ name: layerPaths[i], data: l }));
  files.push({ name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: `${sha256(config).slice(7)}.json`, RepoTags: [repoTag], Layers: layerPaths }])) });
  return tarOf(files.map((f) => ({ name: f.name, data: f.data })));
}

export interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function request(url: string, method: string, body?: Buffer, headers: Record<string, string | number> = {}): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body ? { 'Content-Length': body.length, ...headers } : headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Uploads a blob to a registry with POST + PUT (no auth). */
export async function uploadBlob(base: string, repo: string, data: Buffer): Promise<string> {
  const start = await request(`${base}/v2/${repo}/blobs/uploads/`, 'POST', Buffer.alloc(0));
  if (start.status !== 202) throw new Error(`upload start: ${start.status} ${start.body}`);
  const loc = new URL(String(start.headers.location), base);
  loc.searchParams.set('digest', sha256(data));
  const put = await request(loc.href, 'PUT', data, { 'Content-Type': 'application/octet-stream' });
  if (put.status !== 201) throw new Error(`upload put: ${put.status} ${put.body}`);
  return sha256(data);
}

export async function putManifest(base: string, repo: string, ref: string, manifest: object, mediaType: string): Promise<{ digest: string; bytes: Buffer }> {
  const bytes = Buffer.from(JSON.stringify(manifest));
  const r = await request(`${base}/v2/${repo}/manifests/${ref}`, 'PUT', bytes, { 'Content-Type': mediaType });
  if (r.status !== 201) throw new Error(`manifest put: ${r.status} ${r.body}`);
  return { digest: sha256(bytes), bytes };
}

export function gzip(b: Buffer): Buffer {
  return zlib.gzipSync(b);
}

/** Parses a JSON-lines progress stream. */
export function messages(body: Buffer | string): Record<string, unknown>[] {
  return body.toString().split(/\r?\n/).filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

export interface ProxyRequestLog {
  method: string;
  url: string;
  range?: string;
  status?: number;
  bytesSent: number;
}

/**
 * An HTTP proxy in front of a registry that records requests and can stall one blob download:
 * with stallAfter set, a GET of a blob path containing stallBlob sends that many body bytes and
 * then sends nothing more (until release() or the client goes away).
 */
export interface RecordingProxy {
  host: string;
  log: ProxyRequestLog[];
  stallBlob?: string;
  stallAfter?: number;
  /** Resolves when a stalled response has sent its stallAfter bytes. */
  stalled(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<RecordingProxy> {
  const t = new URL(target);
  let onStalled: (() => void) | undefined;
  let stalledPromise = new Promise<void>((r) => (onStalled = r));
  const sockets = new Set<import('node:net').Socket>();
  const proxy: RecordingProxy = {
    host: '',
    log: [],
    stalled: () => stalledPromise,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    const entry: ProxyRequestLog = { method: req.method ?? '', url: req.url ?? '', range: req.headers.range, bytesSent: 0 };
    proxy.log.push(entry);
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (ures) => {
      entry.status = ures.statusCode;
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      const stall = proxy.stallAfter !== undefined && proxy.stallBlob !== undefined && req.method === 'GET' && (req.url ?? '').includes(`/blobs/${proxy.stallBlob}`);
      if (!stall) {
        ures.on('data', (c: Buffer) => (entry.bytesSent += c.length));
        ures.pipe(res);
        return;
      }
      const limit = proxy.stallAfter!;
      ures.on('data', (c: Buffer) => {
        const room = limit - entry.bytesSent;
        if (room <= 0) return;
        const part = c.subarray(0, room);
        entry.bytesSent += part.length;
        res.write(part);
        if (entry.bytesSent >= limit) {
          ures.pause();
          const done = onStalled!;
          stalledPromise = new Promise<void>((r) => (onStalled = r));
          done();
        }
      });
      res.on('close', () => ures.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
