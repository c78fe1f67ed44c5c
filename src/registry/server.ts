// The registry's HTTP front: routes OCI distribution spec requests to the storage, after validating
// every path parameter (names.ts) and authorising the access the request needs (auth.ts).
//
// Paths are matched on the raw request target, never on a URL-normalised form: "/v2/a/../b" must
// not silently become "/v2/b". Path parameters are percent-decoded and then validated against the
// spec's grammars, which admit neither "/.." nor "%", so no request can name a file outside the root.
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { regErr, RegistryError } from './errors';
import { NoAuth, type Access, type Authorizer, type AuthResult } from './auth';
import { checkName, digestOf, isValidName, isValidTag, looksLikeDigest, parseDigest, type Digest } from './names';
import { BlobStore, RepositoryStore, UploadStore, type Descriptor } from './storage';
import { acceptedTypes, accepts, IMAGE_TYPES, INDEX_TYPES, MAX_MANIFEST_SIZE, MT_OCI_INDEX, parseManifest, referrerDescriptor } from './manifest';
import type { TokenIssuer } from './token';
import { silentLogger, type Logger } from '../common/logger';

export interface RateLimit {
  /** Sustained requests per second per client address. */
  perSecond: number;
  /** Requests allowed in a burst. */
  burst: number;
}

export interface RegistryOptions {
  root: string;
  readOnly?: boolean;
  /** Allow DELETE of blobs, manifests and tags (default true). */
  deleteEnabled?: boolean;
  authorizer?: Authorizer;
  /** Serve the token endpoint at tokenPath (default /token) from this process. */
  tokenIssuer?: TokenIssuer;
  tokenPath?: string;
  rateLimit?: RateLimit;
  logger?: Logger;
}

type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; ref: string }
  | { kind: 'blob'; name: string; ref: string }
  | { kind: 'uploadStart'; name: string }
  | { kind: 'upload'; name: string; ref: string }
  | { kind: 'referrers'; name: string; ref: string };

const METHODS: Record<Route['kind'], string[]> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET', 'HEAD'],
  tags: ['GET', 'HEAD'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  uploadStart: ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  referrers: ['GET', 'HEAD'],
};

const WRITE_METHODS = ['PUT', 'POST', 'PATCH', 'DELETE'];
/** Page size cap for the catalog when the client asks for none or for more. */
const MAX_CATALOG_PAGE = 1000;

function decodeParam(raw: string, onError: () => RegistryError): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw onError();
  }
}

/** Maps a raw /v2/ path to a route; undefined for paths that are not part of the API. */
export function matchRoute(rawPath: string): Route | undefined {
  if (rawPath === '/v2' || rawPath === '/v2/') return { kind: 'base' };
  if (!rawPath.startsWith('/v2/')) return undefined;
  const rest = rawPath.slice(4);
  if (rest === '_catalog') return { kind: 'catalog' };
  const badName = (): RegistryError => regErr('NAME_INVALID', 'invalid repository name');
  const badRef = (): RegistryError => regErr('DIGEST_INVALID', 'invalid reference');
  let m: RegExpMatchArray | null;
  if ((m = rest.match(/^(.+)\/tags\/list$/))) return { kind: 'tags', name: decodeParam(m[1], badName) };
  if ((m = rest.match(/^(.+)\/manifests\/([^/]+)$/))) return { kind: 'manifest', name: decodeParam(m[1], badName), ref: decodeParam(m[2], badRef) };
  if ((m = rest.match(/^(.+)\/blobs\/uploads\/?$/))) return { kind: 'uploadStart', name: decodeParam(m[1], badName) };
  if ((m = rest.match(/^(.+)\/blobs\/uploads\/([^/]+)$/))) return { kind: 'upload', name: decodeParam(m[1], badName), ref: decodeParam(m[2], badRef) };
  if ((m = rest.match(/^(.+)\/blobs\/([^/]+)$/))) return { kind: 'blob', name: decodeParam(m[1], badName), ref: decodeParam(m[2], badRef) };
  if ((m = rest.match(/^(.+)\/referrers\/([^/]+)$/))) return { kind: 'referrers', name: decodeParam(m[1], badName), ref: decodeParam(m[2], badRef) };
  return undefined;
}

