// The registry client: which endpoints serve a registry (mirrors, https or plain http), the /v2/
// ping, authentication (Basic, and Docker's bearer-token flow with tokens cached per scope), and
// the distribution API calls pull and push need, on a RemoteRepository.
import type { IncomingMessage } from 'node:http';
import { isIPv4 } from 'node:net';
import type { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { unauthorized } from '../common/errors';
import type { Logger } from '../common/logger';
import { DEFAULT_DOMAIN } from '../images/reference';
import type { AuthConfig } from './authconfig';
import {
  Challenge, HttpPools, RegistryConnectionError, RegistryResponseError, discard, goOp, parseChallenges, readAll, responseError,
} from './http';

/** Where Docker Hub's registry API lives (docker.io is only the name). */
export const DOCKER_HUB_API = 'https://registry-1.docker.io';

export interface Endpoint {
  /** Base URL, no trailing slash: https://registry-1.docker.io, http://127.0.0.1:5000, a mirror's URL. */
  url: URL;
  mirror: boolean;
  insecureTLS: boolean;
  /**
   * Tried when the first URL cannot be reached: plain http for an --insecure-registry reached
   * over https, https (unverified) for a loopback registry spoken to over plain http.
   */
  fallback?: URL;
}

export interface RegistryClientOptions {
  insecureRegistries?: string[];
  registryMirrors?: string[];
  log: Logger;
  userAgent?: string;
}

export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

const MANIFEST_LIMIT = 4 << 20;

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIPv4(h) && h.startsWith('127.'));
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, p) => (n << 8) + Number(p), 0) >>> 0;
}

