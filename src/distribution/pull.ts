// Pulling an image: resolve the reference to a manifest (through an index to the wanted platform),
// fetch the config, download the layers the daemon lacks (a bounded number at a time, each into a
// content-store ingest named after its digest, so a broken download resumes with a Range request),
// unpack each one while it downloads (store, hash and extract in one pass; layer directories do not
// depend on each other), commit the snapshots bottom up, and record the image, its tag and its
// repository digest. A download that resumes is unpacked from the stored blob afterwards. Progress
// goes out as dockerd's JSON messages.
import { randomBytes } from 'node:crypto';
import { Transform, PassThrough, pipeline, type Readable } from 'node:stream';
import { BerthError, invalidParameter, isKind, notFound, systemError } from '../common/errors';
import type { Logger } from '../common/logger';
import type { ContentWriter, Provider, ReadRange } from '../content/store';
import { isDigest } from '../content/digest';
import { decompressionStages } from '../archive/compression';
import { teeLayer, type TeeResult } from '../archive/tee';
import { EXTRACT_KEY_PREFIX } from '../snapshots/overlay';
import { chainIDs, unpackLayers, writableDir, type LayerDescriptor } from '../images/unpack';
import { familiarName, familiarString, formatReference, type Reference } from '../images/reference';
import { goArch, shortID, type ImageService } from '../images/service';
import { MediaTypes, type Descriptor, type ImageConfig, type ImageLayer, type Index, type Manifest } from '../images/types';
import type { AuthConfig } from './authconfig';
import { RegistryClient, RemoteRepository, type FetchedManifest } from './client';
import { RegistryConnectionError, RegistryResponseError, abortError } from './http';
import type { Semaphore } from './limiter';
import type { BlobSource, BlobSourceStore } from './metadata';
import { ProgressThrottle, type ProgressWriter } from './progress';