/** The repository access a request needs, in Docker's scope terms. */
function neededAccess(route: Route, method: string): Access[] {
  if (route.kind === 'base') return [];
  if (route.kind === 'catalog') return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
  const name = route.name;
  if (method === 'GET' || method === 'HEAD') return [{ type: 'repository', name, actions: ['pull'] }];
  if (method === 'DELETE' && (route.kind === 'manifest' || route.kind === 'blob')) return [{ type: 'repository', name, actions: ['delete'] }];
  // Pushing needs pull too: the client reads back what it wrote (HEAD before upload, mount checks).
  return [{ type: 'repository', name, actions: ['pull', 'push'] }];
}

function parseCount(v: string | null): number | undefined {
  if (v === null) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw regErr('PAGINATION_NUMBER_INVALID', 'invalid number of results requested', { n: v.slice(0, 20) });
  return Number(v);
}

/** Parses Content-Range of an upload chunk: "<start>-<end>" (a "bytes " prefix and "/total" tolerated). */
function parseChunkRange(v: string): { start: number; end: number } {
  const m = v.trim().match(/^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d+|\*))?$/);
  if (!m) throw regErr('BLOB_UPLOAD_INVALID', 'invalid Content-Range', { range: v.slice(0, 100) }, 416);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw regErr('BLOB_UPLOAD_INVALID', 'invalid Content-Range', { range: v }, 416);
  return { start, end };
}

/** A single-range "bytes=" request against size; undefined when absent or not understood (serve whole). */
function parseByteRange(v: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!v) return undefined;
  const m = v.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

