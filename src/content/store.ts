// The content store: immutable blobs addressed by their sha256 digest, as containerd keeps them.
//
// Layout under root:
//   blobs/sha256/<hex>          committed blobs (read-only files; visible only once verified)
//   ingest/<sha256(ref)>/data   bytes of an ingest in progress, named by the caller's ref
//   ingest/<sha256(ref)>/ref    the ref itself (so status listings can show it)
//
// An ingest writes into its own directory, and commit verifies size and digest, fsyncs, and renames
// the data file into blobs/ (same file system, so the rename is atomic). A crash therefore never
// leaves a partial blob visible: at worst an ingest directory remains, which a later writer with
// the same ref resumes (re-hashing what is there) or which is removed once stale.
//
// Within one process, writers on the same ref are serialised (the second waits for the first to
// commit, abort or close). Two ingests of the same blob under different refs are both safe: each
// verifies its own data, and the second commit finds the blob present and just drops its copy.
// Only one process (the daemon) may own a root.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash, Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { invalidParameter, notFound, hasCode } from '../common/errors';
import { fsyncDir, mkdirp, writeFileAtomic } from '../common/fsutil';
import { Digest, digestHex, validateDigest } from './digest';
import { FileDigest } from './filedigest';
import { BLOB_BOUNCE_BYTES, writeBlob } from '../native';

export interface Info {
  digest: Digest;
  size: number;
}

export interface ReadRange {
  /** First byte offset (inclusive). */
  start?: number;
  /** Last byte offset (inclusive), as fs.createReadStream takes it. */
  end?: number;
}

/** Reads committed content. */
export interface Provider {
  info(digest: Digest): Promise<Info | undefined>;
  /** A stream of the blob (or a byte range of it); rejects with NotFound when it is absent. */
  createReadStream(digest: Digest, range?: ReadRange): Promise<Readable>;
  /** Path of the committed blob file, for zero-copy reads (sendfile, mmap, passing to tools). */
  blobPath(digest: Digest): Promise<string>;
  readBlob(digest: Digest): Promise<Buffer>;
}

export interface Expected {
  digest?: Digest;
  size?: number;
}

export interface IngestStatus {
  ref: string;
  offset: number;
  updatedAt: Date;
}

/** An open ingest. Not safe for concurrent write() calls: await each one. */
export interface ContentWriter {
  readonly ref: string;
  /** Bytes held so far (after a resume, what the earlier attempt had written). */
  readonly offset: number;
  write(chunk: Uint8Array): Promise<void>;
  /** Digest of the bytes written so far. */
  digest(): Promise<Digest>;
  /** Drops what was written so far and starts again at offset 0 (for sources that cannot resume). */
  truncate(): Promise<void>;
  /**
   * Verifies size and digest (against commit's and writer()'s expectations), then makes the blob
   * visible. On a mismatch the ingest's data is removed and an InvalidParameter error thrown.
   */
  commit(expected?: Expected): Promise<Digest>;
  /** Removes the ingest's data. */
  abort(): Promise<void>;
  /** Releases the writer but keeps the data, so that a later writer(ref) resumes. */
  close(): Promise<void>;
}

export interface WriterOptions {
  /**
   * Hash on a worker thread, reading back what was written (filedigest.ts), instead of on the
   * caller's thread as each chunk is written. For big blobs: it costs a message per write and a
   * round trip at commit, and spares the main thread the hashing.
   */
  hashInBackground?: boolean;
  /**
   * Start writing the data back to disk while it is still being written (an fdatasync after
   * every SYNC_AHEAD_BYTES, not waited for), so that commit's fsync finds little left to do. For
   * big blobs ingested alongside other work (a layer extracted as it is stored): the writeback
   * then overlaps that work instead of holding up the commit at the end.
   */
  syncAhead?: boolean;
  /**
   * Write the blob around the page cache (O_DIRECT for the aligned bulk, native/blobwrite.c),
   * falling back to buffered writes where the file system refuses. For big blobs nobody reads
   * soon (a layer unpacked while it is stored): their pages would only crowd out other data, and
   * finding fresh pages for them costs more kernel time than the direct write.
   */
  uncached?: boolean;
}

