// The registry's file-system storage. Layout under the root:
//
//   blobs/<alg>/<hex[0:2]>/<hex>                      content-addressed data (layers, configs, manifests)
//   uploads/<uuid>/data, uploads/<uuid>/info.json     upload sessions in progress
//   repositories/<name>/_layers/<alg>/<hex>           the repository may serve this blob (empty file)
//   repositories/<name>/_manifests/revisions/<alg>/<hex>   the repository has this manifest (JSON link)
//   repositories/<name>/_manifests/tags/<tag>         tag -> digest (text)
//   repositories/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>   descriptor of a referrer (JSON)
//
// Repository name components start with [a-z0-9], so they never collide with the "_" directories.
// Every name, tag, digest and upload id is validated (names.ts) before it becomes a path part, and
// every path is built by join() under the root, so no request can reach outside it.
//
// Blobs are written to the upload's own file and renamed into place only after the digest has been
// verified, so a blob path holds complete, verified content or nothing. Two concurrent pushes of the
// same blob each write their own upload file; both renames install identical content atomically.
//
// Resumable uploads: the bytes received so far live in uploads/<uuid>/data, fsynced before each
// PATCH is acknowledged. The running hash is kept in memory while the process lives; after a restart
// (or after a failed chunk) it is rebuilt by re-hashing the partial file once, on the next chunk or
// on completion. This trades one re-read of the partial data for not having to serialise hash state,
// which node:crypto cannot do.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomUUID, type Hash } from 'node:crypto';
import { fsyncDirAsync, writeFileAtomicAsync } from '../common/fsutil';
import { regErr } from './errors';
import { isValidUploadId, newHash, parseDigest, type Digest, type DigestAlgorithm } from './names';

export interface BlobInfo {
  size: number;
}

export interface ManifestLink {
  mediaType: string;
  size: number;
  /** Digest of the manifest's subject, kept so deleting the manifest can drop its referrer entry. */
  subject?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: { architecture?: string; os?: string; variant?: string; [k: string]: unknown };
  [k: string]: unknown;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

const WRITE_BATCH = 1 << 20;
// While a large body streams in, already-written data is flushed to disk in the background every
// this many bytes, so the final fsync before acknowledging has little left to do.
const EARLY_FLUSH_EVERY = 64 << 20;

/**
 * Copies a byte stream into a file at a position while feeding a hash. Chunks are batched into
 * ~1 MiB writev calls and one write is kept in flight while the next batch fills, so hashing on the
 * main thread overlaps with disk writes on the thread pool. Returns the number of bytes copied.
 */
export async function copyHashing(src: AsyncIterable<Buffer>, fh: fsp.FileHandle, position: number, hash: Hash | undefined, limit?: number): Promise<number> {
  let batch: Buffer[] = [];
  let batchLen = 0;
  let dispatched = 0;
  let inflight: Promise<void> | undefined;
  let syncing: Promise<void> | undefined;
  let lastSyncAt = 0;
  const flush = async (): Promise<void> => {
    if (inflight) await inflight;
    inflight = undefined;
    if (batchLen === 0) return;
    const bufs = batch;
    const len = batchLen;
    const at = position + dispatched;
    batch = [];
    batchLen = 0;
    dispatched += len;
    inflight = fh.writev(bufs, at).then((r) => {
      if (r.bytesWritten !== len) throw new Error(`short write: ${r.bytesWritten} of ${len} bytes`);
    });
    if (dispatched - lastSyncAt >= EARLY_FLUSH_EVERY && !syncing) {
      lastSyncAt = dispatched;
      const after = inflight;
      syncing = after.then(() => fh.datasync()).finally(() => {
        syncing = undefined;
      });
      syncing.catch(() => {});
    }
  };
  try {
    for await (const chunk of src) {
      if (limit !== undefined && dispatched + batchLen + chunk.length > limit) throw regErr('SIZE_INVALID', 'content longer than declared');
      hash?.update(chunk);
      batch.push(chunk);
      batchLen += chunk.length;
      if (batchLen >= WRITE_BATCH) await flush();
    }
    await flush();
    if (inflight) await inflight;
    if (syncing) await syncing;
  } catch (err) {
    // Never leave a write or sync running against a handle the caller is about to close.
    if (inflight) await inflight.catch(() => {});
    if (syncing) await syncing.catch(() => {});
    throw err;
  }
  return dispatched;
}

/** Content-addressed blob data shared by all repositories. */
export class BlobStore {
  constructor(readonly root: string) {}