function inCIDR(ip: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (!isIPv4(ip) || !isIPv4(net) || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((ipv4ToInt(ip) & mask) >>> 0) === ((ipv4ToInt(net) & mask) >>> 0);
}

interface CachedToken {
  header: string;
  expires: number;
}

export interface TokenResult {
  token: string;
  refreshToken?: string;
}

export class RegistryClient {
  readonly pools = new HttpPools();
  private readonly insecure: string[];
  private readonly mirrors: URL[];
  private readonly tokens = new Map<string, CachedToken>();
  readonly userAgent: string;

  constructor(private readonly opts: RegistryClientOptions) {
    this.insecure = (opts.insecureRegistries ?? []).map((s) => s.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '')).filter(Boolean);
    this.mirrors = (opts.registryMirrors ?? []).map((m) => new URL(/^[a-z]+:\/\//i.test(m) ? m : `https://${m}`));
    this.userAgent = opts.userAgent ?? 'berth/0.1.0';
  }

  get log(): Logger {
    return this.opts.log;
  }

  /** --insecure-registry entries match host:port, host, or (IPv4) a CIDR containing the host. */
  isInsecure(domain: string): boolean {
    const hostname = new URL(`http://${domain}`).hostname.replace(/^\[|\]$/g, '');
    return this.insecure.some((e) => e === domain || e === hostname || (e.includes('/') && inCIDR(hostname, e)));
  }

  /** Endpoints to try for a registry, in order. Mirrors serve pulls of docker.io only. */
  endpoints(domain: string, opts: { push?: boolean } = {}): Endpoint[] {
    const out: Endpoint[] = [];
    if (domain === DEFAULT_DOMAIN) {
      if (!opts.push) {
        for (const m of this.mirrors) {
          out.push({ url: new URL(m.href.replace(/\/+$/, '')), mirror: true, insecureTLS: this.isInsecure(m.host) || isLoopbackHost(m.hostname) });
        }
      }
      out.push({ url: new URL(DOCKER_HUB_API), mirror: false, insecureTLS: false });
      return out;
    }
    const hostname = new URL(`http://${domain}`).hostname;
    if (isLoopbackHost(hostname)) {
      // Loopback registries are insecure by default (as in dockerd) and nearly always plain http,
      // so http goes first here; a TLS registry on loopback is still reached through the fallback.
      out.push({ url: new URL(`http://${domain}`), mirror: false, insecureTLS: true, fallback: new URL(`https://${domain}`) });
    } else if (this.isInsecure(domain)) {
      out.push({ url: new URL(`https://${domain}`), mirror: false, insecureTLS: true, fallback: new URL(`http://${domain}`) });
    } else {
      out.push({ url: new URL(`https://${domain}`), mirror: false, insecureTLS: false });
    }
    return out;
  }

  /** Pings an endpoint (falling back to http for insecure ones) and returns a session on it. */
  async session(endpoint: Endpoint, auth: AuthConfig | undefined, scopes: string[], signal?: AbortSignal, opts: { offline?: boolean } = {}): Promise<Session> {
    let url = endpoint.url;
    let res: IncomingMessage;
    try {
      res = await this.ping(url, endpoint.insecureTLS, signal);
    } catch (err) {
      if (!endpoint.fallback || !(err instanceof RegistryConnectionError)) throw err;
      this.log.debug('registry ping failed; trying the fallback scheme', { endpoint: url.href, err: err.message });
      url = endpoint.fallback;
      try {
        res = await this.ping(url, endpoint.insecureTLS, signal);
      } catch {
        // Report the first failure: it names the scheme the registry is expected to speak.
        throw err;
      }
    }
    const challenge = res.statusCode === 401 ? pickChallenge(res.headers['www-authenticate']) : undefined;
    discard(res);
    return new Session(this, url, endpoint.insecureTLS, auth, scopes, challenge, opts.offline ?? false);
  }

  private ping(base: URL, insecureTLS: boolean, signal?: AbortSignal): Promise<IncomingMessage> {
    return this.pools.request({ method: 'GET', url: new URL(`${base.href.replace(/\/+$/, '')}/v2/`), insecureTLS, signal, headers: { 'User-Agent': this.userAgent }, timeoutMs: 30_000 });
  }

  /** A cached token for this realm, service, identity and scope set, if still valid. */
  cachedToken(key: string): string | undefined {
    const t = this.tokens.get(key);
    if (t && t.expires > Date.now()) return t.header;
    if (t) this.tokens.delete(key);
    return undefined;
  }

  cacheToken(key: string, header: string, expiresInSec: number): void {
    // Docker treats tokens as valid for at least 60 s; renew a little early.
    const life = Math.max(expiresInSec || 60, 60) * 1000;
    this.tokens.set(key, { header, expires: Date.now() + life - 5_000 });
    if (this.tokens.size > 1000) {
      const now = Date.now();
      for (const [k, v] of this.tokens) if (v.expires <= now) this.tokens.delete(k);
    }
  }

  dropToken(key: string): void {
    this.tokens.delete(key);
  }

  close(): void {
    this.pools.destroy();
    this.tokens.clear();
  }
}

function pickChallenge(header: string | string[] | undefined): Challenge | undefined {
  if (!header) return undefined;
  const all = parseChallenges(Array.isArray(header) ? header.join(', ') : header);
  return all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
}

export interface SessionRequest {
  headers?: Record<string, string | number>;
  body?: Buffer | Readable;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Talks to one registry endpoint with one identity and one set of scopes. */
export class Session {
  private refreshToken?: string;
  /** Set once the registry has shown it does not take a blob in a single POST. */
  monolithicPostUnsupported = false;

  constructor(
    readonly client: RegistryClient,
    /** The base URL actually in use (after any http fallback). */
    readonly base: URL,
    readonly insecureTLS: boolean,
    private readonly auth: AuthConfig | undefined,
    private scopes: string[],
    private challenge: Challenge | undefined,
    private readonly offline: boolean,
  ) {}

  get host(): string {
    return this.base.host;
  }

  /** The refresh token a login obtained (docker's IdentityToken), if the token service gave one. */
  get identityToken(): string | undefined {
    return this.refreshToken;
  }

  get authScheme(): string | undefined {
    return this.challenge?.scheme;
  }

  addScopes(scopes: string[]): void {
    for (const s of scopes) if (!this.scopes.includes(s)) this.scopes.push(s);
  }

  url(path: string): URL {
    return new URL(`${this.base.href.replace(/\/+$/, '')}${path}`);
  }

  private tokenKey(): string {
    const c = this.challenge!;
    const who = this.auth?.identitytoken ? `it:${sha(this.auth.identitytoken)}` : this.auth?.username ? `u:${this.auth.username}:${sha(this.auth.password ?? '')}` : 'anon';
    return [c.params.realm, c.params.service ?? '', who, [...this.scopes].sort().join(' ')].join('|');
  }

  /** The Authorization header for a request to this registry, fetching a token when needed. */
  async authorization(op: string, url: URL, signal?: AbortSignal): Promise<string | undefined> {
    if (this.auth?.registrytoken) return `Bearer ${this.auth.registrytoken}`;
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === 'basic') {
      if (!this.auth?.username && !this.auth?.password) return undefined;
      return `Basic ${Buffer.from(`${this.auth.username ?? ''}:${this.auth.password ?? ''}`).toString('base64')}`;
    }
    const key = this.tokenKey();
    const cached = this.client.cachedToken(key);
    if (cached) return cached;
    const { token, expiresIn } = await this.fetchToken(op, url, signal);
    const header = `Bearer ${token}`;
    this.client.cacheToken(key, header, expiresIn);
    return header;
  }

  private async fetchToken(op: string, target: URL, signal?: AbortSignal): Promise<{ token: string; expiresIn: number }> {
    const c = this.challenge!;
    const realm = c.params.realm;
    if (!realm) throw new Error(`${op} "${target.href}": bearer auth challenge without a realm`);
    let realmURL: URL;
    try {
      realmURL = new URL(realm);
    } catch {
      throw new Error(`${op} "${target.href}": invalid token realm ${JSON.stringify(realm)}`);
    }
    const service = c.params.service;
    const headers: Record<string, string> = { 'User-Agent': this.client.userAgent };
    let res: IncomingMessage;
    if (this.auth?.identitytoken) {
      // OAuth2 refresh-token grant, as docker uses for identity tokens.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.auth.identitytoken, client_id: 'docker' });
      if (service) form.set('service', service);
      if (this.scopes.length) form.set('scope', this.scopes.join(' '));
      if (this.offline) form.set('access_type', 'offline');
      res = await this.client.pools.request({
        method: 'POST', url: realmURL, signal, insecureTLS: this.insecureTLS,
        headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()),
      });
    } else {
      if (service) realmURL.searchParams.set('service', service);
      for (const s of this.scopes) realmURL.searchParams.append('scope', s);
      if (this.auth?.username) {
        realmURL.searchParams.set('account', this.auth.username);
        headers.Authorization = `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password ?? ''}`).toString('base64')}`;
      }
      if (this.offline) {
        realmURL.searchParams.set('offline_token', 'true');
        realmURL.searchParams.set('client_id', 'docker');
      }
      res = await this.client.pools.request({ method: 'GET', url: realmURL, signal, insecureTLS: this.insecureTLS, headers });
    }
    if (res.statusCode !== 200) {
      const err = await responseError(res);
      const msg = `${op} "${target.href}": ${err.message}`;
      throw res.statusCode === 401 ? unauthorized(msg) : new Error(msg);
    }
    let body: { token?: string; access_token?: string; expires_in?: number; refresh_token?: string };
    try {
      body = JSON.parse((await readAll(res, 1 << 20)).toString('utf8')) as typeof body;
    } catch {
      throw new Error(`${op} "${target.href}": unable to decode token response`);
    }
    const token = body.access_token || body.token;
    if (!token) throw new Error(`${op} "${target.href}": authorization server did not include a token in the response`);
    if (body.refresh_token) this.refreshToken = body.refresh_token;
    return { token, expiresIn: Number(body.expires_in) || 60 };
  }

  /**
   * Sends a request to this registry with authorization. A 401 that brings a (new) challenge is
   * answered once more with fresh credentials when the body can be resent.
   */
  async request(method: string, target: string | URL, opts: SessionRequest = {}): Promise<IncomingMessage> {
    const url = typeof target === 'string' ? this.url(target) : target;
    const sameHost = url.host === this.base.host;
    const op = goOp(method);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string | number> = { 'User-Agent': this.client.userAgent, ...opts.headers };
      if (sameHost) {
        const a = await this.authorization(op, url, opts.signal);
        if (a) headers.Authorization = a;
      }
      const res = await this.client.pools.request({ method, url, headers, body: opts.body, signal: opts.signal, insecureTLS: this.insecureTLS, timeoutMs: opts.timeoutMs });
      if (res.statusCode !== 401 || !sameHost || this.auth?.registrytoken) return res;
      const replayable = opts.body === undefined || Buffer.isBuffer(opts.body);
      const fresh = pickChallenge(res.headers['www-authenticate']);
      if (fresh?.scheme === 'basic' && !this.auth?.username && !this.auth?.password) {
        discard(res);
        throw new Error(`${op} "${url.href}": no basic auth credentials`);
      }
      if (attempt > 0 || !replayable || !fresh) return res;
      // Retrying helps only when what we sent is stale (an expired token) or the registry asked for
      // a scheme we had not seen at the ping; wrong Basic credentials or a denied scope stay wrong.
      if (fresh.scheme === 'basic' && this.challenge?.scheme === 'basic') return res;
      if (fresh.scheme === 'bearer' && this.challenge?.scheme === 'bearer' && fresh.params.error === 'insufficient_scope') return res;
      discard(res);
      if (this.challenge?.scheme === 'bearer') this.client.dropToken(this.tokenKey());
      this.challenge = { scheme: fresh.scheme, params: { ...fresh.params } };
    }
  }
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** The distribution API of one repository (name without the registry host, e.g. library/busybox). */
export class RemoteRepository {
  constructor(readonly session: Session, readonly name: string) {}

  private path(suffix: string): string {
    return `/v2/${this.name}/${suffix}`;
  }

  async getManifest(reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const res = await this.session.request('GET', this.path(`manifests/${reference}`), { headers: { Accept: MANIFEST_ACCEPT }, signal });
    if (res.statusCode !== 200) throw await responseError(res);
    const bytes = await readAll(res, MANIFEST_LIMIT);
    let mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
    try {
      const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown; schemaVersion?: number; config?: unknown };
      if (typeof doc.mediaType === 'string' && doc.mediaType) mediaType = doc.mediaType;
      else if (doc.schemaVersion === 2 && Array.isArray(doc.manifests)) mediaType = 'application/vnd.oci.image.index.v1+json';
      else if (doc.schemaVersion === 2 && doc.config) mediaType = mediaType.includes('docker') ? mediaType : 'application/vnd.oci.image.manifest.v1+json';
    } catch {
      throw new Error(`invalid manifest from ${this.session.url(this.path(`manifests/${reference}`)).href}: not JSON`);
    }
    return { bytes, mediaType, digest: 'sha256:' + createHash('sha256').update(bytes).digest('hex') };
  }

  /** Every tag of the repository, following the Link pagination. */
  async tags(signal?: AbortSignal): Promise<string[]> {
    const out: string[] = [];
    let next: string | URL | undefined = this.path('tags/list');
    for (let page = 0; next && page < 1000; page++) {
      const res: IncomingMessage = await this.session.request('GET', next, { signal });
      if (res.statusCode !== 200) throw await responseError(res);
      const body = JSON.parse((await readAll(res, 16 << 20)).toString('utf8')) as { tags?: string[] | null };
      out.push(...(body.tags ?? []));
      const link = String(res.headers.link ?? '');
      const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
      next = m ? new URL(m[1], this.session.base) : undefined;
    }
    return out;
  }

  /** GET of a blob from offset on (a Range request), following redirects. `start` is where the body begins. */
  async openBlob(digest: string, offset: number, signal?: AbortSignal): Promise<{ res: IncomingMessage; start: number; total?: number }> {
    let target: URL = this.session.url(this.path(`blobs/${digest}`));
    for (let hop = 0; hop < 6; hop++) {
      const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
      const res = await this.session.request('GET', target, { headers, signal });
      const status = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
        discard(res);
        target = new URL(res.headers.location, target);
        continue;
      }
      if (status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)/.exec(String(res.headers['content-range'] ?? ''));
        if (m && Number(m[1]) === offset) return { res, start: offset, total: m[3] === '*' ? undefined : Number(m[3]) };
        // A range we did not ask for: start over from the beginning.
        discard(res);
        offset = 0;
        continue;
      }
      if (status === 200) return { res, start: 0, total: Number(res.headers['content-length']) || undefined };
      throw await responseError(res);
    }
    throw new Error(`too many redirects fetching blob ${digest}`);
  }

  /** Reads a small blob (a config) whole and checks its digest. */
  async fetchBlob(digest: string, limit: number, signal?: AbortSignal): Promise<Buffer> {
    const { res } = await this.openBlob(digest, 0, signal);
    const data = await readAll(res, limit);
    const got = 'sha256:' + createHash('sha256').update(data).digest('hex');
    if (got !== digest) throw new Error(`failed to verify blob ${digest}: content has digest ${got}`);
    return data;
  }

  async blobExists(digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.session.request('HEAD', this.path(`blobs/${digest}`), { signal });
    discard(res);
    const s = res.statusCode ?? 0;
    if (s === 200 || s === 307 || s === 302) return true;
    if (s === 404) return false;
    throw await responseError(res);
  }

  /** Tries a cross-repository mount: true when mounted, else the upload URL the registry opened instead. */
  async mountBlob(digest: string, from: string, signal?: AbortSignal): Promise<true | URL> {
    const q = new URLSearchParams({ mount: digest, from });
    const res = await this.session.request('POST', `${this.path('blobs/uploads/')}?${q}`, { signal, body: Buffer.alloc(0) });
    if (res.statusCode === 201) {
      discard(res);
      return true;
    }
    if (res.statusCode === 202) {
      discard(res);
      return this.uploadURL(res);
    }
    throw await responseError(res);
  }

  /**
   * The single-request upload of the distribution spec (POST ...?digest= with the body): half the
   * round trips of POST + PUT, which matters for images of many small layers. Registries without
   * it answer 202 and an upload session (returned, to finish with a PUT); one that refuses it
   * outright gives undefined, and the session stops trying.
   */
  async postBlob(digest: string, data: Buffer, signal?: AbortSignal): Promise<true | URL | undefined> {
    if (this.session.monolithicPostUnsupported) return undefined;
    const res = await this.session.request('POST', `${this.path('blobs/uploads/')}?${new URLSearchParams({ digest })}`, {
      signal, body: data, headers: { 'Content-Type': 'application/octet-stream' },
    });
    if (res.statusCode === 201) {
      discard(res);
      return true;
    }
    if (res.statusCode === 202) {
      discard(res);
      this.session.monolithicPostUnsupported = true;
      return this.uploadURL(res);
    }
    if (res.statusCode === 401 || res.statusCode === 403) throw await responseError(res);
    discard(res);
    this.session.monolithicPostUnsupported = true;
    return undefined;
  }

  async startUpload(signal?: AbortSignal): Promise<URL> {
    const res = await this.session.request('POST', this.path('blobs/uploads/'), { signal, body: Buffer.alloc(0) });
    if (res.statusCode !== 202) throw await responseError(res);
    discard(res);
    return this.uploadURL(res);
  }

  private uploadURL(res: IncomingMessage): URL {
    const loc = res.headers.location;
    if (!loc) throw new Error('registry opened an upload without a Location');
    return new URL(loc, this.session.base);
  }

  /** Finishes an upload with the whole blob in one PUT (Content-Length known up front). */
  async putBlob(location: URL, digest: string, body: Buffer | Readable, size: number, signal?: AbortSignal): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const res = await this.session.request('PUT', url, {
      signal,
      body,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': size },
      timeoutMs: 600_000,
    });
    if (res.statusCode !== 201 && res.statusCode !== 204) throw await responseError(res);
    discard(res);
  }

  async putManifest(reference: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string> {
    const res = await this.session.request('PUT', this.path(`manifests/${reference}`), { signal, body: bytes, headers: { 'Content-Type': mediaType } });
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 202) throw await responseError(res);
    discard(res);
    return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
  }
}

export { RegistryResponseError, RegistryConnectionError };