/** How much a syncAhead writer writes between two early syncs. */
const SYNC_AHEAD_BYTES = 32 << 20;

/** Writes content. */
export interface Ingester {
  writer(ref: string, expected?: Expected, opts?: WriterOptions): Promise<ContentWriter>;
}

export interface ContentStoreOptions {
  /** Ingests untouched for longer than this are removed when the store opens. Default 24 h. */
  staleIngestMs?: number;
}

const DEFAULT_STALE_INGEST_MS = 24 * 60 * 60 * 1000;

export class ContentStore implements Provider, Ingester {
  private readonly blobDir: string;
  private readonly ingestDir: string;
  /** Per-ref lock: the tail of the queue of writers waiting for that ref. */
  private readonly refLocks = new Map<string, Promise<void>>();

  constructor(readonly root: string, opts: ContentStoreOptions = {}) {
    this.blobDir = path.join(root, 'blobs', 'sha256');
    this.ingestDir = path.join(root, 'ingest');
    mkdirp(this.blobDir);
    mkdirp(this.ingestDir);
    this.removeStaleIngests(opts.staleIngestMs ?? DEFAULT_STALE_INGEST_MS);
  }

  private pathOf(digest: Digest): string {
    return path.join(this.blobDir, digestHex(digest));
  }

  private ingestPathOf(ref: string): string {
    return path.join(this.ingestDir, createHash('sha256').update(ref).digest('hex'));
  }

  async info(digest: Digest): Promise<Info | undefined> {
    try {
      const st = await fsp.stat(this.pathOf(digest));
      return { digest, size: st.size };
    } catch (err) {
      if (hasCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async blobPath(digest: Digest): Promise<string> {
    const p = this.pathOf(digest);
    try {
      await fsp.access(p);
    } catch (err) {
      if (hasCode(err, 'ENOENT')) throw notFound(`content digest ${digest}: not found`);
      throw err;
    }
    return p;
  }

  async createReadStream(digest: Digest, range: ReadRange = {}): Promise<Readable> {
    // Open first so that a missing blob is a NotFound rejection here, not a later stream error.
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.pathOf(digest), 'r');
    } catch (err) {
      if (hasCode(err, 'ENOENT')) throw notFound(`content digest ${digest}: not found`);
      throw err;
    }
    // 1 MiB reads: layer extraction measured markedly faster on large chunks than on 64 KiB ones.
    return fh.createReadStream({ start: range.start, end: range.end, autoClose: true, highWaterMark: 1 << 20 });
  }

  async readBlob(digest: Digest): Promise<Buffer> {
    try {
      return await fsp.readFile(this.pathOf(digest));
    } catch (err) {
      if (hasCode(err, 'ENOENT')) throw notFound(`content digest ${digest}: not found`);
      throw err;
    }
  }

  async delete(digest: Digest): Promise<void> {
    try {
      await fsp.unlink(this.pathOf(digest));
    } catch (err) {
      if (hasCode(err, 'ENOENT')) throw notFound(`content digest ${digest}: not found`);
      throw err;
    }
  }

  async list(): Promise<Info[]> {
    const out: Info[] = [];
    for (const name of (await fsp.readdir(this.blobDir)).sort()) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      try {
        const st = await fsp.stat(path.join(this.blobDir, name));
        out.push({ digest: `sha256:${name}`, size: st.size });
      } catch (err) {
        if (!hasCode(err, 'ENOENT')) throw err;
      }
    }
    return out;
  }

  /** Ingests in progress or left for resumption. */
  async ingests(): Promise<IngestStatus[]> {
    const out: IngestStatus[] = [];
    for (const name of await fsp.readdir(this.ingestDir)) {
      const dir = path.join(this.ingestDir, name);
      try {
        const ref = await fsp.readFile(path.join(dir, 'ref'), 'utf8');
        const st = await fsp.stat(path.join(dir, 'data'));
        out.push({ ref, offset: st.size, updatedAt: st.mtime });
      } catch (err) {
        if (!hasCode(err, 'ENOENT')) throw err;
      }
    }
    return out;
  }