/** What pull and push share: the daemon's image service and the registry machinery. */
export interface DistributionContext {
  images: ImageService;
  client: RegistryClient;
  sources: BlobSourceStore;
  downloads: Semaphore;
  uploads: Semaphore;
  log: Logger;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface PullOptions {
  /** With a tag or a digest; with neither, every tag of the repository is pulled. */
  ref: Reference;
  /** Set when the client asked for a platform (then a mismatching single-platform image is refused). */
  platform?: Platform;
  auth?: AuthConfig;
  signal: AbortSignal;
  out: ProgressWriter;
}

const CONFIG_LIMIT = 16 << 20;
const MAX_DOWNLOAD_ATTEMPTS = 5;

const INDEX_TYPES: string[] = [MediaTypes.ociIndex, MediaTypes.dockerManifestList];
const MANIFEST_TYPES: string[] = [MediaTypes.ociManifest, MediaTypes.dockerManifest];

export function defaultPlatform(): Platform {
  const architecture = goArch();
  return { os: 'linux', architecture, ...(architecture === 'arm64' ? { variant: 'v8' } : {}) };
}

/** Parses "linux/amd64", "linux/arm64/v8" or "amd64" as dockerd's platform parameter. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().toLowerCase().split('/');
  if (parts.some((p) => p === '') || parts.length > 3) throw invalidParameter(`"${s}": unknown operating system or architecture: invalid argument`);
  const knownOS = ['linux', 'windows', 'darwin', 'freebsd'];
  let os = 'linux';
  let rest = parts;
  if (knownOS.includes(parts[0])) {
    os = parts[0];
    rest = parts.slice(1);
  } else if (parts.length > 2) {
    throw invalidParameter(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  if (rest.length === 0) return { os, architecture: goArch() };
  const arch = normaliseArch(rest[0]);
  const variant = rest[1];
  return { os, architecture: arch, ...(variant ? { variant } : {}) };
}

function normaliseArch(a: string): string {
  const aliases: Record<string, string> = { x86_64: 'amd64', x86: '386', i386: '386', aarch64: 'arm64', armhf: 'arm', armel: 'arm' };
  return aliases[a] ?? a;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The index entry for a platform: same os and architecture; the variant when one is wanted. */
export function choosePlatform(entries: Descriptor[], want: Platform): Descriptor | undefined {
  const defaultVariant: Record<string, string> = { arm64: 'v8', arm: 'v7' };
  const wantVariant = want.variant ?? defaultVariant[want.architecture];
  const candidates = entries.filter((d) => d.platform && d.platform.os === want.os && normaliseArch(d.platform.architecture) === want.architecture);
  const variantOf = (d: Descriptor): string | undefined => d.platform?.variant ?? defaultVariant[want.architecture];
  if (want.variant) return candidates.find((d) => variantOf(d) === want.variant);
  return candidates.find((d) => variantOf(d) === wantVariant) ?? candidates.find((d) => !d.platform?.variant) ?? candidates[0];
}

/** Registry errors as dockerd reports pull failures (translatePullError): NotFound for a missing repo or tag. */
export function translatePullError(err: unknown, ref: Reference): unknown {
  if (err instanceof RegistryResponseError) {
    switch (err.code) {
      case 'DENIED':
        return notFound(`pull access denied for ${familiarName(ref)}, repository does not exist or may require 'docker login': ${err.message}`);
      case 'MANIFEST_UNKNOWN':
        return notFound(`manifest for ${familiarString(ref)} not found: ${err.message}`);
      case 'NAME_UNKNOWN':
        return notFound(`repository ${familiarName(ref)} not found: ${err.message}`);
      default:
        return systemError(err.message, err);
    }
  }
  return err;
}

interface ResolvedImage {
  top: FetchedManifest;
  manifest: Manifest;
  /** The image manifest's digest (differs from top's when top is an index). */
  manifestDigest: string;
}

async function resolveManifest(repo: RemoteRepository, ref: Reference, platform: Platform | undefined, signal: AbortSignal): Promise<ResolvedImage> {
  const reference = ref.digest ?? ref.tag!;
  const top = await repo.getManifest(reference, signal);
  if (ref.digest && top.digest !== ref.digest) throw new Error(`manifest verification failed for digest ${ref.digest}`);
  let current = top;
  if (INDEX_TYPES.includes(top.mediaType)) {
    const index = JSON.parse(top.bytes.toString('utf8')) as Index;
    const want = platform ?? defaultPlatform();
    const entry = choosePlatform(Array.isArray(index.manifests) ? index.manifests : [], want);
    if (!entry || !isDigest(entry.digest)) throw notFound(`no matching manifest for ${formatPlatform(want)} in the manifest list entries`);
    current = await repo.getManifest(entry.digest, signal);
    if (current.digest !== entry.digest) throw new Error(`manifest verification failed for digest ${entry.digest}`);
  }
  if (!MANIFEST_TYPES.includes(current.mediaType)) {
    if (/prettyjws|manifest\.v1\+json/.test(current.mediaType)) {
      throw invalidParameter('Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of ' + `${familiarString(ref)} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2.`);
    }
    throw invalidParameter(`unsupported manifest media type ${JSON.stringify(current.mediaType)} for ${familiarString(ref)}`);
  }
  const manifest = JSON.parse(current.bytes.toString('utf8')) as Manifest;
  if (!manifest.config || !isDigest(manifest.config.digest) || !Array.isArray(manifest.layers)) throw new Error(`invalid manifest ${current.digest}: missing config or layers`);
  for (const l of manifest.layers) {
    if (!isDigest(l.digest) || !Number.isSafeInteger(l.size) || l.size < 0) throw new Error(`invalid manifest ${current.digest}: bad layer descriptor`);
  }
  return { top, manifest, manifestDigest: current.digest };
}

/** Pulls one reference (or every tag); throws BerthErrors before the first progress message. */
export async function pullImage(dc: DistributionContext, opts: PullOptions): Promise<void> {
  const { ref, out } = opts;
  const endpoints = dc.client.endpoints(ref.domain);
  const scopes = [`repository:${ref.path}:pull`];
  for (const [i, ep] of endpoints.entries()) {
    const last = i === endpoints.length - 1;
    try {
      const session = await dc.client.session(ep, opts.auth, scopes, opts.signal);
      const repo = new RemoteRepository(session, ref.path);
      if (!ref.tag && !ref.digest) {
        let tags: string[];
        try {
          tags = await repo.tags(opts.signal);
        } catch (err) {
          throw translatePullError(err, ref);
        }
        let downloaded = false;
        for (const tag of tags) {
          if (await pullOne(dc, repo, { ...opts, ref: { ...ref, tag } })) downloaded = true;
        }
        statusLine(out, familiarString(ref), downloaded);
        return;
      }
      const downloaded = await pullOne(dc, repo, opts);
      statusLine(out, familiarString(ref), downloaded);
      return;
    } catch (err) {
      // A mirror that fails before anything was shown is skipped, as dockerd falls back to the next endpoint.
      if (last || !ep.mirror || out.started || opts.signal.aborted) throw err;
      dc.log.info('registry mirror failed; trying the next endpoint', { mirror: ep.url.href, err: (err as Error).message });
    }
  }
}

function statusLine(out: ProgressWriter, name: string, downloaded: boolean): void {
  out.message(undefined, downloaded ? `Status: Downloaded newer image for ${name}` : `Status: Image is up to date for ${name}`);
}

interface LayerTask {
  desc: Descriptor;
  diffID: string;
  chainID: string;
  /** The progress id: the blob digest's first 12 hex digits. */
  id: string;
  /** Set when the layer is already unpacked here ("Already exists"). */
  existing?: ImageLayer;
  /** The chain ID of the layer below (undefined for the bottom layer). */
  parentChainID?: string;
  download?: Promise<void>;
  uncompressedSize?: number;
  /** Unpacked while downloading and verified, not committed yet. */
  extracted?: Extraction;
}

/** Pulls a tag or digest from repo; true when the reference now points at a different image. */
async function pullOne(dc: DistributionContext, repo: RemoteRepository, opts: PullOptions): Promise<boolean> {
  const { ref, out } = opts;
  const { images } = dc;
  let resolved: ResolvedImage;
  try {
    resolved = await resolveManifest(repo, ref, opts.platform, opts.signal);
  } catch (err) {
    throw translatePullError(err, ref);
  }
  const { top, manifest } = resolved;
  out.message(ref.digest ?? ref.tag, `Pulling from ${ref.path}`);

  const configDigest = manifest.config.digest;
  const configBytes = (await images.content.info(configDigest))
    ? await images.content.readBlob(configDigest)
    : await repo.fetchBlob(configDigest, CONFIG_LIMIT, opts.signal);
  let config: ImageConfig;
  try {
    config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  } catch {
    throw new Error(`invalid image config ${configDigest}: not JSON`);
  }
  const diffIDs = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIDs) || diffIDs.length !== manifest.layers.length || !diffIDs.every(isDigest)) {
    throw new Error(`invalid image config ${configDigest}: its ${Array.isArray(diffIDs) ? diffIDs.length : 0} diff_ids do not match the manifest's ${manifest.layers.length} layers`);
  }
  if (opts.platform && (config.os !== opts.platform.os || normaliseArch(config.architecture) !== opts.platform.architecture)) {
    throw notFound(`image with reference ${familiarString(ref)} was found but does not match the specified platform: wanted ${formatPlatform(opts.platform)}, actual: ${formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant })}`);
  }

  const chains = chainIDs(diffIDs);
  const tasks: LayerTask[] = manifest.layers.map((desc, i) => ({ desc, diffID: diffIDs[i], chainID: chains[i], parentChainID: i === 0 ? undefined : chains[i - 1], id: shortID(desc.digest) }));
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(opts.signal.reason);
  opts.signal.addEventListener('abort', onAbort, { once: true });
  const signal = controller.signal;
  const started: Promise<void>[] = [];
  try {
    const known = await knownLayers(dc, tasks);
    for (const t of tasks) {
      t.existing = known.get(t.chainID);
      out.update(t.id, t.existing ? 'Already exists' : 'Pulling fs layer');
    }
    const byDigest = new Map<string, Promise<void>>();
    for (const t of tasks) {
      if (t.existing) continue;
      let job = byDigest.get(t.desc.digest);
      if (!job) {
        job = (async () => {
          if (await images.content.info(t.desc.digest)) {
            out.update(t.id, 'Download complete');
            return;
          }
          if (!dc.downloads.tryAcquire()) {
            out.update(t.id, 'Waiting');
            await dc.downloads.acquire(signal);
          }
          try {
            await downloadLayer(dc, repo, t, out, signal);
          } finally {
            dc.downloads.release();
          }
        })();
        // Observed below, in order; this keeps an early failure from being "unhandled" meanwhile.
        job.catch(() => {});
        byDigest.set(t.desc.digest, job);
        started.push(job);
      }
      t.download = job;
    }

    const layers: ImageLayer[] = [];
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i];
      if (t.existing) {
        layers.push(t.existing);
        continue;
      }
      await t.download;
      if (t.extracted) {
        const ex = t.extracted;
        t.extracted = undefined;
        commitExtracted(images, t, ex);
      }
      if (!committed(images, t.chainID)) {
        const descs: LayerDescriptor[] = tasks.slice(0, i + 1).map((x) => ({ digest: x.existing?.blobDigest ?? x.desc.digest, diffID: x.diffID, mediaType: x.desc.mediaType, size: x.desc.size }));
        await unpackLayers(descs, extractingProvider(images, t, out), images.snapshotter);
      }
      out.update(t.id, 'Pull complete');
      layers.push({
        diffID: t.diffID,
        chainID: t.chainID,
        blobDigest: t.desc.digest,
        mediaType: t.desc.mediaType,
        blobSize: t.desc.size,
        size: t.uncompressedSize ?? snapshotSize(images, t.chainID),
      });
    }

    const before = ref.tag ? images.store.tagTarget(formatReference(ref)) : images.store.repoDigestTarget(`${ref.domain}/${ref.path}@${top.digest}`);
    await images.content.writeBlob(top.bytes);
    const imageId = await images.addImage(configBytes, layers, { tags: ref.tag ? [{ domain: ref.domain, path: ref.path, tag: ref.tag }] : [] });
    images.store.setRepoDigest(`${ref.domain}/${ref.path}@${top.digest}`, imageId, top.digest);
    const learned: BlobSource[] = [configDigest, ...manifest.layers.map((l) => l.digest)].map((digest) => ({ digest, registry: ref.domain, repository: ref.path }));
    try {
      dc.sources.addAll(learned);
    } catch (err) {
      dc.log.warn('could not record blob sources', { err: (err as Error).message });
    }
    images.events('pull', imageId, { name: familiarString(ref) });
    out.message(undefined, `Digest: ${top.digest}`);
    return before !== imageId;
  } catch (err) {
    controller.abort(err);
    await Promise.allSettled(started);
    // Layers unpacked but not committed (those above the failure) go.
    for (const t of tasks) {
      if (t.extracted) removeSnapshot(images, t.extracted.key);
      t.extracted = undefined;
    }
    throw err;
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
  }
}

