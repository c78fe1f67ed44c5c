// Pushing an image: for each layer, skip it if the registry has it, else mount it from another
// repository of the same registry that we know holds it, else upload it; then the config and the
// manifest. Layers are pushed as they are stored, compressed or not:
//   - an image whose layers all carry Docker media types (pulled from a Docker v2 schema 2
//     manifest) is pushed as a Docker v2 schema 2 manifest;
//   - anything else (imported or committed layers, which berth keeps as uncompressed tars, and
//     OCI-pulled ones) as an OCI image manifest, whose media types include uncompressed layers.
// Not recompressing keeps push cheap and its manifest deterministic (a second push of the same
// image gives the same digest), and both registries and clients (docker, containerd, skopeo)
// accept uncompressed OCI layers.
import { Transform } from 'node:stream';
import { invalidParameter, notFound } from '../common/errors';
import { familiarName, familiarString, formatReference, parseReference, type Reference } from '../images/reference';
import { shortID } from '../images/service';
import type { ImageRecord } from '../images/store';
import { MediaTypes, type Descriptor, type Manifest } from '../images/types';
import type { AuthConfig } from './authconfig';
import { RemoteRepository } from './client';
import type { BlobSource } from './metadata';
import type { DistributionContext } from './pull';
import { ProgressThrottle, type ProgressWriter } from './progress';

export interface PushOptions {
  /** The repository, with the tag to push; without a tag every local tag of the repository is pushed. */
  ref: Reference;
  auth?: AuthConfig;
  signal: AbortSignal;
  out: ProgressWriter;
}

/** Blobs up to this size are read into memory and sent in one PUT; bigger ones are streamed. */
const SMALL_BLOB = 1 << 20;
/** At most this many other repositories are asked for a mount of a blob. */
const MOUNT_CANDIDATES = 3;

const DOCKER_TO_OCI: Record<string, string> = {
  [MediaTypes.dockerLayer]: MediaTypes.ociLayer,
  [MediaTypes.dockerLayerGzip]: MediaTypes.ociLayerGzip,
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
};

/** The manifest berth pushes for an image (see the file comment for the choice of format). */
export function buildManifest(record: ImageRecord, configSize: number): { bytes: Buffer; mediaType: string } {
  const docker = record.layers.length > 0 && record.layers.every((l) => l.mediaType.startsWith('application/vnd.docker.'));
  const layers: Descriptor[] = record.layers.map((l) => ({
    mediaType: docker ? l.mediaType : (DOCKER_TO_OCI[l.mediaType] ?? l.mediaType),
    size: l.blobSize,
    digest: l.blobDigest,
  }));
  const mediaType = docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: docker ? MediaTypes.dockerConfig : MediaTypes.ociConfig, size: configSize, digest: record.id },
    layers,
  };
  // dockerd indents its manifests with three spaces; doing the same keeps them recognisable.
  return { bytes: Buffer.from(JSON.stringify(manifest, null, 3)), mediaType };
}

/** The local tags of a repository to push, as [tag, image ID] pairs. */
function tagsToPush(dc: DistributionContext, ref: Reference): [string, string][] {
  const { store } = dc.images;
  const prefix = `${ref.domain}/${ref.path}:`;
  const all: [string, string][] = [];
  for (const rec of store.list()) {
    for (const t of store.tagsOf(rec.id)) {
      if (t.startsWith(prefix)) all.push([parseReference(t).tag!, rec.id]);
    }
  }
  // dockerd's two wordings: no tag of the repository at all, or not the one asked for.
  if (all.length === 0) throw notFound(`An image does not exist locally with the tag: ${familiarName(ref)}`);
  if (ref.tag) {
    const id = store.tagTarget(formatReference(ref));
    if (!id) throw notFound(`tag does not exist: ${familiarString(ref)}`);
    return [[ref.tag, id]];
  }
  return all.sort((a, b) => a[0].localeCompare(b[0]));
}

