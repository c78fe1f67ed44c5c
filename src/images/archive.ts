// `docker save` and `docker load` archives. save writes what Docker 25+ writes: an OCI image
// layout (oci-layout, index.json, blobs/sha256/...) plus the legacy manifest.json and
// repositories files, with layers as uncompressed tars, so Docker and berth both load it and the
// image ID (the config digest) survives the round trip. load reads that, older Docker archives
// (<id>/layer.tar, <id>.json) and plain OCI layouts.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { PassThrough, Readable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { invalidParameter, isKind } from '../common/errors';
import { EXTRACT_KEY_PREFIX } from '../snapshots/overlay';
import { chainIDs, writableDir } from './unpack';
import { detectCompression, decompressionStages } from '../archive/compression';
import { tarEntries } from '../archive/entry-stream';
import { familiarString, parseReference, type Reference } from './reference';
import { shortID, type ImageService } from './service';
import { MediaTypes, type Descriptor, type ImageConfig, type Index, type Manifest } from './types';

const SMALL_FILE_LIMIT = 16 << 20;
/** Blobs up to this size are read into memory (configs, manifests; small layers too). */
const SMALL_BLOB_LIMIT = 1 << 20;

function sha256(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

// ---- save ---------------------------------------------------------------------------------

export async function saveImages(svc: ImageService, names: string[]): Promise<Readable> {
  // Resolve everything first: an unknown name is a 404 before any byte is sent.
  const images = new Map<string, { config: ImageConfig; tags: Reference[] }>();
  for (const name of names) {
    const r = await svc.resolve(name);
    const entry = images.get(r.record.id) ?? { config: r.config, tags: [] };
    if (r.ref?.tag) entry.tags.push(r.ref);
    images.set(r.record.id, entry);
  }
  const pack = tar.pack();
  const out = new PassThrough();
  const done = pipeline(pack, out).catch((err) => out.destroy(err));
  void done;

  const addFile = (name: string, data: Buffer | string) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o644, mtime: new Date(0) }, data, (err) => (err ? reject(err) : resolve())));

  const written = new Set<string>();
  const dirWritten = new Set<string>();
  const legacy: object[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const indexEntries: Descriptor[] = [];

  (async () => {
    for (const name of ['blobs/', 'blobs/sha256/']) {
      if (!dirWritten.has(name)) {
        dirWritten.add(name);
        await new Promise<void>((res, rej) => pack.entry({ name, type: 'directory', mode: 0o755, mtime: new Date(0) }, (e) => (e ? rej(e) : res())));
      }
    }
    for (const [id, { tags }] of images) {
      svc.events('save', id, {});
      const record = svc.store.get(id)!;
      // The config goes before the layers: a loader that reads it first knows each layer's
      // place in its chain when the layer arrives, and can extract it as it reads it.
      const configBytes = await svc.content.readBlob(id);
      const cfgPath = `blobs/sha256/${id.slice(7)}`;
      if (!written.has(cfgPath)) {
        written.add(cfgPath);
        await addFile(cfgPath, configBytes);
      }
      const layerDescs: Descriptor[] = [];
      for (const l of record.layers) {
        const path = `blobs/sha256/${l.diffID.slice(7)}`;
        if (!written.has(path)) {
          written.add(path);
          await writeLayer(svc, pack, path, l.blobDigest, l.mediaType);
        }
        layerDescs.push({ mediaType: MediaTypes.ociLayer, digest: l.diffID, size: await uncompressedSize(svc, l.blobDigest, l.mediaType) });
      }
      const manifest: Manifest = {
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        config: { mediaType: MediaTypes.ociConfig, digest: id, size: configBytes.length },
        layers: layerDescs,
      };
      const manifestBytes = Buffer.from(JSON.stringify(manifest));
      const manifestDigest = sha256(manifestBytes);
      const mPath = `blobs/sha256/${manifestDigest.slice(7)}`;
      if (!written.has(mPath)) {
        written.add(mPath);
        await addFile(mPath, manifestBytes);
      }
      const repoTags = tags.map((t) => familiarString(t));
      if (tags.length === 0) indexEntries.push({ mediaType: MediaTypes.ociManifest, digest: manifestDigest, size: manifestBytes.length });
      for (const t of tags) {
        indexEntries.push({
          mediaType: MediaTypes.ociManifest,
          digest: manifestDigest,
          size: manifestBytes.length,
          annotations: { 'io.containerd.image.name': `${t.domain}/${t.path}:${t.tag}`, 'org.opencontainers.image.ref.name': t.tag! },
        });
        const top = record.layers[record.layers.length - 1];
        (repositories[familiarString({ ...t, tag: undefined })] ??= {})[t.tag!] = top ? top.diffID.slice(7) : '';
      }
      legacy.push({ Config: cfgPath, RepoTags: repoTags.length ? repoTags : null, Layers: record.layers.map((l) => `blobs/sha256/${l.diffID.slice(7)}`) });
    }
    await addFile('index.json', JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: indexEntries } satisfies Index));
    await addFile('manifest.json', JSON.stringify(legacy));
    await addFile('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (Object.keys(repositories).length > 0) await addFile('repositories', JSON.stringify(repositories));
    pack.finalize();
  })().catch((err) => pack.destroy(err));
  return out;
}