function committed(images: ImageService, chainID: string): boolean {
  try {
    return images.snapshotter.stat(chainID).kind === 'committed';
  } catch (err) {
    if (isKind(err, 'NotFound')) return false;
    throw err;
  }
}

function snapshotSize(images: ImageService, chainID: string): number {
  try {
    return images.snapshotter.usage(chainID).size;
  } catch {
    return 0;
  }
}

/**
 * Layers already unpacked here, by chain ID, with a stored blob to go with them (so a later push
 * has something to send). The blob need not be the one this manifest names: the same content
 * may have come compressed differently.
 */
async function knownLayers(dc: DistributionContext, tasks: LayerTask[]): Promise<Map<string, ImageLayer>> {
  const { images } = dc;
  const out = new Map<string, ImageLayer>();
  const present = tasks.filter((t) => committed(images, t.chainID));
  if (present.length === 0) return out;
  const records = new Map<string, ImageLayer[]>();
  for (const rec of images.store.list()) for (const l of rec.layers) records.set(l.chainID, [...(records.get(l.chainID) ?? []), l]);
  for (const t of present) {
    const candidates = records.get(t.chainID) ?? [];
    const ordered = [...candidates.filter((l) => l.blobDigest === t.desc.digest), ...candidates.filter((l) => l.blobDigest !== t.desc.digest)];
    for (const l of ordered) {
      if (await images.content.info(l.blobDigest)) {
        out.set(t.chainID, l);
        break;
      }
    }
    if (!out.has(t.chainID) && (await images.content.info(t.desc.digest))) {
      out.set(t.chainID, { diffID: t.diffID, chainID: t.chainID, blobDigest: t.desc.digest, mediaType: t.desc.mediaType, blobSize: t.desc.size, size: snapshotSize(images, t.chainID) });
    }
  }
  return out;
}