export async function pushImage(dc: DistributionContext, opts: PushOptions): Promise<void> {
  const { ref, out } = opts;
  if (ref.digest) throw invalidParameter('cannot push a digest reference');
  out.message(undefined, `The push refers to repository [${ref.domain}/${ref.path}]`);
  const tags = tagsToPush(dc, ref);

  // Repositories of this registry that hold some of our blobs: mount candidates, whose pull scope
  // goes into the same token as our push scope.
  const mountSources = new Map<string, string[]>();
  const fromRepos = new Set<string>();
  for (const [, id] of tags) {
    for (const l of dc.images.store.get(id)?.layers ?? []) {
      if (mountSources.has(l.blobDigest)) continue;
      const repos = dc.sources.repositories(l.blobDigest, ref.domain, MOUNT_CANDIDATES + 1).filter((r) => r !== ref.path).slice(0, MOUNT_CANDIDATES);
      mountSources.set(l.blobDigest, repos);
      for (const r of repos) fromRepos.add(r);
    }
  }
  const scopes = [`repository:${ref.path}:pull,push`, ...[...fromRepos].slice(0, 8).map((r) => `repository:${r}:pull`)];
  const [endpoint] = dc.client.endpoints(ref.domain, { push: true });
  const session = await dc.client.session(endpoint, opts.auth, scopes, opts.signal);
  const repo = new RemoteRepository(session, ref.path);

  const controller = new AbortController();
  const onAbort = (): void => controller.abort(opts.signal.reason);
  opts.signal.addEventListener('abort', onAbort, { once: true });
  const signal = controller.signal;
  const learned: BlobSource[] = [];
  const layerJobs = new Map<string, Promise<void>>();
  try {
    for (const [tag, id] of tags) {
      const record = dc.images.store.get(id);
      if (!record) throw notFound(`An image does not exist locally with the tag: ${familiarName(ref)}`);
      const jobs: Promise<void>[] = [];
      for (const l of record.layers) out.update(shortID(l.diffID), 'Preparing');
      for (const l of record.layers) {
        let job = layerJobs.get(l.blobDigest);
        if (!job) {
          job = pushLayer(dc, repo, ref, l, mountSources.get(l.blobDigest) ?? [], out, signal, learned);
          job.catch(() => {});
          layerJobs.set(l.blobDigest, job);
        }
        jobs.push(job);
      }
      try {
        await Promise.all(jobs);
      } catch (err) {
        controller.abort(err);
        await Promise.allSettled(jobs);
        throw err;
      }

      const configBytes = await dc.images.content.readBlob(id);
      if (!(await repo.blobExists(id, signal))) {
        const loc = await repo.startUpload(signal);
        await repo.putBlob(loc, id, configBytes, configBytes.length, signal);
      }
      learned.push({ digest: id, registry: ref.domain, repository: ref.path });
      const { bytes, mediaType } = buildManifest(record, configBytes.length);
      const digest = await repo.putManifest(tag, bytes, mediaType, signal);
      await dc.images.content.writeBlob(bytes);
      dc.images.store.setRepoDigest(`${ref.domain}/${ref.path}@${digest}`, id, digest);
      dc.images.events('push', id, { name: familiarString({ ...ref, tag }) });
      out.message(undefined, `${tag}: digest: ${digest} size: ${bytes.length}`);
      out.aux({ Tag: tag, Digest: digest, Size: bytes.length });
    }
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    try {
      dc.sources.addAll(learned);
    } catch (err) {
      dc.log.warn('could not record blob sources', { err: (err as Error).message });
    }
  }
}

async function pushLayer(
  dc: DistributionContext,
  repo: RemoteRepository,
  ref: Reference,
  layer: ImageRecord['layers'][number],
  mountFrom: string[],
  out: ProgressWriter,
  signal: AbortSignal,
  learned: BlobSource[],
): Promise<void> {
  const id = shortID(layer.diffID);
  const digest = layer.blobDigest;
  if (!dc.uploads.tryAcquire()) {
    out.update(id, 'Waiting');
    await dc.uploads.acquire(signal);
  }
  try {
    const here: BlobSource = { digest, registry: ref.domain, repository: ref.path };
    if (await repo.blobExists(digest, signal)) {
      out.update(id, 'Layer already exists');
      learned.push(here);
      return;
    }
    let location: URL | undefined;
    for (const from of mountFrom) {
      let mounted: true | URL;
      try {
        mounted = await repo.mountBlob(digest, from, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        dc.log.debug('cross-repository mount failed', { digest, from, err: (err as Error).message });
        continue;
      }
      if (mounted === true) {
        out.update(id, `Mounted from ${from}`);
        learned.push(here);
        return;
      }
      // Not mountable: the registry opened an ordinary upload instead; use it.
      location = mounted;
      break;
    }
    const info = await dc.images.content.info(digest);
    if (!info) throw new Error(`blob ${digest} of layer ${layer.diffID} is missing from the content store`);
    const size = info.size;
    if (size <= SMALL_BLOB) {
      const data = await dc.images.content.readBlob(digest);
      out.progress(id, 'Pushing', size, size);
      const posted = location ? location : await repo.postBlob(digest, data, signal);
      if (posted !== true) await repo.putBlob(posted ?? (await repo.startUpload(signal)), digest, data, size, signal);
    } else {
      location ??= await repo.startUpload(signal);
      let sent = 0;
      const throttle = new ProgressThrottle(size, (c) => out.progress(id, 'Pushing', c, size));
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          sent += chunk.length;
          throttle.tick(sent);
          cb(null, chunk);
        },
        flush(cb) {
          throttle.finish(sent);
          cb();
        },
      });
      const src = await dc.images.content.createReadStream(digest);
      src.on('error', (err) => counter.destroy(err));
      await repo.putBlob(location, digest, src.pipe(counter), size, signal);
    }
    out.update(id, 'Pushed');
    learned.push(here);
  } finally {
    dc.uploads.release();
  }
}
