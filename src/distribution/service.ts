// The distribution service: the Engine API's pull, push and login, on top of the registry client.
// It reads the request (query, X-Registry-Auth), runs the operation with a progress stream, and
// follows dockerd's error convention: an error before the first progress message is a plain
// HTTP error; after it, an {"errorDetail": ...} line ends the stream. A client that goes away
// cancels the operation (partial downloads are kept for the next pull).
import { STATUS_CODES } from 'node:http';
import { invalidParameter, messageOf, unauthorized } from '../common/errors';
import type { Logger } from '../common/logger';
import type { MetadataDB } from '../metadata/db';
import type { RequestContext } from '../api/router';
import { parseReference, validateTag, type Reference } from '../images/reference';
import type { ImageService } from '../images/service';
import { decodeAuthHeader, normalizeAuthConfig, serverAddressDomain, type AuthConfig } from './authconfig';
import { RegistryClient } from './client';
import { readAll } from './http';
import { Semaphore } from './limiter';
import { BlobSourceStore } from './metadata';
import { ProgressWriter, type ProgressSink } from './progress';
import { parsePlatform, pullImage, type DistributionContext } from './pull';
import { pushImage } from './push';

export interface DistributionOptions {
  images: ImageService;
  meta: MetadataDB;
  log: Logger;
  insecureRegistries?: string[];
  registryMirrors?: string[];
  maxConcurrentDownloads?: number;
  maxConcurrentUploads?: number;
  userAgent?: string;
}

export interface LoginResult {
  Status: string;
  IdentityToken: string;
}

/** What the /images routes need from distribution (matches ImageBackend's pull/push hooks). */
export interface DistributionBackend {
  pull(ctx: RequestContext, progress: ProgressSink): Promise<void>;
  push(ctx: RequestContext, name: string, progress: ProgressSink): Promise<void>;
}

/** What POST /auth needs. */
export interface LoginBackend {
  login(auth: AuthConfig): Promise<LoginResult>;
}

export class DistributionService implements DistributionBackend, LoginBackend {
  readonly client: RegistryClient;
  private readonly dc: DistributionContext;

  constructor(opts: DistributionOptions) {
    this.client = new RegistryClient({
      insecureRegistries: opts.insecureRegistries,
      registryMirrors: opts.registryMirrors,
      log: opts.log,
      userAgent: opts.userAgent,
    });
    this.dc = {
      images: opts.images,
      client: this.client,
      sources: new BlobSourceStore(opts.meta),
      downloads: new Semaphore(opts.maxConcurrentDownloads || 3),
      uploads: new Semaphore(opts.maxConcurrentUploads || 5),
      log: opts.log,
    };
  }

  /** POST /images/create?fromImage=&tag=&platform= */
  async pull(ctx: RequestContext, progress: ProgressSink): Promise<void> {
    const q = ctx.query;
    const ref = pullReference(q.get('fromImage') ?? '', q.get('tag') ?? '');
    const platformText = q.get('platform');
    const platform = platformText ? parsePlatform(platformText) : undefined;
    const auth = decodeAuthHeader(ctx.req.headers['x-registry-auth']);
    await this.stream(ctx, progress, (out, signal) => pullImage(this.dc, { ref, platform, auth, signal, out }));
  }

  /** POST /images/{name}/push?tag= */
  async push(ctx: RequestContext, name: string, progress: ProgressSink): Promise<void> {
    const ref = parseReference(name);
    const tag = ctx.query.get('tag');
    if (tag) {
      if (ref.tag || ref.digest) throw invalidParameter('invalid reference format');
      ref.tag = validateTag(tag);
    }
    const auth = decodeAuthHeader(ctx.req.headers['x-registry-auth']);
    await this.stream(ctx, progress, (out, signal) => pushImage(this.dc, { ref, auth, signal, out }));
  }

  private async stream(ctx: RequestContext, progress: ProgressSink, op: (out: ProgressWriter, signal: AbortSignal) => Promise<void>): Promise<void> {
    const out = new ProgressWriter(progress);
    const controller = new AbortController();
    const onClose = (): void => {
      if (!ctx.res.writableFinished) controller.abort(Object.assign(new Error('context canceled'), { name: 'AbortError' }));
    };
    ctx.res.on('close', onClose);
    try {
      await op(out, controller.signal);
    } catch (err) {
      if (!out.started) throw err;
      if (!controller.signal.aborted) {
        this.dc.log.info('pull/push failed', { err: messageOf(err) });
        out.error(messageOf(err));
      }
    } finally {
      ctx.res.off('close', onClose);
    }
    if (!ctx.res.writableEnded) ctx.res.end();
  }

  /**
   * POST /auth: checks credentials against the registry. With Basic auth the /v2/ endpoint itself
   * must accept them; with bearer tokens the token service must issue one for them.
   */
  async login(auth: AuthConfig): Promise<LoginResult> {
    const domain = serverAddressDomain(auth.serveraddress);
    const [endpoint] = this.client.endpoints(domain, { push: true });
    const session = await this.client.session(endpoint, auth, [], undefined, { offline: true });
    const url = session.url('/v2/');
    const res = await session.request('GET', url);
    res.resume();
    if (res.statusCode !== 200) {
      const status = res.statusCode ?? 0;
      throw unauthorized(`login attempt to ${url.href} failed with status: ${status} ${STATUS_CODES[status] ?? ''}`.trim());
    }
    return { Status: 'Login Succeeded', IdentityToken: session.identityToken ?? '' };
  }

  close(): void {
    this.client.close();
  }
}

/** Decodes the body of POST /auth. */
export async function readLoginBody(ctx: RequestContext): Promise<AuthConfig> {
  const body = await readAll(ctx.req, 1 << 20);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8') || '{}');
  } catch (err) {
    throw invalidParameter(`invalid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidParameter('invalid JSON: expected an object');
  const cfg = normalizeAuthConfig(parsed as Record<string, unknown>) ?? {};
  const server = (parsed as Record<string, unknown>).serveraddress;
  if (typeof server === 'string') cfg.serveraddress = server;
  return cfg;
}

/** fromImage and tag as dockerd combines them; the tag may be a digest. No tag at all means every tag. */
export function pullReference(fromImage: string, tag: string): Reference {
  if (fromImage === '') throw invalidParameter('fromImage or fromSrc is required');
  const ref = parseReference(fromImage.replace(/:$/, ''));
  if (tag !== '') {
    if (/^[a-z0-9]+:/.test(tag) && !/^[\w][\w.-]*$/.test(tag)) {
      if (!/^sha256:[a-f0-9]{64}$/.test(tag)) throw invalidParameter(`invalid reference format: unsupported digest ${tag}`);
      return { domain: ref.domain, path: ref.path, digest: tag };
    }
    validateTag(tag);
    if (ref.digest) throw invalidParameter('invalid reference format');
    ref.tag = tag;
  }
  return ref;
}