function retryable(err: unknown): boolean {
  if (err instanceof RegistryConnectionError) return !err.tlsProblem;
  if (err instanceof RegistryResponseError) return err.status >= 500 || err.status === 429 || err.status === 408;
  if (err instanceof BerthError) return false;
  const code = (err as NodeJS.ErrnoException)?.code;
  return ['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNREFUSED', 'UND_ERR_SOCKET', 'EUNEXPECTEDEOF'].includes(code ?? '') || (err as Error)?.message === 'aborted';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Downloads a layer blob with retries; each attempt resumes from what earlier ones stored. */
async function downloadLayer(dc: DistributionContext, repo: RemoteRepository, t: LayerTask, out: ProgressWriter, signal: AbortSignal): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await downloadOnce(dc, repo, t, out, signal);
      return;
    } catch (err) {
      if (signal.aborted || attempt >= MAX_DOWNLOAD_ATTEMPTS || !retryable(err)) throw err;
      dc.log.info('layer download failed; retrying', { digest: t.desc.digest, attempt, err: (err as Error).message });
      // dockerd waits 5 s more each attempt; shorter here, since each retry resumes rather than restarts.
      for (let s = attempt; s > 0; s--) {
        out.update(t.id, `Retrying in ${s} second${s === 1 ? '' : 's'}`);
        await sleep(1000, signal);
      }
    }
  }
}