  pathOf(d: Digest): string {
    return path.join(this.root, 'blobs', d.algorithm, d.hex.slice(0, 2), d.hex);
  }

  async stat(d: Digest): Promise<BlobInfo | undefined> {
    try {
      const st = await fsp.stat(this.pathOf(d));
      return st.isFile() ? { size: st.size } : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Reads a blob (or a byte range of it) for sending. Nothing is hashed here: a blob was
   * verified when it was installed. Big reads mean few syscalls and few socket writes.
   */
  openRead(d: Digest, start?: number, end?: number): fs.ReadStream {
    return fs.createReadStream(this.pathOf(d), { start, end, highWaterMark: 4 << 20 });
  }

  async read(d: Digest): Promise<Buffer> {
    return fsp.readFile(this.pathOf(d));
  }

  /** Moves a fully written, fsynced, verified file into place as the blob d. */
  async install(file: string, d: Digest): Promise<void> {
    const target = this.pathOf(d);
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await fsp.rename(file, target);
    await fsyncDirAsync(path.dirname(target));
  }

  /** Stores small content (a manifest) under its digest. */
  async putSmall(data: Uint8Array, d: Digest): Promise<void> {
    const target = this.pathOf(d);
    if (await exists(target)) return;
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await writeFileAtomicAsync(target, data);
  }

  async remove(d: Digest): Promise<void> {
    await fsp.rm(this.pathOf(d), { force: true });
  }

  /** Every stored blob's digest (for garbage collection). */
  async *list(): AsyncGenerator<Digest> {
    for (const algorithm of ['sha256', 'sha512'] as DigestAlgorithm[]) {
      const algDir = path.join(this.root, 'blobs', algorithm);
      for (const prefix of (await readdirOrEmpty(algDir)).sort()) {
        for (const hex of (await readdirOrEmpty(path.join(algDir, prefix))).sort()) {
          if (hex.startsWith('.tmp-')) continue;
          const d = tryDigest(`${algorithm}:${hex}`);
          if (d) yield d;
        }
      }
    }
  }
}

function tryDigest(text: string): Digest | undefined {
  try {
    return parseDigest(text);
  } catch {
    return undefined;
  }
}

/** What a repository holds: blob links, manifest revisions, tags, referrers. */
export class RepositoryStore {
  constructor(readonly root: string) {}

  private repoDir(name: string): string {
    return path.join(this.root, 'repositories', ...name.split('/'));
  }

  private layerLink(name: string, d: Digest): string {
    return path.join(this.repoDir(name), '_layers', d.algorithm, d.hex);
  }

  private revisionLink(name: string, d: Digest): string {
    return path.join(this.repoDir(name), '_manifests', 'revisions', d.algorithm, d.hex);
  }

  private tagLink(name: string, tag: string): string {
    return path.join(this.repoDir(name), '_manifests', 'tags', tag);
  }

  private referrerDir(name: string, subject: Digest): string {
    return path.join(this.repoDir(name), '_referrers', subject.algorithm, subject.hex);
  }

  async exists(name: string): Promise<boolean> {
    const dir = this.repoDir(name);
    return (await exists(path.join(dir, '_manifests'))) || (await exists(path.join(dir, '_layers')));
  }

  async hasBlob(name: string, d: Digest): Promise<boolean> {
    return exists(this.layerLink(name, d));
  }

  async linkBlob(name: string, d: Digest): Promise<void> {
    const link = this.layerLink(name, d);
    if (await exists(link)) return;
    await fsp.mkdir(path.dirname(link), { recursive: true });
    await writeFileAtomicAsync(link, d.text);
  }

  async unlinkBlob(name: string, d: Digest): Promise<boolean> {
    try {
      await fsp.unlink(this.layerLink(name, d));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async listBlobLinks(name: string): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const algorithm of ['sha256', 'sha512']) {
      for (const hex of await readdirOrEmpty(path.join(this.repoDir(name), '_layers', algorithm))) {
        const d = tryDigest(`${algorithm}:${hex}`);
        if (d) out.push(d);
      }
    }
    return out;
  }

  async getManifest(name: string, d: Digest): Promise<ManifestLink | undefined> {
    try {
      return JSON.parse(await fsp.readFile(this.revisionLink(name, d), 'utf8')) as ManifestLink;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async putManifest(name: string, d: Digest, link: ManifestLink): Promise<void> {
    const file = this.revisionLink(name, d);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomicAsync(file, JSON.stringify(link));
  }

  async deleteManifest(name: string, d: Digest): Promise<boolean> {
    try {
      await fsp.unlink(this.revisionLink(name, d));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async listManifests(name: string): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const algorithm of ['sha256', 'sha512']) {
      for (const hex of await readdirOrEmpty(path.join(this.repoDir(name), '_manifests', 'revisions', algorithm))) {
        const d = tryDigest(`${algorithm}:${hex}`);
        if (d) out.push(d);
      }
    }
    return out;
  }

  async getTag(name: string, tag: string): Promise<Digest | undefined> {
    try {
      return tryDigest((await fsp.readFile(this.tagLink(name, tag), 'utf8')).trim());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async putTag(name: string, tag: string, d: Digest): Promise<void> {
    const file = this.tagLink(name, tag);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomicAsync(file, d.text);
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    try {
      await fsp.unlink(this.tagLink(name, tag));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Tags in ASCII order (what Go's sort.Strings gives for the tag alphabet). */
  async listTags(name: string): Promise<string[]> {
    const names = await readdirOrEmpty(path.join(this.repoDir(name), '_manifests', 'tags'));
    return names.filter((t) => !t.startsWith('.tmp-')).sort();
  }

  async addReferrer(name: string, subject: Digest, desc: Descriptor): Promise<void> {
    const dir = this.referrerDir(name, subject);
    const d = parseDigest(desc.digest);
    await fsp.mkdir(dir, { recursive: true });
    await writeFileAtomicAsync(path.join(dir, `${d.algorithm}-${d.hex}`), JSON.stringify(desc));
  }

  async removeReferrer(name: string, subject: Digest, referrer: Digest): Promise<void> {
    await fsp.rm(path.join(this.referrerDir(name, subject), `${referrer.algorithm}-${referrer.hex}`), { force: true });
  }

  async listReferrers(name: string, subject: Digest): Promise<Descriptor[]> {
    const dir = this.referrerDir(name, subject);
    const out: Descriptor[] = [];
    for (const f of (await readdirOrEmpty(dir)).sort()) {
      if (f.startsWith('.tmp-')) continue;
      try {
        out.push(JSON.parse(await fsp.readFile(path.join(dir, f), 'utf8')) as Descriptor);
      } catch {
        // A referrer removed between readdir and read is simply gone.
      }
    }
    return out;
  }

  /** All repository names, sorted. */
  async listRepositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      let isRepo = false;
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        if (e.name === '_manifests' || e.name === '_layers') isRepo = true;
        else if (!e.name.startsWith('_') && !e.name.startsWith('.')) await walk(path.join(dir, e.name), prefix ? `${prefix}/${e.name}` : e.name);
      }
      if (isRepo && prefix) out.push(prefix);
    };
    await walk(path.join(this.root, 'repositories'), '');
    return out.sort();
  }
}

interface UploadInfo {
  repo: string;
  startedAt: string;
}

interface LiveHash {
  algorithm: DigestAlgorithm;
  hash: Hash;
  /** Bytes of the upload file the hash has consumed. */
  offset: number;
}

/** Upload sessions, stored by UUID so they survive restarts. */
export class UploadStore {
  private readonly live = new Map<string, LiveHash>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    readonly root: string,
    private readonly blobs: BlobStore,
  ) {}

  private dir(id: string): string {
    return path.join(this.root, 'uploads', id);
  }

  dataPath(id: string): string {
    return path.join(this.dir(id), 'data');
  }

  async create(repo: string): Promise<string> {
    const id = randomUUID();
    const dir = this.dir(id);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(this.dataPath(id), '');
    const info: UploadInfo = { repo, startedAt: new Date().toISOString() };
    await writeFileAtomicAsync(path.join(dir, 'info.json'), JSON.stringify(info));
    this.live.set(id, { algorithm: 'sha256', hash: newHash('sha256'), offset: 0 });
    return id;
  }

  /** Size received so far; BLOB_UPLOAD_UNKNOWN unless the session exists and belongs to repo. */
  async size(repo: string, id: string): Promise<number> {
    await this.checkOwner(repo, id);
    try {
      return (await fsp.stat(this.dataPath(id))).size;
    } catch {
      throw regErr('BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id });
    }
  }

  private async checkOwner(repo: string, id: string): Promise<void> {
    if (!isValidUploadId(id)) throw regErr('BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id.slice(0, 100) });
    let info: UploadInfo;
    try {
      info = JSON.parse(await fsp.readFile(path.join(this.dir(id), 'info.json'), 'utf8')) as UploadInfo;
    } catch {
      throw regErr('BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id });
    }
    if (info.repo !== repo) throw regErr('BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id });
  }

  async startedAt(id: string): Promise<Date | undefined> {
    try {
      const info = JSON.parse(await fsp.readFile(path.join(this.dir(id), 'info.json'), 'utf8')) as UploadInfo;
      return new Date(info.startedAt);
    } catch {
      return undefined;
    }
  }

  /** Serialises operations on one upload; chunks of one session are applied one at a time, in order. */
  async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(() => {}, () => {});
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  /** The hash of the first `size` bytes of the upload, rebuilt from disk if memory lost track. */
  private async hashFor(id: string, size: number, algorithm: DigestAlgorithm): Promise<LiveHash> {
    const live = this.live.get(id);
    if (live && live.offset === size && live.algorithm === algorithm) return live;
    const hash = newHash(algorithm);
    if (size > 0) {
      const rs = fs.createReadStream(this.dataPath(id), { start: 0, end: size - 1, highWaterMark: 1 << 20 });
      for await (const chunk of rs) hash.update(chunk as Buffer);
    }
    const rebuilt = { algorithm, hash, offset: size };
    this.live.set(id, rebuilt);
    return rebuilt;
  }

  /**
   * Appends body to the upload. With range, the chunk must start exactly at the current size (else
   * 416) and have exactly the range's length. Returns the new size. Caller holds the lock.
   */
  async append(repo: string, id: string, body: AsyncIterable<Buffer>, range?: { start: number; end: number }, contentLength?: number): Promise<number> {
    const size = await this.size(repo, id);
    if (range && range.start !== size) {
      throw regErr('BLOB_UPLOAD_INVALID', `chunk out of order: upload has ${size} bytes, chunk starts at ${range.start}`, { uploaded: size }, 416);
    }
    const expected = range ? range.end - range.start + 1 : contentLength;
    if (range && contentLength !== undefined && contentLength !== expected) {
      throw regErr('SIZE_INVALID', `Content-Length ${contentLength} does not match Content-Range ${range.start}-${range.end}`);
    }
    const live = await this.hashFor(id, size, this.live.get(id)?.algorithm ?? 'sha256');
    const fh = await fsp.open(this.dataPath(id), 'r+');
    let copied = 0;
    try {
      copied = await copyHashing(body, fh, size, live.hash, expected);
      if (expected !== undefined && copied !== expected) throw regErr('SIZE_INVALID', `received ${copied} bytes, expected ${expected}`);
      await fh.sync();
      live.offset = size + copied;
    } catch (err) {
      // The hash may have seen bytes the file did not get (or the reverse): drop the partial chunk
      // and the in-memory hash, so the session resumes cleanly from the last acknowledged size.
      this.live.delete(id);
      await fh.truncate(size).catch(() => {});
      throw err;
    } finally {
      await fh.close();
    }
    return size + copied;
  }

  /** Verifies the upload's digest and installs it as a blob; the session ends either way on mismatch. */
  async complete(repo: string, id: string, digest: Digest): Promise<number> {
    const size = await this.size(repo, id);
    const live = await this.hashFor(id, size, digest.algorithm);
    const actual = live.hash.copy().digest('hex');
    if (actual !== digest.hex) {
      await this.cancel(repo, id);
      throw regErr('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest.text, actual: `${digest.algorithm}:${actual}` });
    }
    const data = this.dataPath(id);
    const fh = await fsp.open(data, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
    await this.blobs.install(data, digest);
    await this.remove(id);
    return size;
  }

  async cancel(repo: string, id: string): Promise<void> {
    await this.checkOwner(repo, id);
    await this.remove(id);
  }

  private async remove(id: string): Promise<void> {
    this.live.delete(id);
    await fsp.rm(this.dir(id), { recursive: true, force: true });
  }

  /** Ids of all sessions on disk. */
  async list(): Promise<string[]> {
    return (await readdirOrEmpty(path.join(this.root, 'uploads'))).filter(isValidUploadId);
  }

  /** Removes a session regardless of owner (for purging stale uploads). */
  async purge(id: string): Promise<void> {
    if (isValidUploadId(id)) await this.remove(id);
  }
}