async function uncompressedSize(svc: ImageService, blob: string, mediaType: string): Promise<number> {
  if (!isCompressed(mediaType)) return (await svc.content.info(blob))!.size;
  let n = 0;
  for await (const c of await decompressedStream(svc, blob)) n += (c as Buffer).length;
  return n;
}

function isCompressed(mediaType: string): boolean {
  return /gzip|zstd/.test(mediaType);
}

async function decompressedStream(svc: ImageService, blob: string): Promise<Readable> {
  const { stages } = await decompressionStages(await svc.content.createReadStream(blob));
  if (stages.length === 1) return stages[0] as Readable;
  const out = new PassThrough();
  pipeline(...(stages as [Readable]), out).catch((err) => out.destroy(err));
  return out;
}

async function writeLayer(svc: ImageService, pack: tar.Pack, name: string, blob: string, mediaType: string): Promise<void> {
  const size = await uncompressedSize(svc, blob, mediaType);
  const src = isCompressed(mediaType) ? await decompressedStream(svc, blob) : await svc.content.createReadStream(blob);
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve()));
    src.on('error', reject);
    src.pipe(entry);
  });
}

// ---- load ---------------------------------------------------------------------------------

interface LoadedFile {
  digest: string;
  size: number;
  data?: Buffer;
  /** A legacy layer.tar extracted as it was read, before its place was known (see adoptExtracted). */
  extracted?: { key: string; diffID: string };
}

export async function loadImages(svc: ImageService, input: Readable, quiet: boolean, progress: (msg: object) => void): Promise<void> {
  /** Keys of snapshots layers were extracted into ahead of their place; none outlives the load. */
  const extractedAhead: string[] = [];
  try {
    await loadArchive(svc, input, quiet, progress, extractedAhead);
  } finally {
    for (const key of extractedAhead) {
      try {
        svc.snapshotter.remove(key);
      } catch {
        // Adopted (gone already), or not removable now: an "extract-" snapshot is removed by the
        // snapshotter at the next start anyway.
      }
    }
  }
}

async function loadArchive(svc: ImageService, input: Readable, quiet: boolean, progress: (msg: object) => void, extractedAhead: string[]): Promise<void> {
  /** Blobs this load stored; those no image ended up using go at the end. */
  const staged: string[] = [];
  const keep = new Set<string>();
  try {
    await loadStaged(svc, input, quiet, progress, extractedAhead, staged, keep);
  } finally {
    // Blobs staged for this load that no image ended up using (manifests, stray files, or all of
    // them after a failure, including one while the archive was still being read) are removed,
    // so a failed load leaves nothing behind.
    for (const d of staged) if (!keep.has(d) && !svc.store.blobInUse(d)) await svc.content.delete(d).catch(() => {});
  }
}