async function downloadOnce(dc: DistributionContext, repo: RemoteRepository, t: LayerTask, out: ProgressWriter, signal: AbortSignal): Promise<void> {
  const { content } = dc.images;
  const { digest, size } = t.desc;
  // One ingest per blob digest: an interrupted download (this pull's or an earlier one's) resumes.
  // Layers are big: their digest is computed on the digest worker, off the main thread, and they
  // are written back to disk as they come (commit then has little left to fsync).
  const w = await content.writer(`pull-${digest}`, { digest, size }, { hashInBackground: true, syncAhead: true });
  let finished = false;
  try {
    if (await content.info(digest)) {
      // Another pull stored it while this one waited for the ingest.
      finished = true;
      await w.abort();
      out.update(t.id, 'Download complete');
      return;
    }
    if (w.offset > size) await w.truncate();
    let current = w.offset;
    if (current < size) {
      const { res, start } = await repo.openBlob(digest, current, signal);
      if (start !== current) {
        await w.truncate();
        current = 0;
      }
      const throttle = new ProgressThrottle(size, (c) => out.progress(t.id, 'Downloading', c, size));
      const extraction = current === 0 ? startExtraction(dc.images, t) : undefined;
      if (extraction) {
        // One pass: store, decompress, hash and extract each chunk as it arrives.
        await downloadAndExtract(dc.images, res, w, t, extraction, out, throttle, (n) => { current = n; });
        finished = true;
        return;
      }
      for await (const chunk of res as AsyncIterable<Buffer>) {
        if (current + chunk.length > size) {
          res.destroy();
          await w.truncate();
          throw invalidParameter(`filesystem layer verification failed for digest ${digest}: more data than the ${size} bytes the manifest declares`);
        }
        await w.write(chunk);
        current += chunk.length;
        throttle.tick(current);
      }
      if (current < size) throw Object.assign(new Error(`unexpected EOF downloading ${digest} (${current} of ${size} bytes)`), { code: 'EUNEXPECTEDEOF' });
      throttle.finish(current);
    }
    out.update(t.id, 'Verifying Checksum');
    try {
      await w.commit();
    } catch (err) {
      // commit removed the bad data already; the next attempt starts from zero.
      finished = true;
      throw invalidParameter(`filesystem layer verification failed for digest ${digest}: ${(err as Error).message}`);
    }
    finished = true;
    out.update(t.id, 'Download complete');
  } finally {
    // Keep a partial download for the next attempt (or the next pull).
    if (!finished) await w.close().catch(() => {});
  }
}

