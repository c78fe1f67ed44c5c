// applyLayer: extracts an OCI layer (tar, optionally gzip/zstd) into a directory that will be an
// overlayfs lower layer, converting OCI whiteouts to overlayfs ones, and returns the layer's
// diffID (sha256 of the uncompressed tar).
//
// Contract with the caller: targetDir is an empty directory that only this call writes to (a
// fresh snapshot). Everything that exists below it was therefore created by this call, which is
// what lets the extractor track what it made in memory instead of lstat'ing parents (faster, and
// no TOCTOU with the tree). On any failure (a refused entry, a corrupt stream, a syscall error)
// the contents of targetDir are removed before the promise rejects; targetDir itself stays.
//
// Safety: entry names and hardlink targets must be relative, without "..", and must not pass
// through a symlink or non-directory made earlier in this layer; hardlink targets must be entries
// of this layer. Symlink *targets* are stored verbatim and never followed while extracting.
// Refusals are InvalidParameter errors naming the entry.
import * as fs from 'node:fs';
import { createHash, Hash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, invalidParameter, systemError } from '../common/errors';
import { layerCreate, layerFinish, layerOpen, layerWrite, lsetxattr, mknod, type LayerFileAttrs } from '../native';
import { decompressionStages } from './compression';
import { PaxRecords, xattrsOf } from './pax';
import { ThreadedExtraction } from './extract-thread';
import { TarHeader, TarReader, TarSink } from './reader';

export interface ApplyOptions {
  /** Do not chown entries (rootless use): files stay owned by the extracting user. */
  ignoreOwnership?: boolean;
}

export interface ApplyResult {
  /** sha256 of the uncompressed tar stream. */
  diffID: string;
  /** Size in bytes of the uncompressed tar stream. */
  size: number;
}

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

type Kind = 'dir' | 'file' | 'symlink' | 'other';

const { O_RDONLY, O_DIRECTORY, S_IFCHR, S_IFBLK, S_IFIFO } = fs.constants;
const EMPTY = Buffer.alloc(0);

function refuse(name: string, why: string): BerthError {
  return invalidParameter(`refusing to extract layer entry ${JSON.stringify(name)}: ${why}`);
}

/** A name needing no normalisation: no "", "." or ".." component, not absolute. */
const PLAIN_NAME = /^(?!\/)(?!.*(?:^|\/)\.{0,2}(?:\/|$))/s;

/** Normalises a tar path to "a/b/c" (no "", ".", leading "./" or trailing "/"); refuses unsafe ones. */
function cleanPath(name: string, entryName: string, what: string): string {
  // Most names are "./a/b" or "a/b" (GNU tar, docker): checked by one regular expression.
  let start = 0;
  while (name.startsWith('./', start)) start += 2;
  let end = name.length;
  if (end > start + 1 && name.charCodeAt(end - 1) === 0x2f) end--;
  const plain = start === 0 && end === name.length ? name : name.slice(start, end);
  if (plain !== '' && PLAIN_NAME.test(plain)) return plain;
  if (name.startsWith('/')) throw refuse(entryName, `${what} is an absolute path`);
  const parts = name.split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw refuse(entryName, `${what} contains a ".." component`);
    out.push(p);
  }
  return out.join('/');
}

function dirnameOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function basenameOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

/** The reader has applied pax mtime and atime (with their fractions) to the header already. */
function timesOf(header: TarHeader): { atime: number; mtime: number } {
  return { atime: header.atime ?? header.mtime, mtime: header.mtime };
}

/** Writes the entries a TarReader parses into a fresh layer directory (see the file comment). */
export class LayerWriter implements TarSink {
  /** Every path made by this layer, relative to root ("" is the root itself). */
  private readonly made = new Map<string, Kind>([['', 'dir']]);
  /** Directory times to set once everything below them is written. */
  private readonly dirTimes = new Map<string, { atime: number; mtime: number }>();
  private readonly chown: boolean;

  /** The process umask, which open(2) and mkdir(2) apply to the modes they are given. */
  private readonly umask: number;

  constructor(private readonly root: string, opts: ApplyOptions) {
    this.chown = !opts.ignoreOwnership;
    this.umask = process.umask();
  }

