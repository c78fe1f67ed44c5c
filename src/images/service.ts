// The image service: the backend of the /images routes. It resolves names, lists and inspects
// images, tags and removes them, imports root filesystems, and garbage-collects the layers and
// blobs that no image needs any more. Storage is delegated: blobs to the content store, unpacked
// layers to the snapshotter, records to the ImageStore.
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { conflict, invalidParameter, isKind, notFound } from '../common/errors';
import type { Logger } from '../common/logger';
import type { ContentStore } from '../content/store';
import type { Snapshotter } from '../snapshots/types';
import { EXTRACT_KEY_PREFIX, initLayerKey } from '../snapshots/overlay';
import { applyChanges } from './changes';
import type { ImageRecord, ImageStore } from './store';
import { MediaTypes, type ImageConfig, type ImageLayer, type ImageRunConfig } from './types';
import { chainIDs, unpackLayers, writableDir, type LayerDescriptor } from './unpack';
import { familiarString, formatReference, looksLikeID, parseNormalizedNamed, parseReference, validateTag, type Reference } from './reference';
import type { Filters } from '../api/httputil';

/** What the image service needs to know about containers (implemented by the container service). */
export interface ImageUsage {
  containersUsing(imageId: string): { id: string; running: boolean }[];
}

/** Events the image service reports (implemented by the events service). */
export type ImageEventSink = (action: string, imageId: string, attrs: Record<string, string>) => void;

export interface ResolvedImage {
  record: ImageRecord;
  config: ImageConfig;
  /** The reference the name resolved through, when it was a name rather than an ID. */
  ref?: Reference;
}

export interface DeleteResponseItem { Untagged?: string; Deleted?: string }