interface Extraction {
  /** The temporary "extract-" snapshot the layer is written into. */
  key: string;
  dir: string;
}

/**
 * Prepares a snapshot to extract t into while it downloads, unless its chain is committed
 * already. The snapshot has no parent yet: a layer's tree is written into its own directory
 * without looking at the layers below, so every layer is unpacked as it arrives, in any order,
 * and given its parent when it is committed (commitExtracted).
 */
function startExtraction(images: ImageService, t: LayerTask): Extraction | undefined {
  if (committed(images, t.chainID)) return undefined;
  // The chain ID is the snapshot's final name; until the content is verified and the layers
  // below are committed it lives under a temporary key, which the snapshotter removes after a
  // crash.
  const key = `${EXTRACT_KEY_PREFIX}${randomBytes(8).toString('hex')} ${t.chainID}`;
  const dir = writableDir(images.snapshotter.prepare(key));
  return { key, dir };
}

function removeSnapshot(images: ImageService, key: string): void {
  try {
    images.snapshotter.remove(key);
  } catch (err) {
    if (!isKind(err, 'NotFound')) throw err;
  }
}

/**
 * Downloads the whole blob into w (which is empty) while extracting it into the prepared
 * snapshot, then verifies both digests and commits the blob; the snapshot is left for pullOne to
 * commit in chain order (t.extracted). On failure the snapshot goes; the partial download stays in w for a retry to resume (which then unpacks from the
 * stored blob), except when the data itself was bad.
 */