  /**
   * Whether a file just created with this mode has it exactly, so that a chmod would change
   * nothing: one syscall less per file. Special bits are always set by chmod (and after chown,
   * which would clear them).
   */
  private umaskKeeps(mode: number): boolean {
    return mode <= 0o777 && (mode & this.umask) === 0;
  }

  /** An fd on the root, which regular files are created relative to (opened with the first). */
  private rootFd = -1;

  private dirFd(): number {
    if (this.rootFd < 0) this.rootFd = fs.openSync(this.root, O_RDONLY | O_DIRECTORY);
    return this.rootFd;
  }

  private closeRoot(): void {
    const fd = this.rootFd;
    this.rootFd = -1;
    if (fd >= 0) fs.closeSync(fd);
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  /** Makes sure every ancestor of rel is a directory of this layer, creating missing ones. */
  private ensureParents(rel: string, entryName: string): void {
    const parent = dirnameOf(rel);
    const kind = this.made.get(parent);
    if (kind === 'dir') return;
    if (kind !== undefined) throw refuse(entryName, `its parent ${JSON.stringify(parent)} is a ${kind === 'symlink' ? 'symlink' : 'non-directory'} in this layer`);
    // Walk down from the top: a missing ancestor is created like docker does (0755, root-owned).
    let prefix = '';
    for (const part of parent.split('/')) {
      prefix = prefix === '' ? part : `${prefix}/${part}`;
      const k = this.made.get(prefix);
      if (k === 'dir') continue;
      if (k !== undefined) throw refuse(entryName, `its parent ${JSON.stringify(prefix)} is a ${k === 'symlink' ? 'symlink' : 'non-directory'} in this layer`);
      fs.mkdirSync(this.abs(prefix), 0o755);
      this.made.set(prefix, 'dir');
    }
  }

  /** Removes what an earlier entry of this layer put at rel (later entries win, as in tar). */
  private removeExisting(rel: string): void {
    const kind = this.made.get(rel);
    if (kind === undefined) return;
    if (kind === 'dir') {
      fs.rmSync(this.abs(rel), { recursive: true, force: true });
      const prefix = `${rel}/`;
      for (const key of [...this.made.keys()]) if (key.startsWith(prefix)) this.made.delete(key);
      for (const key of [...this.dirTimes.keys()]) if (key === rel || key.startsWith(prefix)) this.dirTimes.delete(key);
    } else {
      fs.unlinkSync(this.abs(rel));
    }
    this.made.delete(rel);
  }

  private setOwner(file: string, header: TarHeader): void {
    // Files are created root-owned; skip the syscall in the common case.
    if (this.chown && (header.uid !== 0 || header.gid !== 0)) fs.lchownSync(file, header.uid, header.gid);
  }

  private setXattrs(file: string, pax: PaxRecords | undefined, entryName: string): void {
    const xattrs = xattrsOf(pax);
    if (!xattrs) return;
    for (const [name, value] of xattrs) {
      // A layer must not steer overlayfs itself (redirects, metacopy, opaque markers): only the
      // OCI whiteout files may create overlay markers.
      if (name.startsWith('trusted.overlay.')) continue;
      try {
        lsetxattr(file, name, value);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // As dockerd: a file system without support for that namespace is not a reason to fail.
        if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') continue;
        throw new Error(`setting xattr ${name} on layer entry ${JSON.stringify(entryName)}: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /**
   * The regular file whose body is coming: its fd once open (-1 before). A body that arrives in
   * one piece (most files: the input comes in 1 MiB pieces) is written with the whole file in one
   * native call; a longer one is opened, written piece by piece and finished at its end.
   */
  private current: { fd: number; rel: string; header: TarHeader } | undefined;

  entry(header: TarHeader): void {
    const rel = this.begin(header);
    if (rel !== undefined) this.current = { fd: -1, rel, header };
  }

  data(chunk: Buffer): void {
    const cur = this.current;
    if (cur === undefined) return; // the body of a link or device entry: nothing to write
    if (cur.fd < 0) {
      if (chunk.length === cur.header.size) {
        this.current = undefined;
        this.createFile(cur.rel, cur.header, chunk);
        return;
      }
      cur.fd = layerOpen(this.dirFd(), cur.rel, cur.header.mode & 0o7777, this.abs(cur.rel));
    }
    layerWrite(cur.fd, chunk, this.abs(cur.rel));
  }

  end(): void {
    const cur = this.current;
    if (cur === undefined) return;
    this.current = undefined;
    if (cur.fd < 0) {
      this.createFile(cur.rel, cur.header, EMPTY);
      return;
    }
    // Closes the fd whatever happens.
    layerFinish(cur.fd, this.fileAttrs(cur.header), this.abs(cur.rel));
    this.fileXattrs(cur.rel, cur.header);
  }

  /** Closes what is open (the extraction failed or ended). */
  abort(): void {
    const cur = this.current;
    this.current = undefined;
    try {
      if (cur !== undefined && cur.fd >= 0) fs.closeSync(cur.fd);
    } finally {
      this.closeRoot();
    }
  }

  /** Owner, mode and times of a regular file; see finishFile in the native addon. */
  private fileAttrs(header: TarHeader): LayerFileAttrs {
    // Files are created root-owned: chown only when that is not right. open(2)'s mode went
    // through the umask; when the umask took nothing away it is exact and needs no chmod.
    const chown = this.chown && (header.uid !== 0 || header.gid !== 0);
    const mode = header.mode & 0o7777;
    const t = timesOf(header);
    return { uid: chown ? header.uid : -1, gid: chown ? header.gid : -1, chmod: this.umaskKeeps(mode) ? -1 : mode, atime: t.atime, mtime: t.mtime };
  }

  /** xattrs go last: chown clears file capabilities (and they do not change the times). */
  private fileXattrs(rel: string, header: TarHeader): void {
    if (header.pax && xattrsOf(header.pax)) this.setXattrs(this.abs(rel), header.pax, header.name);
  }

  private createFile(rel: string, header: TarHeader, body: Buffer): void {
    layerCreate(this.dirFd(), rel, header.mode & 0o7777, body, this.fileAttrs(header), this.abs(rel));
    this.fileXattrs(rel, header);
  }

  /**
   * Handles one entry; for a regular file, makes room for it and returns its clean name (the file
   * itself is created with its body).
   */
  private begin(header: TarHeader): string | undefined {
    const entryName = header.name;
    const pax = header.pax;
    const rel = cleanPath(entryName, entryName, 'the name');
    const base = basenameOf(rel);
    const mode = header.mode & 0o7777;

    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.whiteout(rel, base, header, entryName);
      return undefined;
    }

    switch (header.type) {
      case 'file':
      case 'contiguous-file': {
        if (rel === '') throw refuse(entryName, 'a non-directory cannot replace the layer root');
        this.removeExisting(rel);
        this.ensureParents(rel, entryName);
        this.made.set(rel, 'file');
        return rel;
      }
      case 'directory': {
        let exact = false;
        if (this.made.get(rel) !== 'dir') {
          this.removeExisting(rel);
          this.ensureParents(rel, entryName);
          fs.mkdirSync(this.abs(rel), mode);
          this.made.set(rel, 'dir');
          exact = this.umaskKeeps(mode);
        }
        const file = this.abs(rel);
        this.setOwner(file, header);
        if (!exact) fs.chmodSync(file, mode);
        this.setXattrs(file, pax, entryName);
        this.dirTimes.set(rel, timesOf(header));
        return undefined;
      }
      case 'symlink': {
        if (rel === '') throw refuse(entryName, 'a non-directory cannot replace the layer root');
        this.removeExisting(rel);
        this.ensureParents(rel, entryName);
        const file = this.abs(rel);
        fs.symlinkSync(header.linkname, file);
        this.made.set(rel, 'symlink');
        this.setOwner(file, header);
        this.setXattrs(file, pax, entryName);
        const t = timesOf(header);
        fs.lutimesSync(file, t.atime, t.mtime);
        return undefined;
      }
      case 'link': {
        if (rel === '') throw refuse(entryName, 'a non-directory cannot replace the layer root');
        const target = cleanPath(header.linkname, entryName, 'the hardlink target');
        const kind = this.made.get(target);
        if (kind === undefined) throw refuse(entryName, `hardlink target ${JSON.stringify(header.linkname)} does not exist in this layer`);
        if (kind === 'dir') throw refuse(entryName, `hardlink target ${JSON.stringify(header.linkname)} is a directory`);
        // Entries still recorded have all-directory ancestors (replacing an ancestor forgets its
        // subtree), but check anyway: this is what keeps link(2) inside the root.
        let prefix = dirnameOf(target);
        while (prefix !== '') {
          if (this.made.get(prefix) !== 'dir') throw refuse(entryName, `hardlink target ${JSON.stringify(header.linkname)} goes through a non-directory`);
          prefix = dirnameOf(prefix);
        }
        if (target === rel) return undefined;
        this.removeExisting(rel);
        this.ensureParents(rel, entryName);
        fs.linkSync(this.abs(target), this.abs(rel));
        this.made.set(rel, kind);
        return undefined;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        if (rel === '') throw refuse(entryName, 'a non-directory cannot replace the layer root');
        this.removeExisting(rel);
        this.ensureParents(rel, entryName);
        const file = this.abs(rel);
        const type = header.type === 'fifo' ? S_IFIFO : header.type === 'block-device' ? S_IFBLK : S_IFCHR;
        mknod(file, type | mode, header.devmajor, header.devminor);
        this.made.set(rel, 'other');
        this.setOwner(file, header);
        fs.chmodSync(file, mode); // mknod's mode went through the umask
        this.setXattrs(file, pax, entryName);
        const t = timesOf(header);
        fs.lutimesSync(file, t.atime, t.mtime);
        return undefined;
      }
      default:
        throw refuse(entryName, `unsupported tar entry type (${header.type})`);
    }
  }

  private whiteout(rel: string, base: string, header: TarHeader, entryName: string): void {
    if (base === WHITEOUT_OPAQUE) {
      // The parent directory hides everything below it in lower layers.
      this.ensureParents(rel, entryName);
      lsetxattr(this.abs(dirnameOf(rel)), OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) return; // other aufs metadata (.wh..wh.plnk, ...): not content
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw refuse(entryName, 'invalid whiteout name');
    const target = dirnameOf(rel) === '' ? hidden : `${dirnameOf(rel)}/${hidden}`;
    this.removeExisting(target);
    this.ensureParents(target, entryName);
    const file = this.abs(target);
    mknod(file, S_IFCHR, 0, 0); // overlayfs' whiteout: a 0/0 character device
    this.made.set(target, 'other');
    this.setOwner(file, header);
  }

  /** Directory times last: writing entries below a directory changes its mtime. */
  finish(): void {
    this.closeRoot();
    for (const [rel, t] of this.dirTimes) {
      if (this.made.get(rel) === 'dir') fs.utimesSync(this.abs(rel), t.atime, t.mtime);
    }
  }
}

/** Removes everything inside dir (not dir itself). */
export function emptyDirectory(dir: string): void {
  for (const name of fs.readdirSync(dir)) fs.rmSync(`${dir}/${name}`, { recursive: true, force: true });
}

export interface ExtractorOptions extends ApplyOptions {
  /**
   * Hash the tar stream (default true). A caller that hashes the same bytes anyway (a content
   * writer storing an uncompressed layer, whose digest is then the diffID) turns this off.
   */
  digest?: boolean;
  /** Parse and write on the calling thread instead of an extraction thread (default false). */
  inline?: boolean;
}

/** Bytes handed to the extraction thread and not yet written, before write() waits. */
const MAX_IN_FLIGHT = 8 << 20;

/**
 * A writable stream that extracts the uncompressed tar written to it into targetDir (see the
 * contract at the top of this file). The parsing and the writes run on a pooled extraction
 * thread (extract-thread.ts), a bounded number of bytes behind the stream, so the thread that
 * feeds it (HTTP, gunzip, hashing, storing the blob) works meanwhile; the stream finishes only
 * once every entry is on disk. With inline, each chunk is written synchronously in write()
 * instead. On failure it stops and closes what it had open but leaves the partial tree:
 * emptying or removing targetDir is the caller's job (applyLayer empties it; a snapshot is
 * simply removed), and the caller must wait for stop() (or 'close') before it does, since the
 * thread may still be finishing a write until then.
 */
export class LayerExtractor extends Writable {
  private readonly local: { writer: LayerWriter; reader: TarReader } | undefined;
  private readonly thread: ThreadedExtraction | undefined;
  private readonly hash: Hash | undefined;
  private bytes = 0;

  constructor(targetDir: string, opts: ExtractorOptions = {}) {
    super({ highWaterMark: 4 << 20 });
    const root = targetDir.replace(/\/+$/, '') || '/';
    if (opts.inline) {
      const writer = new LayerWriter(root, opts);
      this.local = { writer, reader: new TarReader(writer) };
    } else {
      this.thread = new ThreadedExtraction(root, opts, (err) => this.destroy(err));
    }
    this.hash = opts.digest === false ? undefined : createHash('sha256');
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.take([chunk], chunk.length, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    let n = 0;
    const bufs = chunks.map((c) => { n += c.chunk.length; return c.chunk; });
    this.take(bufs, n, cb);
  }

  /** Whether takeBatch() passes batches over shared memory to a thread (rather than parsing them in the call). */
  get threaded(): boolean {
    return this.thread !== undefined;
  }

  /**
   * Takes bytes beside the stream interface (the caller then only end()s the stream): a buffer
   * over a SharedArrayBuffer goes to the extraction thread without a copy; done runs once
   * nothing reads it any more (at once for other buffers, which are copied or parsed in the
   * call). Returns a promise when the caller should wait before handing more (too much in
   * flight). A failure destroys the stream, as one in write() would.
   */
  takeBatch(batch: Buffer, done: () => void): Promise<void> | undefined {
    if (this.destroyed) {
      done();
      return undefined;
    }
    try {
      if (this.hash) this.hash.update(batch);
      this.bytes += batch.length;
      if (this.local) {
        this.local.reader.write(batch);
        done();
        return undefined;
      }
      const t = this.thread!;
      if (t.failure) throw t.failure;
      t.writeShared(batch, done);
      return t.inFlight <= MAX_IN_FLIGHT ? undefined : t.waitBelow(MAX_IN_FLIGHT);
    } catch (err) {
      done();
      this.destroy(err as Error);
      return undefined;
    }
  }

  private take(chunks: Buffer[], n: number, cb: (err?: Error | null) => void): void {
    try {
      if (this.hash) for (const c of chunks) this.hash.update(c);
      this.bytes += n;
      if (this.local) {
        for (const c of chunks) this.local.reader.write(c);
        cb();
        return;
      }
      const t = this.thread!;
      if (t.failure) throw t.failure;
      t.write(chunks);
      if (t.inFlight <= MAX_IN_FLIGHT) cb();
      else t.waitBelow(MAX_IN_FLIGHT).then(() => cb(t.failure), cb);
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.thread) {
      this.thread.end().then(() => cb(), cb);
      return;
    }
    try {
      this.local!.reader.finish();
      this.local!.writer.finish();
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.thread) {
      // 'close' (and so stop()) waits until the thread will write nothing more.
      this.thread.abort().then(() => cb(err), () => cb(err));
      return;
    }
    try {
      this.local!.writer.abort();
    } catch (closeErr) {
      err ??= closeErr as Error;
    }
    cb(err);
  }

  /**
   * Destroys the stream (if it is not closed already) and resolves once nothing more will be
   * written to the target: then the partial tree may be removed.
   */
  stop(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
    this.destroy();
    return closed;
  }

  /** Size (and, unless turned off, sha256) of the tar stream written so far. */
  result(): { diffID?: string; size: number } {
    return { diffID: this.hash ? `sha256:${this.hash.copy().digest('hex')}` : undefined, size: this.bytes };
  }
}

/**
 * The error to report for a failed extraction: refusals as they are, a syscall failure (ENOSPC,
 * EIO, ...) as the daemon's problem, and anything else (zlib, tar format) as bad layer data.
 */
export function extractionError(err: unknown): Error {
  if (err instanceof BerthError) return err;
  if (typeof (err as NodeJS.ErrnoException).syscall === 'string') return systemError(`failed to apply layer: ${(err as Error).message}`, err);
  return invalidParameter(`failed to apply layer: ${(err as Error).message}`);
}

export async function applyLayer(input: Readable, targetDir: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const extractor = new LayerExtractor(targetDir, opts);
  try {
    const { stages } = await decompressionStages(input);
    await pipeline([...stages, extractor]);
  } catch (err) {
    input.destroy();
    await extractor.stop();
    try {
      emptyDirectory(targetDir);
    } catch (cleanupErr) {
      throw new Error(`${(err as Error).message} (and removing the partial layer failed: ${(cleanupErr as Error).message})`, { cause: err });
    }
    throw extractionError(err);
  }
  const { diffID, size } = extractor.result();
  return { diffID: diffID!, size };
}