export function shortID(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export class ImageService {
  private usage: ImageUsage = { containersUsing: () => [] };
  private readonly configCache = new Map<string, ImageConfig>();
  events: ImageEventSink = () => {};

  constructor(
    readonly store: ImageStore,
    readonly content: ContentStore,
    readonly snapshotter: Snapshotter,
    private readonly log: Logger,
  ) {}

  setUsage(u: ImageUsage): void {
    this.usage = u;
  }

  count(): number {
    return this.store.count();
  }

  async config(id: string): Promise<ImageConfig> {
    let c = this.configCache.get(id);
    if (!c) {
      c = JSON.parse((await this.content.readBlob(id)).toString('utf8')) as ImageConfig;
      this.configCache.set(id, c);
    }
    return c;
  }

  /** Finds an image by name, full or short ID, or name@digest. NotFound as docker words it. */
  async resolve(name: string): Promise<ResolvedImage> {
    const rec = this.lookup(name);
    return { record: rec.record, config: await this.config(rec.record.id), ref: rec.ref };
  }

  lookup(name: string): { record: ImageRecord; ref?: Reference } {
    if (/^sha256:[a-f0-9]{64}$/.test(name) || /^[a-f0-9]{64}$/.test(name)) {
      const id = name.startsWith('sha256:') ? name : `sha256:${name}`;
      const r = this.store.get(id);
      if (r) return { record: r };
      throw notFound(`No such image: ${name}`);
    }
    let ref: Reference | undefined;
    try {
      ref = parseNormalizedNamed(name);
    } catch (err) {
      if (!looksLikeID(name)) throw err;
    }
    if (ref) {
      const id = ref.digest ? this.store.repoDigestTarget(`${ref.domain}/${ref.path}@${ref.digest}`) : this.store.tagTarget(formatReference(ref));
      if (id) {
        const r = this.store.get(id);
        if (r) return { record: r, ref };
      }
    }
    if (looksLikeID(name)) {
      const prefix = name.replace(/^sha256:/, '');
      const ids = this.store.idsWithPrefix(prefix);
      if (ids.length === 1) return { record: this.store.get(ids[0])! };
      if (ids.length > 1) throw invalidParameter(`image ID prefix ${name} is ambiguous`);
    }
    throw notFound(`No such image: ${ref ? familiarString(ref) : name}`);
  }

  repoTags(id: string): string[] {
    return this.store.tagsOf(id).map((r) => familiarString(parseReference(r)));
  }

  repoDigests(id: string): string[] {
    return this.store.repoDigestsOf(id).map((r) => familiarString(parseReference(r)));
  }

  /** Stores an image whose layers are already unpacked; tags it when refs are given. */
  async addImage(configBytes: Buffer, layers: ImageLayer[], opts: { parent?: string; tags?: Reference[] } = {}): Promise<string> {
    const id = sha256(configBytes);
    await this.content.writeBlob(configBytes, { digest: id });
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    this.store.put({
      id,
      created: config.created ?? new Date(0).toISOString(),
      parent: opts.parent ?? '',
      size: layers.reduce((n, l) => n + l.size, 0),
      layers,
    });
    for (const t of opts.tags ?? []) this.setTag(t, id);
    return id;
  }

  private setTag(ref: Reference, id: string): void {
    const full = formatReference(ref);
    const previous = this.store.setTag(full, id);
    this.events('tag', id, { name: familiarString(ref) });
    if (previous) this.log.debug('tag moved', { ref: full, from: previous, to: id });
  }

  async tag(source: string, repo: string, tag: string | null): Promise<void> {
    const { record } = this.lookup(source);
    if (repo === '') throw invalidParameter('repository name must have at least one component');
    const ref = parseReference(repo);
    if (ref.digest) throw invalidParameter('refusing to create a tag with a digest reference');
    if (tag) {
      if (ref.tag) throw invalidParameter(`invalid reference format`);
      ref.tag = validateTag(tag);
    }
    if (!ref.tag) ref.tag = 'latest';
    this.setTag(ref, record.id);
  }

  // ---- import -------------------------------------------------------------------------------

  /**
   * Imports a root filesystem tar (plain or compressed) as a one-layer image, in one pass: the
   * stream is stored in the content store and extracted into a fresh snapshot at the same time,
   * and the snapshot is committed under the layer's chain ID once the stream has been verified.
   */
  async importRootfs(input: Readable, opts: { repo?: string; tag?: string; changes: string[]; message?: string; platform?: string; comment?: string }): Promise<string> {
    let tagRef: Reference | undefined;
    if (opts.repo) {
      tagRef = parseReference(opts.repo);
      if (opts.tag) {
        if (tagRef.tag || tagRef.digest) throw invalidParameter('invalid reference format');
        tagRef.tag = validateTag(opts.tag);
      }
      if (tagRef.digest) throw invalidParameter('cannot import digest reference');
      tagRef.tag = tagRef.tag ?? 'latest';
    }
    const runConfig: ImageRunConfig = applyChanges({}, opts.changes);
    const [os, architecture, variant] = (opts.platform || `linux/${goArch()}`).split('/');
    if (os !== 'linux') throw invalidParameter(`operating system is not supported: ${os}`);

    // The chain ID is known only at the end of the stream, so the layer is extracted under a
    // temporary "extract-" key (which the snapshotter removes after a crash) and committed
    // under its chain ID afterwards.
    const key = `${EXTRACT_KEY_PREFIX}${randomBytes(8).toString('hex')} import`;
    const removeExtraction = (): void => {
      try {
        this.snapshotter.remove(key);
      } catch (err) {
        if (!isKind(err, 'NotFound')) this.log.warn('removing a failed import\'s snapshot', { key, error: (err as Error).message });
      }
    };
    let layer: Omit<ImageLayer, 'chainID'>;
    try {
      layer = await this.ingestLayerStream(input, { extractTo: writableDir(this.snapshotter.prepare(key)) });
    } catch (err) {
      // A refused layer (hostile paths, corrupt data) leaves nothing: the ingest removed its
      // data, and the partial tree goes with the snapshot.
      removeExtraction();
      throw err;
    }
    const [chainID] = chainIDs([layer.diffID]);
    try {
      // The layer's disk usage is measured when first asked for: walking tens of thousands of
      // files here held the response up.
      this.snapshotter.commit(chainID, key, { measureUsageLater: true });
    } catch (err) {
      removeExtraction();
      // The same layer was committed meanwhile (or by an earlier import): same content, so that
      // snapshot serves, and ours was surplus.
      let existing: string | undefined;
      try {
        if (isKind(err, 'Conflict')) existing = this.snapshotter.stat(chainID).kind;
      } catch {
        // Gone again: report the commit's error.
      }
      if (existing !== 'committed') {
        if (!this.store.blobInUse(layer.blobDigest)) await this.content.delete(layer.blobDigest).catch(() => {});
        throw err;
      }
    }
    const created = new Date().toISOString();
    const comment = opts.message || 'Imported from -';
    const config: ImageConfig = {
      architecture: architecture ?? goArch(),
      ...(variant ? { variant } : {}),
      comment,
      config: runConfig,
      created,
      history: [{ created, comment }],
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [layer.diffID] },
    };
    const id = await this.addImage(Buffer.from(JSON.stringify(config)), [{ ...layer, chainID }], { tags: tagRef ? [tagRef] : [] });
    this.events('import', id, {});
    return id;
  }

  /**
   * Writes a layer stream to the content store, computing both the blob digest and (for a
   * compressed stream, by decompressing alongside) the diffID, in one pass over the stream.
   * With extractTo, the layer is also extracted into that directory in the same pass (see
   * LayerExtractor: on failure the partial tree stays for the caller to remove).
   */
  async ingestLayerStream(input: Readable, opts: { extractTo?: string } = {}): Promise<Omit<ImageLayer, 'chainID'>> {
    const ref = `import-${randomBytes(8).toString('hex')}`;
    // The blob's sha256 is computed on the digest worker (the main thread hashing hundreds of
    // megabytes inline held up the request and the extraction it feeds), and the blob is written
    // back to disk as it goes: commit's fsync of a 512 MB layer, after the extraction, took
    // 0.15-0.6 s at the end of an import. It bypasses the page cache: the layer's bytes are in
    // memory already as the extracted files, and a second copy that nobody reads soon cost more
    // kernel time (finding fresh pages) than the extraction itself on some hosts.
    const w = await this.content.writer(ref, {}, { hashInBackground: true, syncAhead: true, uncached: true });
    try {
      // The tee and the extractor behind it are loaded with the first import, not by an idle daemon.
      const { teeLayer } = require('../archive/tee') as typeof import('../archive/tee');
      const t = await teeLayer(input, (chunk) => w.write(chunk), { extractTo: opts.extractTo });
      if (t.rawSize === 0) throw invalidParameter('empty tar stream: nothing to import');
      const digest = await w.commit();
      const mediaType = t.compression === 'gzip' ? MediaTypes.ociLayerGzip : t.compression === 'zstd' ? MediaTypes.ociLayerZstd : MediaTypes.ociLayer;
      // A plain tar's blob digest is its diffID; the store has hashed those bytes already.
      return { diffID: t.diffID ?? digest, blobDigest: digest, mediaType, blobSize: t.rawSize, size: t.size };
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    }
  }

  /** Unpacks layers given as content-store blobs; returns them with chain IDs filled in. */
  async unpack(layers: (LayerDescriptor & { uncompressedSize?: number })[]): Promise<ImageLayer[]> {
    const ids = await unpackLayers(layers, this.content, this.snapshotter);
    return layers.map((l, i) => ({ diffID: l.diffID, chainID: ids[i], blobDigest: l.digest, mediaType: l.mediaType, blobSize: l.size, size: l.uncompressedSize ?? l.size }));
  }

  // ---- removal ------------------------------------------------------------------------------

  async remove(name: string, opts: { force: boolean; noprune: boolean }): Promise<DeleteResponseItem[]> {
    const { record, ref } = this.lookup(name);
    const id = record.id;
    const out: DeleteResponseItem[] = [];
    const users = this.usage.containersUsing(id);
    const running = users.find((u) => u.running);
    const tags = this.store.tagsOf(id);
    const digests = this.store.repoDigestsOf(id);

    if (ref) {
      // Removing by name untags; the image goes only when that was its last name.
      const full = ref.digest ? `${ref.domain}/${ref.path}@${ref.digest}` : formatReference(ref);
      const remainingNames = [...tags, ...digests].filter((r) => r !== full && !(ref.digest === undefined && r.startsWith(`${ref.domain}/${ref.path}@`)));
      if (remainingNames.length > 0 || (users.length > 0 && !opts.force)) {
        if (remainingNames.length === 0 && users.length > 0) {
          throw conflict(`unable to remove repository reference "${name}" (must force) - container ${shortID(users[0].id)} is using its referenced image ${shortID(id)}`);
        }
        if (ref.digest) this.store.removeRepoDigest(full);
        else this.store.removeTag(full);
        out.push({ Untagged: familiarString(ref) });
        this.events('untag', id, { name: familiarString(ref) });
        return out;
      }
    } else if (tags.length + digests.length > 1 && !opts.force) {
      throw conflict(`conflict: unable to delete ${shortID(id)} (must be forced) - image is referenced in multiple repositories`);
    }
    if (running) {
      throw conflict(`conflict: unable to delete ${ref ? familiarString(ref) : shortID(id)} (cannot be forced) - image is being used by running container ${shortID(running.id)}`);
    }
    if (users.length > 0 && !opts.force) {
      throw conflict(`conflict: unable to delete ${ref ? familiarString(ref) : shortID(id)} (must be forced) - image is being used by stopped container ${shortID(users[0].id)}`);
    }
    const children = this.store.children(id);
    if (children.length > 0 && !opts.force) {
      throw conflict(`conflict: unable to delete ${shortID(id)} (cannot be forced) - image has dependent child images`);
    }
    for (const t of tags) {
      this.store.removeTag(t);
      out.push({ Untagged: familiarString(parseReference(t)) });
      this.events('untag', id, { name: familiarString(parseReference(t)) });
    }
    for (const d of digests) {
      this.store.removeRepoDigest(d);
      out.push({ Untagged: familiarString(parseReference(d)) });
    }
    if (users.length > 0) {
      // Forced while stopped containers use it: docker keeps the image, only untagged.
      return out;
    }
    out.push(...(await this.deleteImage(record, opts.noprune)));
    return out;
  }

  /** Deletes an untagged image record and whatever of its storage nothing else uses. */
  private async deleteImage(record: ImageRecord, noprune: boolean): Promise<DeleteResponseItem[]> {
    const out: DeleteResponseItem[] = [];
    this.store.delete(record.id);
    this.configCache.delete(record.id);
    out.push({ Deleted: record.id });
    this.events('delete', record.id, {});
    await this.collectStorage(record);
    if (!noprune && record.parent) {
      const parent = this.store.get(record.parent);
      if (parent && this.store.tagsOf(parent.id).length === 0 && this.store.children(parent.id).length === 0 && this.usage.containersUsing(parent.id).length === 0) {
        out.push(...(await this.deleteImage(parent, noprune)));
      }
    }
    return out;
  }

  /** Removes snapshots and blobs of a deleted image that no other image references. */
  private async collectStorage(record: ImageRecord): Promise<void> {
    for (const l of [...record.layers].reverse()) {
      if (!this.store.chainInUse(l.chainID)) {
        // The init layer its containers shared (containers/service.ts initLayer), unless one
        // still uses it (Conflict below).
        try {
          this.snapshotter.remove(initLayerKey(l.chainID));
        } catch (err) {
          if (!isKind(err, 'NotFound') && !isKind(err, 'Conflict')) throw err;
        }
        try {
          this.snapshotter.remove(l.chainID);
        } catch (err) {
          // Still a parent of another snapshot (a container's, or a layer above): keep it.
          if (!isKind(err, 'NotFound') && !isKind(err, 'Conflict') && !isKind(err, 'InvalidParameter')) throw err;
        }
      }
      if (!this.store.blobInUse(l.blobDigest)) await this.content.delete(l.blobDigest).catch(() => {});
    }
    if (!this.store.blobInUse(record.id)) await this.content.delete(record.id).catch(() => {});
  }

  async prune(filters: Filters): Promise<{ ImagesDeleted: DeleteResponseItem[] | null; SpaceReclaimed: number }> {
    const dangling = filters.get('dangling');
    const onlyDangling = dangling === undefined ? true : dangling.some((v) => ['true', '1'].includes(v.toLowerCase()));
    const until = filters.get('until')?.map(parseTimestamp);
    const deleted: DeleteResponseItem[] = [];
    let reclaimed = 0;
    for (const rec of this.store.list()) {
      if (!this.store.get(rec.id)) continue; // removed as a parent of an earlier one
      const tagged = this.store.tagsOf(rec.id).length > 0;
      if (onlyDangling && tagged) continue;
      if (this.usage.containersUsing(rec.id).length > 0) continue;
      if (this.store.children(rec.id).length > 0) continue;
      if (until && !until.every((t) => Date.parse(rec.created) < t)) continue;
      if (!(await this.matchesLabels(rec.id, filters))) continue;
      const items: DeleteResponseItem[] = [];
      for (const t of this.store.tagsOf(rec.id)) {
        this.store.removeTag(t);
        items.push({ Untagged: familiarString(parseReference(t)) });
      }
      for (const d of this.store.repoDigestsOf(rec.id)) {
        this.store.removeRepoDigest(d);
        items.push({ Untagged: familiarString(parseReference(d)) });
      }
      const unique = rec.layers.filter((l) => !this.otherImagesUseChain(l.chainID, rec.id)).reduce((n, l) => n + l.size, 0);
      items.push(...(await this.deleteImage(rec, false)));
      reclaimed += unique;
      deleted.push(...items);
    }
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  private otherImagesUseChain(chainID: string, except: string): boolean {
    return this.store.list().some((r) => r.id !== except && r.layers.some((l) => l.chainID === chainID));
  }

  async matchesLabels(id: string, filters: Filters): Promise<boolean> {
    const labels = (await this.config(id)).config?.Labels ?? {};
    for (const want of filters.get('label') ?? []) {
      const eq = want.indexOf('=');
      if (eq < 0 ? !(want in labels) : labels[want.slice(0, eq)] !== want.slice(eq + 1)) return false;
    }
    for (const want of filters.get('label!') ?? []) {
      const eq = want.indexOf('=');
      if (eq < 0 ? want in labels : labels[want.slice(0, eq)] === want.slice(eq + 1)) return false;
    }
    return true;
  }

  /** Every chain ID an image's containers may use as the parent of their writable layer. */
  topChainID(record: ImageRecord): string | undefined {
    return record.layers[record.layers.length - 1]?.chainID;
  }
}

export function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/** Docker's timestamp filter values: RFC 3339, unix seconds (with fraction), or a Go duration ago. */
export function parseTimestamp(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const dur = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$/.exec(v);
  if (dur) {
    const mult: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    return Date.now() - Number(dur[1]) * mult[dur[2]];
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidParameter(`failed to parse value as time or duration: "${v}"`);
  return t;
}