async function downloadAndExtract(images: ImageService, res: Readable, w: ContentWriter, t: LayerTask, ex: Extraction, out: ProgressWriter, throttle: ProgressThrottle, setCurrent: (n: number) => void): Promise<void> {
  const { digest, size } = t.desc;
  let current = 0;
  let inputEnded = false;
  let inputError: Error | undefined;
  let oversize = false;
  res.once('end', () => { inputEnded = true; });
  res.once('error', (err) => { inputError ??= err; });
  let result: TeeResult;
  try {
    try {
      result = await teeLayer(res, async (chunk) => {
        if (current + chunk.length > size) {
          oversize = true;
          throw invalidParameter(`filesystem layer verification failed for digest ${digest}: more data than the ${size} bytes the manifest declares`);
        }
        await w.write(chunk);
        current += chunk.length;
        setCurrent(current);
        throttle.tick(current);
      });
    } catch (err) {
      const cutOff = !oversize && current < size && (inputError !== undefined || inputEnded);
      res.destroy();
      if (cutOff) {
        // The connection failed or ended early: a cut-off stream also fails to decompress, but
        // that is no fault of the data, so the download is retried (resuming).
        throw inputError ?? Object.assign(new Error(`unexpected EOF downloading ${digest} (${current} of ${size} bytes)`), { code: 'EUNEXPECTEDEOF' });
      }
      throw err;
    }
    if (current < size) throw Object.assign(new Error(`unexpected EOF downloading ${digest} (${current} of ${size} bytes)`), { code: 'EUNEXPECTEDEOF' });
    throttle.finish(current);
    out.update(t.id, 'Verifying Checksum');
    try {
      await w.commit();
    } catch (err) {
      throw invalidParameter(`filesystem layer verification failed for digest ${digest}: ${(err as Error).message}`);
    }
  } catch (err) {
    removeSnapshot(images, ex.key);
    // Bad data is dropped; what a broken connection delivered stays for the retry to resume
    // from (downloadOnce closes the writer).
    if (err instanceof BerthError) await w.abort().catch(() => {});
    throw err;
  }
  out.update(t.id, 'Download complete');
  // A plain tar's diffID is its blob digest, which the commit has just verified.
  const diffID = result.diffID ?? digest;
  try {
    if (diffID !== t.diffID) throw invalidParameter(`layer ${digest}: unpacked content has diffID ${diffID}, but the image config says ${t.diffID}`);
    out.progress(t.id, 'Extracting', size, size);
  } catch (err) {
    removeSnapshot(images, ex.key);
    throw err;
  }
  t.uncompressedSize = result.size;
  // Verified; committed in chain order by pullOne, once the layers below are.
  t.extracted = ex;
}

/**
 * Commits a layer unpacked while it downloaded, onto its parent chain (committed by now: layers
 * are committed bottom up). If another pull committed the same chain meanwhile, it has the same
 * content, so ours is surplus.
 */
function commitExtracted(images: ImageService, t: LayerTask, ex: Extraction): void {
  try {
    images.snapshotter.commit(t.chainID, ex.key, t.parentChainID === undefined ? {} : { parent: t.parentChainID });
  } catch (err) {
    removeSnapshot(images, ex.key);
    if (!(isKind(err, 'Conflict') && committed(images, t.chainID))) throw err;
  }
}

/**
 * The content store as unpacking reads it, with two additions for the layer being extracted:
 * "Extracting" progress counted on the stored (compressed) bytes, and the uncompressed size,
 * counted after decompressing here (the unpacker then sees a plain tar and verifies its diffID).
 */
function extractingProvider(images: ImageService, t: LayerTask, out: ProgressWriter): Provider {
  const content = images.content;
  return {
    info: (d) => content.info(d),
    blobPath: (d) => content.blobPath(d),
    readBlob: (d) => content.readBlob(d),
    createReadStream: async (d: string, range?: ReadRange): Promise<Readable> => {
      const raw = await content.createReadStream(d, range);
      if (d !== t.desc.digest || range) return raw;
      const total = t.desc.size;
      let read = 0;
      const throttle = new ProgressThrottle(total, (c) => out.progress(t.id, 'Extracting', c, total));
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          read += chunk.length;
          throttle.tick(read);
          cb(null, chunk);
        },
        flush(cb) {
          throttle.finish(read);
          cb();
        },
      });
      pipeline(raw, counter, (err) => {
        if (err) counter.destroy(err);
      });
      const { stages } = await decompressionStages(counter);
      let plain = 0;
      const sizer = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          plain += chunk.length;
          cb(null, chunk);
        },
        flush(cb) {
          t.uncompressedSize = plain;
          cb();
        },
      });
      const result = new PassThrough({ highWaterMark: 1 << 20 });
      pipeline([...stages, sizer, result] as unknown as [Readable, PassThrough], (err) => {
        if (err) result.destroy(err);
      });
      return result;
    },
  };
}