  /** Stores a small blob held in memory (manifests, configs); returns its digest. */
  async writeBlob(data: Uint8Array, expected: Expected = {}): Promise<Digest> {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    if (await this.info(digest)) {
      if (expected.digest !== undefined && expected.digest !== digest) {
        throw invalidParameter(`unexpected commit digest ${digest}, expected ${expected.digest}`);
      }
      return digest;
    }
    const w = await this.writer(`write-blob-${digest}`, expected);
    try {
      await w.truncate();
      await w.write(data);
      return await w.commit();
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  /** Copies a stream into the store under ref (from offset 0) and commits it. */
  async ingestStream(ref: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, expected: Expected = {}): Promise<Digest> {
    const w = await this.writer(ref, expected);
    try {
      await w.truncate();
      for await (const chunk of source) await w.write(chunk);
      return await w.commit();
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  async writer(ref: string, expected: Expected = {}, opts: WriterOptions = {}): Promise<ContentWriter> {
    if (typeof ref !== 'string' || ref === '') throw invalidParameter('ingest ref must be a non-empty string');
    if (expected.digest !== undefined) validateDigest(expected.digest);
    if (expected.size !== undefined && (!Number.isSafeInteger(expected.size) || expected.size < 0)) {
      throw invalidParameter(`invalid expected size ${expected.size}`);
    }
    const release = await this.lockRef(ref);
    try {
      const dir = this.ingestPathOf(ref);
      mkdirp(dir);
      const refFile = path.join(dir, 'ref');
      if (!fs.existsSync(refFile)) writeFileAtomic(refFile, ref);
      const dataFile = path.join(dir, 'data');
      const fh = await fsp.open(dataFile, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
      // Resume: re-hash what an earlier attempt left (the hash state itself cannot be saved).
      let hasher: Hasher;
      let offset = 0;
      let direct: fsp.FileHandle | undefined;
      try {
        if (opts.hashInBackground) {
          offset = (await fh.stat()).size;
          hasher = new BackgroundHasher(dataFile, offset);
        } else {
          const hash = createHash('sha256');
          const buf = Buffer.allocUnsafe(1 << 20);
          for (;;) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
            if (bytesRead === 0) break;
            hash.update(buf.subarray(0, bytesRead));
            offset += bytesRead;
          }
          hasher = new InlineHasher(hash);
        }
        direct = opts.uncached ? await openDirect(dataFile) : undefined;
      } catch (err) {
        await fh.close();
        throw err;
      }
      return new Writer(this, ref, dir, dataFile, fh, hasher, offset, expected, release, opts.syncAhead === true, direct);
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Waits for earlier writers of ref to finish; returns the release function. */
  private async lockRef(ref: string): Promise<() => void> {
    const previous = this.refLocks.get(ref);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => { release = resolve; });
    const tail = (previous ?? Promise.resolve()).then(() => mine);
    this.refLocks.set(ref, tail);
    if (previous) await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      if (this.refLocks.get(ref) === tail) this.refLocks.delete(ref);
    };
  }

  /** Called by a writer's commit once its data is verified and synced. */
  async publish(dataFile: string, digest: Digest): Promise<void> {
    const target = this.pathOf(digest);
    if (fs.existsSync(target)) {
      // The same blob was committed meanwhile (another ref): keep the existing file.
      await fsp.rm(dataFile, { force: true });
      return;
    }
    await fsp.chmod(dataFile, 0o444);
    await fsp.rename(dataFile, target);
    fsyncDir(this.blobDir);
  }

  private removeStaleIngests(maxAgeMs: number): void {
    const now = Date.now();
    for (const name of fs.readdirSync(this.ingestDir)) {
      const dir = path.join(this.ingestDir, name);
      let mtime = 0;
      try {
        mtime = fs.statSync(path.join(dir, 'data')).mtimeMs;
      } catch {
        // No data file: a writer crashed before writing; nothing to resume.
      }
      if (now - mtime > maxAgeMs) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** How a writer keeps the digest of what it has written. */
interface Hasher {
  /**
   * chunk is about to be written at offset at: a hasher that hashes it from memory meanwhile
   * returns a promise that settles once it no longer reads chunk. written() follows either way.
   */
  hashing?(chunk: Uint8Array, at: number): Promise<void> | undefined;
  /** chunk has been written, ending at offset upTo. */
  written(chunk: Uint8Array, upTo: number): void;
  /** Digest of the first size bytes; the hasher is not used again after final. */
  digest(size: number, final: boolean): Promise<Digest>;
  /** Starts again at offset 0. */
  reset(): void;
  /** Drops the hasher's state. */
  drop(): void;
}

class InlineHasher implements Hasher {
  constructor(private hash: Hash) {}

  written(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }

  digest(_size: number, final: boolean): Promise<Digest> {
    return Promise.resolve(`sha256:${(final ? this.hash : this.hash.copy()).digest('hex')}`);
  }

  reset(): void {
    this.hash = createHash('sha256');
  }

  drop(): void {}
}

/** The worker is told of progress in steps of at least this much (the final digest catches up). */
const ADVANCE_STEP = 4 << 20;

class BackgroundHasher implements Hasher {
  private job: FileDigest;
  private told = 0;

  constructor(private readonly file: string, offset: number) {
    this.job = new FileDigest(file);
    this.advance(offset);
  }

  private advance(upTo: number): void {
    this.job.advance(upTo);
    this.told = upTo;
  }

  hashing(chunk: Uint8Array, at: number): Promise<void> | undefined {
    const p = this.job.hashBytes(chunk, at);
    // Hashed from memory: nothing to read back up to its end.
    if (p !== undefined) this.told = at + chunk.byteLength;
    return p;
  }

  written(_chunk: Uint8Array, upTo: number): void {
    if (upTo - this.told >= ADVANCE_STEP) this.advance(upTo);
  }

  async digest(size: number, final: boolean): Promise<Digest> {
    const d = await this.job.digest(size);
    if (!final) {
      // A digest ends the worker's job: a writer that goes on hashes its file again.
      this.job = new FileDigest(this.file);
      this.advance(size);
    }
    return d;
  }

  reset(): void {
    this.job.drop();
    this.job = new FileDigest(this.file);
    this.told = 0;
  }

  drop(): void {
    this.job.drop();
  }
}

/**
 * The data file opened a second time with O_DIRECT, for an uncached writer; undefined where the
 * file system does not do direct I/O (tmpfs before Linux 6.6, some FUSE and network ones).
 */
async function openDirect(dataFile: string): Promise<fsp.FileHandle | undefined> {
  try {
    return await fsp.open(dataFile, fs.constants.O_WRONLY | fs.constants.O_DIRECT);
  } catch (err) {
    if (hasCode(err, 'EINVAL') || hasCode(err, 'EOPNOTSUPP')) return undefined;
    throw err;
  }
}

class Writer implements ContentWriter {
  private done = false;

  constructor(
    private readonly store: ContentStore,
    readonly ref: string,
    private readonly dir: string,
    private readonly dataFile: string,
    private readonly fh: fsp.FileHandle,
    private readonly hasher: Hasher,
    private bytes: number,
    private readonly expected: Expected,
    private readonly release: () => void,
    private readonly syncAhead: boolean,
    /** The data file opened with O_DIRECT (an uncached writer), until the file system refuses. */
    private direct: fsp.FileHandle | undefined,
  ) {}

  /** writeBlob's aligned staging buffer, made at the first direct write. */
  private bounce: Buffer | undefined;

  /** The early sync in flight (syncAhead), and how far the last one started reached. */
  private syncing: Promise<void> | undefined;
  private syncStartedAt = 0;
  /** An early sync's failure: after a failed fsync the kernel may report the next one clean. */
  private syncFailure: unknown;

  private syncEarly(): void {
    if (!this.syncAhead || this.syncing !== undefined || this.bytes - this.syncStartedAt < SYNC_AHEAD_BYTES) return;
    this.syncStartedAt = this.bytes;
    this.syncing = this.fh.datasync().then(
      () => { this.syncing = undefined; },
      (err: unknown) => {
        this.syncFailure ??= err;
        this.syncing = undefined;
      },
    );
  }

  private async closeDirect(): Promise<void> {
    const direct = this.direct;
    this.direct = undefined;
    await direct?.close().catch(() => {});
  }

  /** Waits for an early sync in flight (the file is not closed under it); never rejects. */
  private async syncSettled(): Promise<void> {
    while (this.syncing !== undefined) await this.syncing;
  }

  get offset(): number {
    return this.bytes;
  }

  private checkOpen(): void {
    if (this.done) throw new Error(`content writer for ref ${this.ref} is closed`);
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.checkOpen();
    // A background hasher may hash a shared buffer while it is written (see filedigest.ts).
    const hashing = this.hasher.hashing?.(chunk, this.bytes);
    try {
      if (this.direct !== undefined) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        this.bounce ??= Buffer.allocUnsafeSlow(BLOB_BOUNCE_BYTES);
        if (!(await writeBlob(this.direct.fd, this.fh.fd, buf, this.bytes, this.bounce, this.dataFile))) await this.closeDirect();
      } else {
        let written = 0;
        while (written < chunk.byteLength) {
          const { bytesWritten } = await this.fh.write(chunk, written, chunk.byteLength - written, this.bytes + written);
          written += bytesWritten;
        }
      }
    } catch (err) {
      // The caller may reuse chunk once this settles: not while the worker still reads it.
      if (hashing !== undefined) {
        await hashing.catch(() => {});
        // It hashed bytes the file may not hold: a writer that goes on hashes the file again.
        this.hasher.reset();
      }
      throw err;
    }
    if (hashing !== undefined) await hashing;
    this.bytes += chunk.byteLength;
    this.hasher.written(chunk, this.bytes);
    this.syncEarly();
  }

  digest(): Promise<Digest> {
    this.checkOpen();
    return this.hasher.digest(this.bytes, false);
  }

  async truncate(): Promise<void> {
    this.checkOpen();
    await this.fh.truncate(0);
    this.hasher.reset();
    this.bytes = 0;
    this.syncStartedAt = 0;
  }

  async commit(expected: Expected = {}): Promise<Digest> {
    this.checkOpen();
    const wantSize = expected.size ?? this.expected.size;
    const wantDigest = expected.digest ?? this.expected.digest;
    if (wantDigest !== undefined) validateDigest(wantDigest);
    let problem: string | undefined;
    let digest: Digest | undefined;
    if (wantSize !== undefined && this.bytes !== wantSize) {
      problem = `unexpected commit size ${this.bytes}, expected ${wantSize}`;
    } else {
      try {
        // The sync runs while the hash is finished (on a worker, for a background hasher).
        [digest] = await Promise.all([this.hasher.digest(this.bytes, true), this.syncSettled().then(() => this.fh.sync())]);
        if (this.syncFailure !== undefined) throw this.syncFailure;
      } catch (err) {
        // Nothing wrong with the data as far as is known: keep it for a later writer.
        await this.close();
        throw err;
      }
      await this.closeDirect();
      if (wantDigest !== undefined && digest !== wantDigest) problem = `unexpected commit digest ${digest}, expected ${wantDigest}`;
    }
    if (problem !== undefined || digest === undefined) {
      await this.abort();
      throw invalidParameter(`failed to commit content for ref ${this.ref}: ${problem}`);
    }
    try {
      await this.fh.close();
      this.done = true;
      await this.store.publish(this.dataFile, digest);
      await fsp.rm(this.dir, { recursive: true, force: true });
    } finally {
      this.done = true;
      this.release();
    }
    return digest;
  }

  async abort(): Promise<void> {
    this.hasher.drop();
    if (!this.done) {
      this.done = true;
      await this.syncSettled();
      await this.closeDirect();
      await this.fh.close().catch(() => {});
    }
    try {
      await fsp.rm(this.dir, { recursive: true, force: true });
    } finally {
      this.release();
    }
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.hasher.drop();
    this.done = true;
    try {
      await this.syncSettled();
      await this.closeDirect();
      await this.fh.close();
    } finally {
      this.release();
    }
  }
}