function hasBody(req: http.IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

function contentLength(req: http.IncomingMessage): number | undefined {
  const len = req.headers['content-length'];
  return len === undefined ? undefined : Number(len);
}

async function readLimited(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw regErr('SIZE_INVALID', `manifest larger than ${limit} bytes`, undefined, 413);
  const chunks: Buffer[] = [];
  let len = 0;
  for await (const c of req) {
    len += (c as Buffer).length;
    if (len > limit) throw regErr('SIZE_INVALID', `manifest larger than ${limit} bytes`, undefined, 413);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly limit: RateLimit) {}

  take(key: string): boolean {
    const now = Date.now() / 1000;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size > 10000) this.buckets.clear();
      b = { tokens: this.limit.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.limit.burst, b.tokens + (now - b.at) * this.limit.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

export class Registry {
  readonly blobs: BlobStore;
  readonly repos: RepositoryStore;
  readonly uploads: UploadStore;
  private readonly auth: Authorizer;
  private readonly log: Logger;
  private readonly limiter?: TokenBuckets;

  constructor(readonly opts: RegistryOptions) {
    this.blobs = new BlobStore(opts.root);
    this.repos = new RepositoryStore(opts.root);
    this.uploads = new UploadStore(opts.root, this.blobs);
    this.auth = opts.authorizer ?? new NoAuth();
    this.log = opts.logger ?? silentLogger;
    if (opts.rateLimit) this.limiter = new TokenBuckets(opts.rateLimit);
  }

  /** The request listener for http(s).createServer. */
  readonly handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.handle(req, res).catch((err) => this.sendError(req, res, err));
  };

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const raw = req.url ?? '/';
    const qi = raw.indexOf('?');
    const rawPath = qi >= 0 ? raw.slice(0, qi) : raw;
    const query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '');
    const method = req.method ?? 'GET';
    this.log.debug('registry request', { method, path: rawPath });

    if (this.limiter && !this.limiter.take(req.socket.remoteAddress ?? '')) {
      const err = regErr('TOOMANYREQUESTS', 'too many requests');
      err.headers['Retry-After'] = '1';
      throw err;
    }
    if (this.opts.tokenIssuer && rawPath === (this.opts.tokenPath ?? '/token')) return this.opts.tokenIssuer.handle(req, res, query);

    const route = matchRoute(rawPath);
    if (!route) throw regErr('UNSUPPORTED', 'unknown endpoint', { path: rawPath.slice(0, 200) }, 404);
    if (!METHODS[route.kind].includes(method)) {
      const err = regErr('UNSUPPORTED', `method ${method} not allowed here`);
      err.headers.Allow = METHODS[route.kind].join(', ');
      throw err;
    }
    if ('name' in route) checkName(route.name);
    if (this.opts.readOnly && WRITE_METHODS.includes(method)) throw regErr('UNSUPPORTED', 'registry is in read-only mode');
    const auth = await this.auth.authorize(req, neededAccess(route, method));

    switch (route.kind) {
      case 'base':
        return this.sendJson(req, res, 200, {});
      case 'catalog':
        return this.catalog(req, res, query);
      case 'tags':
        return this.tags(req, res, route.name, query);
      case 'manifest':
        if (method === 'PUT') return this.putManifest(req, res, route.name, route.ref);
        if (method === 'DELETE') return this.deleteManifest(req, res, route.name, route.ref);
        return this.getManifest(req, res, route.name, route.ref);
      case 'blob':
        if (method === 'DELETE') return this.deleteBlob(req, res, route.name, route.ref);
        return this.getBlob(req, res, route.name, route.ref);
      case 'uploadStart':
        return this.startUpload(req, res, route.name, query, auth);
      case 'upload':
        if (method === 'GET') return this.uploadStatus(req, res, route.name, route.ref);
        if (method === 'PATCH') return this.patchUpload(req, res, route.name, route.ref);
        if (method === 'PUT') return this.putUpload(req, res, route.name, route.ref, query);
        return this.cancelUpload(req, res, route.name, route.ref);
      case 'referrers':
        return this.referrers(req, res, route.name, route.ref, query);
    }
  }

  // ---- responses

  private sendJson(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers });
    res.end(req.method === 'HEAD' ? undefined : data);
  }

  private sendEmpty(res: http.ServerResponse, status: number, headers: Record<string, string>): void {
    res.writeHead(status, { 'Content-Length': 0, ...headers });
    res.end();
  }

  private sendError(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    if (err instanceof RegistryError) return this.writeError(req, res, err.status, err.body(), err.headers);
    // A client that hangs up mid-body or mid-download is routine, not a server fault.
    if (req.destroyed || res.destroyed || ['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'EPIPE'].includes((err as NodeJS.ErrnoException)?.code ?? '')) {
      this.log.debug('client went away', { method: req.method, url: req.url, error: err instanceof Error ? err.message : String(err) });
      res.destroy();
      return;
    }
    // Anything else is our fault; the client gets no internals, the log gets the stack.
    this.log.error('registry request failed', { method: req.method, url: req.url, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    this.writeError(req, res, 500, JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'unknown error' }] }), {});
  }

  private writeError(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string, headers: Record<string, string>): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const data = Buffer.from(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length, ...headers });
    res.end(req.method === 'HEAD' ? undefined : data);
  }

  // ---- content discovery

  private paginate(all: string[], query: URLSearchParams, defaultMax?: number): { page: string[]; more: boolean; n?: number } {
    const n = parseCount(query.get('n'));
    const last = query.get('last');
    let items = last ? all.filter((x) => x > last) : all;
    if (n === 0) return { page: [], more: false, n };
    const limit = n !== undefined ? (defaultMax !== undefined ? Math.min(n, defaultMax) : n) : defaultMax;
    if (limit === undefined || items.length <= limit) return { page: items, more: false, n };
    items = items.slice(0, limit);
    return { page: items, more: true, n: limit };
  }

  private async catalog(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams): Promise<void> {
    const { page, more, n } = this.paginate(await this.repos.listRepositories(), query, MAX_CATALOG_PAGE);
    const headers: Record<string, string> = {};
    if (more) headers.Link = `</v2/_catalog?last=${encodeURIComponent(page[page.length - 1])}&n=${n}>; rel="next"`;
    this.sendJson(req, res, 200, { repositories: page }, headers);
  }

  private async tags(req: http.IncomingMessage, res: http.ServerResponse, name: string, query: URLSearchParams): Promise<void> {
    if (!(await this.repos.exists(name))) throw regErr('NAME_UNKNOWN', 'repository name not known to registry', { name });
    const { page, more, n } = this.paginate(await this.repos.listTags(name), query);
    const headers: Record<string, string> = {};
    if (more) headers.Link = `</v2/${name}/tags/list?last=${encodeURIComponent(page[page.length - 1])}&n=${n}>; rel="next"`;
    this.sendJson(req, res, 200, { name, tags: page }, headers);
  }

  private async referrers(req: http.IncomingMessage, res: http.ServerResponse, name: string, ref: string, query: URLSearchParams): Promise<void> {
    const subject = parseDigest(ref);
    const artifactType = query.get('artifactType');
    let list: Descriptor[] = [];
    for (const desc of await this.repos.listReferrers(name, subject)) {
      // A referrer whose manifest was deleted behind our back (gc, crash between writes) is not listed.
      if (await this.repos.getManifest(name, parseDigest(desc.digest))) list.push(desc);
    }
    const headers: Record<string, string> = { 'Content-Type': MT_OCI_INDEX };
    if (artifactType) {
      list = list.filter((d) => d.artifactType === artifactType);
      headers['OCI-Filters-Applied'] = 'artifactType';
    }
    this.sendJson(req, res, 200, { schemaVersion: 2, mediaType: MT_OCI_INDEX, manifests: list }, headers);
  }

  // ---- manifests

  private parseReference(ref: string): { digest?: Digest; tag?: string } {
    if (looksLikeDigest(ref)) return { digest: parseDigest(ref) };
    if (!isValidTag(ref)) throw regErr('MANIFEST_INVALID', 'invalid tag', { tag: ref.slice(0, 200) });
    return { tag: ref };
  }

  private async resolve(name: string, ref: { digest?: Digest; tag?: string }): Promise<Digest> {
    if (ref.digest) return ref.digest;
    const d = await this.repos.getTag(name, ref.tag!);
    if (!d) throw regErr('MANIFEST_UNKNOWN', 'manifest unknown', { tag: ref.tag });
    return d;
  }

  private async getManifest(req: http.IncomingMessage, res: http.ServerResponse, name: string, rawRef: string): Promise<void> {
    const ref = this.parseReference(rawRef);
    let digest = await this.resolve(name, ref);
    let link = await this.repos.getManifest(name, digest);
    if (!link) throw regErr('MANIFEST_UNKNOWN', 'manifest unknown', { digest: digest.text });
    let body = await this.blobs.read(digest).catch(() => undefined);
    if (!body) throw regErr('MANIFEST_UNKNOWN', 'manifest unknown', { digest: digest.text });
    const types = acceptedTypes(req.headers.accept);
    if (!accepts(types, link.mediaType)) {
      // A client that cannot read manifest lists gets the linux/amd64 image of a tagged list, as
      // distribution does; a digest names exact bytes, so it is never swapped.
      const picked = ref.tag && INDEX_TYPES.includes(link.mediaType) ? await this.pickPlatform(name, body, types) : undefined;
      if (!picked) {
        const kind = INDEX_TYPES.includes(link.mediaType) ? 'manifest list' : 'manifest';
        throw regErr('MANIFEST_UNKNOWN', `${kind} of type ${link.mediaType} found, but the Accept header does not allow it`, { mediaType: link.mediaType });
      }
      ({ digest, link, body } = picked);
    }
    res.writeHead(200, {
      'Content-Type': link.mediaType,
      'Content-Length': body.length,
      'Docker-Content-Digest': digest.text,
      ETag: `"${digest.text}"`,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async pickPlatform(name: string, indexBody: Buffer, types: string[]): Promise<{ digest: Digest; link: { mediaType: string; size: number }; body: Buffer } | undefined> {
    let index: { manifests?: Descriptor[] };
    try {
      index = JSON.parse(indexBody.toString('utf8'));
    } catch {
      return undefined;
    }
    for (const m of index.manifests ?? []) {
      if (m.platform?.os !== 'linux' || m.platform?.architecture !== 'amd64' || !IMAGE_TYPES.includes(m.mediaType) || !accepts(types, m.mediaType)) continue;
      const digest = parseDigest(m.digest);
      const link = await this.repos.getManifest(name, digest);
      const body = link ? await this.blobs.read(digest).catch(() => undefined) : undefined;
      if (link && body) return { digest, link, body };
    }
    return undefined;
  }

  private async putManifest(req: http.IncomingMessage, res: http.ServerResponse, name: string, rawRef: string): Promise<void> {
    const ref = this.parseReference(rawRef);
    const body = await readLimited(req, MAX_MANIFEST_SIZE);
    const manifest = parseManifest(body, req.headers['content-type']);
    const digest = digestOf(body, ref.digest?.algorithm ?? 'sha256');
    if (ref.digest && ref.digest.hex !== digest.hex) {
      throw regErr('DIGEST_INVALID', 'manifest digest did not match the reference', { expected: ref.digest.text, actual: digest.text });
    }
    for (const b of manifest.blobs) {
      if (!(await this.repos.hasBlob(name, b)) || !(await this.blobs.stat(b))) {
        throw regErr('MANIFEST_BLOB_UNKNOWN', 'blob unknown to registry', { digest: b.text });
      }
    }
    for (const m of manifest.manifests) {
      if (!(await this.repos.getManifest(name, parseDigest(m.digest)))) {
        throw regErr('MANIFEST_BLOB_UNKNOWN', 'manifest unknown to registry', { digest: m.digest });
      }
    }
    // Content first, then the revision, then the referrer entry, the tag last: a tag never points
    // at a manifest the repository does not have.
    await this.blobs.putSmall(body, digest);
    await this.repos.putManifest(name, digest, { mediaType: manifest.mediaType, size: body.length, subject: manifest.subject?.digest });
    const headers: Record<string, string> = {
      Location: `/v2/${name}/manifests/${digest.text}`,
      'Docker-Content-Digest': digest.text,
    };
    if (manifest.subject) {
      const subject = parseDigest(manifest.subject.digest);
      await this.repos.addReferrer(name, subject, referrerDescriptor(manifest, digest, body.length));
      headers['OCI-Subject'] = subject.text;
    }
    if (ref.tag) await this.repos.putTag(name, ref.tag, digest);
    this.sendEmpty(res, 201, headers);
  }

  private async deleteManifest(req: http.IncomingMessage, res: http.ServerResponse, name: string, rawRef: string): Promise<void> {
    if (this.opts.deleteEnabled === false) throw regErr('UNSUPPORTED', 'deletion is disabled');
    const ref = this.parseReference(rawRef);
    if (!(await this.repos.exists(name))) throw regErr('NAME_UNKNOWN', 'repository name not known to registry', { name });
    if (ref.tag) {
      if (!(await this.repos.deleteTag(name, ref.tag))) throw regErr('MANIFEST_UNKNOWN', 'manifest unknown', { tag: ref.tag });
      return this.sendEmpty(res, 202, {});
    }
    const digest = ref.digest!;
    const link = await this.repos.getManifest(name, digest);
    if (!link) throw regErr('MANIFEST_UNKNOWN', 'manifest unknown', { digest: digest.text });
    for (const tag of await this.repos.listTags(name)) {
      const d = await this.repos.getTag(name, tag);
      if (d && d.text === digest.text) await this.repos.deleteTag(name, tag);
    }
    if (link.subject) await this.repos.removeReferrer(name, parseDigest(link.subject), digest);
    await this.repos.deleteManifest(name, digest);
    this.sendEmpty(res, 202, {});
  }

  // ---- blobs

  private async getBlob(req: http.IncomingMessage, res: http.ServerResponse, name: string, ref: string): Promise<void> {
    const digest = parseDigest(ref);
    const info = (await this.repos.hasBlob(name, digest)) ? await this.blobs.stat(digest) : undefined;
    if (!info) throw regErr('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.text });
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': digest.text,
      ETag: `"${digest.text}"`,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'max-age=31536000',
    };
    const range = parseByteRange(req.headers.range, info.size);
    if (range === 'unsatisfiable') {
      const err = regErr('SIZE_INVALID', 'requested range not satisfiable', { size: info.size }, 416);
      err.headers['Content-Range'] = `bytes */${info.size}`;
      throw err;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': info.size });
      res.end();
      return;
    }
    if (range) {
      res.writeHead(206, { ...headers, 'Content-Length': range.end - range.start + 1, 'Content-Range': `bytes ${range.start}-${range.end}/${info.size}` });
      await pipeline(this.blobs.openRead(digest, range.start, range.end), res);
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Length': info.size });
    if (info.size === 0) {
      res.end();
      return;
    }
    await pipeline(this.blobs.openRead(digest), res);
  }

  private async deleteBlob(req: http.IncomingMessage, res: http.ServerResponse, name: string, ref: string): Promise<void> {
    if (this.opts.deleteEnabled === false) throw regErr('UNSUPPORTED', 'deletion is disabled');
    const digest = parseDigest(ref);
    // Only the repository's link goes; the data stays until gc finds nothing references it.
    if (!(await this.repos.unlinkBlob(name, digest))) throw regErr('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.text });
    this.sendEmpty(res, 202, { 'Docker-Content-Digest': digest.text });
  }

  // ---- uploads

  private uploadHeaders(name: string, id: string, size: number): Record<string, string> {
    return {
      Location: `/v2/${name}/blobs/uploads/${id}`,
      // distribution reports an empty upload as "0-0" too; clients read it as "nothing yet".
      Range: `0-${Math.max(size - 1, 0)}`,
      'Docker-Upload-UUID': id,
    };
  }

  private blobCreated(res: http.ServerResponse, name: string, digest: Digest): void {
    this.sendEmpty(res, 201, { Location: `/v2/${name}/blobs/${digest.text}`, 'Docker-Content-Digest': digest.text });
  }

  private async startUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, query: URLSearchParams, auth: AuthResult): Promise<void> {
    const mount = query.get('mount');
    if (mount !== null) {
      const digest = parseDigest(mount);
      const from = query.get('from');
      if (from !== null && isValidName(from) && auth.can({ type: 'repository', name: from, actions: ['pull'] })) {
        if ((await this.repos.hasBlob(from, digest)) && (await this.blobs.stat(digest))) {
          await this.repos.linkBlob(name, digest);
          return this.blobCreated(res, name, digest);
        }
      }
      // Not mountable: fall back to an ordinary upload session, as the spec asks.
    }
    const digestParam = query.get('digest');
    if (digestParam !== null && mount === null) {
      const digest = parseDigest(digestParam);
      const id = await this.uploads.create(name);
      try {
        await this.uploads.withLock(id, async () => {
          await this.uploads.append(name, id, req, undefined, contentLength(req));
          await this.uploads.complete(name, id, digest);
        });
      } catch (err) {
        await this.uploads.purge(id);
        throw err;
      }
      await this.repos.linkBlob(name, digest);
      return this.blobCreated(res, name, digest);
    }
    const id = await this.uploads.create(name);
    this.sendEmpty(res, 202, this.uploadHeaders(name, id, 0));
  }

  private async uploadStatus(_req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string): Promise<void> {
    const size = await this.uploads.size(name, id);
    this.sendEmpty(res, 204, this.uploadHeaders(name, id, size));
  }

  private async patchUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string): Promise<void> {
    await this.uploads.size(name, id);
    const cr = req.headers['content-range'];
    const range = cr !== undefined ? parseChunkRange(cr) : undefined;
    const size = await this.uploads.withLock(id, () => this.uploads.append(name, id, req, range, contentLength(req)));
    this.sendEmpty(res, 202, this.uploadHeaders(name, id, size));
  }

  private async putUpload(req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string, query: URLSearchParams): Promise<void> {
    await this.uploads.size(name, id);
    const digestParam = query.get('digest');
    if (digestParam === null) throw regErr('DIGEST_INVALID', 'digest parameter missing');
    const digest = parseDigest(digestParam);
    const cr = req.headers['content-range'];
    const range = cr !== undefined ? parseChunkRange(cr) : undefined;
    await this.uploads.withLock(id, async () => {
      if (hasBody(req)) await this.uploads.append(name, id, req, range, contentLength(req));
      await this.uploads.complete(name, id, digest);
    });
    await this.repos.linkBlob(name, digest);
    this.blobCreated(res, name, digest);
  }

  private async cancelUpload(_req: http.IncomingMessage, res: http.ServerResponse, name: string, id: string): Promise<void> {
    await this.uploads.withLock(id, () => this.uploads.cancel(name, id));
    this.sendEmpty(res, 204, {});
  }
}

export interface ListenOptions {
  /** "host:port", ":port" (all addresses) or "[v6]:port". */
  addr: string;
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export function parseAddr(addr: string): { host?: string; port: number } {
  const m = addr.match(/^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/);
  if (!m) throw new Error(`invalid listen address "${addr}": want HOST:PORT or :PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in "${addr}"`);
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port };
}

export interface RunningRegistry {
  registry: Registry;
  server: http.Server | https.Server;
  /** Base URL, e.g. http://127.0.0.1:5000 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Creates the registry and listens; resolves once the socket is bound. */
export async function startRegistry(opts: RegistryOptions & ListenOptions): Promise<RunningRegistry> {
  const registry = new Registry(opts);
  const server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, registry.handler) : http.createServer(registry.handler);
  // Large layers over slow links take long; the default 5-minute request timeout would cut them off.
  server.requestTimeout = 0;
  const { host, port } = parseAddr(opts.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host === undefined ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    registry,
    server,
    port: bound,
    url: `${opts.tls ? 'https' : 'http'}://${shownHost}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