async function loadStaged(svc: ImageService, input: Readable, quiet: boolean, progress: (msg: object) => void, extractedAhead: string[], staged: string[], keep: Set<string>): Promise<void> {
  const files = new Map<string, LoadedFile>();
  const links = new Map<string, string>();
  const chains = new ChainPlaces(svc);

  // The archive may itself be compressed (docker load accepts gzip).
  const { stages } = await decompressionStages(input);
  let outer: Readable = stages[0] as Readable;
  let decompressing: Promise<void> | undefined;
  if (stages.length > 1) {
    outer = stages[stages.length - 1] as Readable;
    decompressing = pipeline(stages as [Readable, Duplex]);
    decompressing.catch(() => {}); // its failure reaches the entries as the last stage's error
  }
  for await (const { header: h, body: entry } of tarEntries(outer)) {
    const name = h.name.replace(/^\.\//, '').replace(/\/+$/, '');
    if (h.type === 'symlink' || h.type === 'link') {
      links.set(name, h.type === 'symlink' ? joinPath(dirOf(name), h.linkname ?? '') : (h.linkname ?? '').replace(/^\.\//, ''));
      entry.resume();
      continue;
    }
    if (h.type !== 'file') {
      entry.resume();
      continue;
    }
    const size = h.size ?? 0;
    const blobMatch = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
    if (size <= (blobMatch ? SMALL_BLOB_LIMIT : SMALL_FILE_LIMIT) && !name.endsWith('layer.tar')) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      const data = Buffer.concat(chunks);
      files.set(name, { digest: sha256(data), size: data.length, data });
      if (blobMatch) chains.learn(data);
      continue;
    }
    const diffID = blobMatch ? `sha256:${blobMatch[1]}` : undefined;
    const place = diffID !== undefined && size > 0 ? chains.extractable(diffID) : undefined;
    if (place) {
      const digest = await loadLayerInOnePass(svc, entry, diffID!, place, staged);
      files.set(name, { digest, size });
      continue;
    }
    if (!blobMatch && name.endsWith('/layer.tar')) {
      // The legacy layout puts each layer before the config that places it: extract it now
      // anyway (its content does not depend on the layers below), and give the tree its place
      // once the config is in, instead of storing it now and reading it back to unpack it.
      const loaded = await loadLayerAhead(svc, entry, staged, extractedAhead);
      files.set(name, { ...loaded, size });
      continue;
    }
    const digest = await svc.content.ingestStream(`load-${name}-${process.hrtime.bigint()}`, entry as AsyncIterable<Uint8Array>, blobMatch ? { digest: `sha256:${blobMatch[1]}`, size } : { size });
    staged.push(digest);
    files.set(name, { digest, size });
  }
  await decompressing;

  const resolveName = (p: string): LoadedFile | undefined => {
    let name = p.replace(/^\.\//, '');
    for (let i = 0; i < 8 && links.has(name); i++) name = links.get(name)!;
    return files.get(name);
  };
  const readSmall = async (f: LoadedFile): Promise<Buffer> => f.data ?? (await svc.content.readBlob(f.digest));
  const byDigest = (d: string): LoadedFile | undefined => resolveName(`blobs/sha256/${d.replace(/^sha256:/, '')}`);

  interface Plan { configBytes: Buffer; layers: { file: LoadedFile; mediaType: string }[]; tags: Reference[] }
  const plans: Plan[] = [];
  const manifestJson = files.get('manifest.json');
  const indexJson = files.get('index.json');
  if (manifestJson) {
    let entries: { Config: string; RepoTags: string[] | null; Layers: string[] }[];
    try {
      entries = JSON.parse(manifestJson.data!.toString('utf8'));
    } catch {
      throw invalidParameter('invalid manifest.json in the archive');
    }
    for (const e of entries) {
      const cfg = resolveName(e.Config);
      if (!cfg) throw invalidParameter(`invalid archive: config ${e.Config} is missing`);
      const layers = e.Layers.map((p) => {
        const f = resolveName(p);
        if (!f) throw invalidParameter(`invalid archive: layer ${p} is missing`);
        return { file: f, mediaType: '' };
      });
      plans.push({ configBytes: await readSmall(cfg), layers, tags: (e.RepoTags ?? []).map((t) => parseReference(t)) });
    }
  } else if (indexJson) {
    const index = JSON.parse(indexJson.data!.toString('utf8')) as Index;
    const walk = async (descs: Descriptor[], inheritedTag?: Reference): Promise<void> => {
      for (const d of descs) {
        const f = byDigest(d.digest);
        if (!f) throw invalidParameter(`invalid OCI layout: blob ${d.digest} is missing`);
        const name = d.annotations?.['io.containerd.image.name'] ?? d.annotations?.['org.opencontainers.image.ref.name'];
        let tag = inheritedTag;
        if (name) {
          try {
            tag = parseReference(name.includes('/') || name.includes(':') ? name : `${name}`);
            if (!tag.tag && !tag.digest) tag.tag = 'latest';
            // A bare ref.name such as "latest" names a tag but no repository: keep none.
            if (!d.annotations?.['io.containerd.image.name'] && !name.includes(':') && !name.includes('/')) tag = undefined;
          } catch {
            tag = undefined;
          }
        }
        const body = JSON.parse((await readSmall(f)).toString('utf8')) as Manifest & Index;
        if (Array.isArray(body.manifests)) {
          const linux = body.manifests.filter((m) => !m.platform || (m.platform.os === 'linux' && m.platform.architecture === goArchName()));
          await walk(linux.slice(0, 1), tag);
          continue;
        }
        const cfg = byDigest(body.config.digest);
        if (!cfg) throw invalidParameter(`invalid OCI layout: config ${body.config.digest} is missing`);
        plans.push({
          configBytes: await readSmall(cfg),
          layers: body.layers.map((l) => {
            const lf = byDigest(l.digest);
            if (!lf) throw invalidParameter(`invalid OCI layout: layer ${l.digest} is missing`);
            return { file: lf, mediaType: l.mediaType };
          }),
          tags: tag ? [tag] : [],
        });
      }
    };
    await walk(index.manifests);
  } else {
    throw invalidParameter('invalid archive: neither manifest.json nor index.json found (is this a docker save archive?)');
  }

  for (const plan of plans) {
    let config: ImageConfig;
    try {
      config = JSON.parse(plan.configBytes.toString('utf8')) as ImageConfig;
    } catch {
      throw invalidParameter('invalid image config in the archive');
    }
    const diffIDs = config.rootfs?.diff_ids ?? [];
    if (diffIDs.length !== plan.layers.length) throw invalidParameter(`invalid archive: the config lists ${diffIDs.length} layers, the manifest ${plan.layers.length}`);
    const descs = [];
    for (let i = 0; i < plan.layers.length; i++) {
      const l = plan.layers[i];
      // Small layers were buffered; move them to the content store too.
      let digest = l.file.digest;
      if (l.file.data) {
        digest = await svc.content.writeBlob(l.file.data);
        staged.push(digest);
      }
      let mediaType = l.mediaType;
      if (!mediaType) {
        const head = await readHead(svc, digest);
        const c = detectCompression(head);
        mediaType = c === 'gzip' ? MediaTypes.ociLayerGzip : c === 'zstd' ? MediaTypes.ociLayerZstd : MediaTypes.ociLayer;
      }
      if (!quiet) progress({ status: 'Loading layer', progressDetail: { current: 0, total: l.file.size }, id: shortID(digest) });
      descs.push({ digest, diffID: diffIDs[i], mediaType, size: l.file.size, uncompressedSize: isCompressed(mediaType) ? undefined : l.file.size });
    }
    adoptExtracted(svc, plan.layers.map((l) => l.file), diffIDs);
    const layers = await svc.unpack(descs);
    for (const d of descs) {
      if (!quiet) progress({ status: 'Loading layer', progressDetail: { current: d.size, total: d.size }, id: shortID(d.digest) });
    }
    const id = await svc.addImage(plan.configBytes, layers, { tags: plan.tags.map((t) => (t.tag || t.digest ? t : { ...t, tag: 'latest' })) });
    // Kept only once an image uses them: a layer that fails to unpack goes with the rest.
    for (const d of descs) keep.add(d.digest);
    keep.add(id);
    svc.events('load', id, {});
    if (plan.tags.length === 0) progress({ stream: `Loaded image ID: ${id}\n` });
    for (const t of plan.tags) progress({ stream: `Loaded image: ${familiarString(t.tag || t.digest ? t : { ...t, tag: 'latest' })}\n` });
  }
}

/**
 * Stores a legacy layer.tar and extracts it in the same pass into a parentless "extract-"
 * snapshot (removed after a crash, and by the load when done); returns the blob's digest and
 * where the tree is.
 */
async function loadLayerAhead(svc: ImageService, entry: Readable, staged: string[], extractedAhead: string[]): Promise<{ digest: string; extracted: { key: string; diffID: string } }> {
  const key = `${EXTRACT_KEY_PREFIX}${randomBytes(8).toString('hex')} ahead`;
  const dir = writableDir(svc.snapshotter.prepare(key));
  extractedAhead.push(key);
  const layer = await svc.ingestLayerStream(entry, { extractTo: dir });
  staged.push(layer.blobDigest);
  return { digest: layer.blobDigest, extracted: { key, diffID: layer.diffID } };
}

/**
 * Gives layers extracted ahead their place, bottom up, as long as the chain below is committed:
 * a snapshot is prepared on the right parent and the extracted tree renamed into it (a layer's
 * tree is the same whatever lies below it), then committed under its chain ID. A layer whose
 * diffID is not what the config says is left alone: unpacking it from its blob reports that.
 * What is not adopted here is unpacked from the stored blobs as usual.
 */
function adoptExtracted(svc: ImageService, files: LoadedFile[], diffIDs: string[]): void {
  const ids = chainIDs(diffIDs);
  const committed = (key: string): boolean => {
    try {
      return svc.snapshotter.stat(key).kind === 'committed';
    } catch (err) {
      if (isKind(err, 'NotFound')) return false;
      throw err;
    }
  };
  for (let i = 0; i < files.length; i++) {
    if (committed(ids[i])) continue;
    const ahead = files[i].extracted;
    const parent = i === 0 ? undefined : ids[i - 1];
    if (ahead === undefined || ahead.diffID !== diffIDs[i] || (parent !== undefined && !committed(parent))) return;
    let source: string;
    try {
      source = writableDir(svc.snapshotter.mounts(ahead.key));
    } catch (err) {
      // Adopted already (the same layer twice in one archive): unpack from the blob.
      if (isKind(err, 'NotFound')) return;
      throw err;
    }
    const key = `${EXTRACT_KEY_PREFIX}${randomBytes(8).toString('hex')} ${ids[i]}`;
    const target = writableDir(svc.snapshotter.prepare(key, parent));
    try {
      // target is an empty directory: rename(2) replaces it.
      fs.renameSync(source, target);
      svc.snapshotter.commit(ids[i], key, { measureUsageLater: true });
    } catch (err) {
      try { svc.snapshotter.remove(key); } catch { /* the first error is the one to report */ }
      throw err;
    }
    try {
      svc.snapshotter.remove(ahead.key);
    } catch (err) {
      if (!isKind(err, 'NotFound')) throw err;
    }
  }
}

/** Where a layer sits: its chain ID and the chain below it (undefined for a bottom layer). */
interface ChainPlace {
  chainID: string;
  parent?: string;
}

/**
 * The layers of the image configs read so far in an archive, by diffID. A layer can be
 * extracted while it is read only when its place is known (its config came first) and the chain
 * below it is committed already; else it is stored and unpacked once the whole archive is in.
 */
class ChainPlaces {
  private readonly places = new Map<string, ChainPlace[]>();

  constructor(private readonly svc: ImageService) {}

  /** Records the layers of data if it is an image config (anything else is ignored). */
  learn(data: Buffer): void {
    if (data[0] !== 0x7b) return; // '{': not JSON, so no config
    let diffIDs: unknown;
    try {
      diffIDs = (JSON.parse(data.toString('utf8')) as ImageConfig).rootfs?.diff_ids;
      if (!Array.isArray(diffIDs)) return;
      const ids = chainIDs(diffIDs as string[]);
      ids.forEach((chainID, i) => {
        const list = this.places.get((diffIDs as string[])[i]) ?? [];
        list.push({ chainID, parent: i === 0 ? undefined : ids[i - 1] });
        this.places.set((diffIDs as string[])[i], list);
      });
    } catch {
      // Not a config (or a broken one, which the load reports later).
    }
  }

  /** A place for diffID whose parent chain is committed and whose own chain is not. */
  extractable(diffID: string): ChainPlace | undefined {
    const places = this.places.get(diffID) ?? [];
    if (places.some((p) => this.committed(p.chainID))) return undefined;
    return places.find((p) => p.parent === undefined || this.committed(p.parent));
  }

  private committed(key: string): boolean {
    try {
      return this.svc.snapshotter.stat(key).kind === 'committed';
    } catch (err) {
      if (isKind(err, 'NotFound')) return false;
      throw err;
    }
  }
}

/**
 * Stores a plain-tar layer named by its diffID and extracts it in the same pass, into a
 * temporary "extract-" snapshot committed under its chain ID once both digests check out; on
 * failure the snapshot goes (the blob is staged, so the load's cleanup removes it). Returns the
 * blob's digest.
 */
async function loadLayerInOnePass(svc: ImageService, entry: Readable, diffID: string, place: ChainPlace, staged: string[]): Promise<string> {
  const key = `${EXTRACT_KEY_PREFIX}${randomBytes(8).toString('hex')} ${place.chainID}`;
  const dir = writableDir(svc.snapshotter.prepare(key, place.parent));
  const removeSnapshot = (): void => {
    try {
      svc.snapshotter.remove(key);
    } catch (err) {
      if (!isKind(err, 'NotFound')) throw err;
    }
  };
  try {
    const layer = await svc.ingestLayerStream(entry, { extractTo: dir });
    staged.push(layer.blobDigest);
    if (layer.blobDigest !== diffID) throw invalidParameter(`invalid archive: blob ${diffID} has digest ${layer.blobDigest}`);
    if (layer.diffID !== diffID) throw invalidParameter(`invalid archive: layer ${diffID} unpacks to content with diffID ${layer.diffID}`);
    try {
      svc.snapshotter.commit(place.chainID, key, { measureUsageLater: true });
    } catch (err) {
      // Committed meanwhile by someone else: the same content, so ours is surplus.
      let existing: string | undefined;
      try {
        existing = svc.snapshotter.stat(place.chainID).kind;
      } catch {
        // Gone again: report the commit's error.
      }
      if (!(isKind(err, 'Conflict') && existing === 'committed')) throw err;
      removeSnapshot();
    }
    return layer.blobDigest;
  } catch (err) {
    removeSnapshot();
    throw err;
  }
}

function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function joinPath(dir: string, rel: string): string {
  const parts = dir ? dir.split('/') : [];
  for (const seg of rel.split('/')) {
    if (seg === '..') parts.pop();
    else if (seg !== '.' && seg !== '') parts.push(seg);
  }
  return parts.join('/');
}

function goArchName(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

async function readHead(svc: ImageService, digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await svc.content.createReadStream(digest, { start: 0, end: 15 })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
