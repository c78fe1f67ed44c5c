// Tar creation: deterministic archives of directory trees (export, save, commit) and OCI layers
// from overlayfs upper directories (commit, diff).
//
// The writer is berth's own rather than tar-stream's pack for two reasons: PAX xattr records must
// carry binary values (file capabilities), which tar-stream's PAX encoder cannot, and the output
// must be byte-for-byte a function of the tree (sorted names, whole-second mtimes, no atime/ctime,
// no user/group names), so that the same tree always gives the same digest.
import * as fs from 'node:fs';
import { finished, Readable, type Writable } from 'node:stream';
import { EntryStat, lgetxattr, lstatXattrs, sendfile, waitWritable } from '../native';
import { encodePax, XATTR_PREFIX } from './pax';
import { OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './apply';

export interface TarOptions {
  /** Return false to leave a path (relative, "a/b") and everything below it out. */
  filter?: (relPath: string) => boolean;
  /** Include a "./" entry for the root directory itself (off by default, as docker's layers). */
  includeRoot?: boolean;
  /** Translates the owner written in the headers (host IDs → container IDs under --userns-remap). */
  mapOwner?: (uid: number, gid: number) => { uid: number; gid: number };
  /** Read extended attributes into PAX records (default true). */
  xattrs?: boolean;
}

const BLOCK = 512;
const BATCH = 1 << 20;
const MAX_OCTAL_8 = 0o7777777; // 7 digits fit an 8-byte field
const MAX_SIZE_12 = 0o77777777777; // 11 digits fit the 12-byte size field

type TypeFlag = '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x';

interface Header {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: TypeFlag;
  linkname: string;
  devmajor: number;
  devminor: number;
}

/** A header with every field set, in one order: one object shape for all entries (V8's ICs stay monomorphic). */
function header(name: string, mode: number, uid: number, gid: number, size: number, mtime: number, type: TypeFlag, linkname = '', devmajor = 0, devminor = 0): Header {
  return { name, mode, uid, gid, size, mtime, type, linkname, devmajor, devminor };
}

/** width-1 zero-padded octal digits and a NUL, written byte by byte (no string per field). */
function writeOctal(buf: Buffer, value: number, offset: number, width: number): void {
  buf[offset + width - 1] = 0;
  for (let i = offset + width - 2; i >= offset; i--) {
    buf[i] = 0x30 + (value % 8);
    value = Math.floor(value / 8);
  }
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** Splits name into ustar prefix/name fields, or returns undefined when it does not fit. */
function splitName(name: string): { prefix: string; name: string } | undefined {
  if (!isAscii(name)) return undefined;
  if (name.length <= 100) return { prefix: '', name };
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length > 155) return undefined;
    if (rest.length <= 100 && rest.length > 0) return { prefix, name: rest };
  }
  return undefined;
}

function encodeUstar(h: Header, split: { prefix: string; name: string }, linkname: string, into?: Buffer): Buffer {
  const buf = into ? into.fill(0) : Buffer.alloc(BLOCK);
  buf.write(split.name, 0, 100, 'latin1');
  writeOctal(buf, h.mode & 0o7777, 100, 8);
  writeOctal(buf, h.uid, 108, 8);
  writeOctal(buf, h.gid, 116, 8);
  writeOctal(buf, h.size, 124, 12);
  writeOctal(buf, h.mtime, 136, 12);
  buf.write(h.type, 156, 1, 'latin1');
  buf.write(linkname, 157, 100, 'latin1');
  buf.write('ustar\x0000', 257, 8, 'latin1');
  writeOctal(buf, h.devmajor, 329, 8);
  writeOctal(buf, h.devminor, 337, 8);
  buf.write(split.prefix, 345, 155, 'latin1');
  buf.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i];
  buf.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  buf[154] = 0;
  buf[155] = 0x20;
  return buf;
}

/** Zeros the padding is cut from; callers copy it into their chunk, never keep or change it. */
const ZEROS = Buffer.alloc(BLOCK);

function padding(size: number): Buffer | undefined {
  const rem = size % BLOCK;
  return rem === 0 ? undefined : ZEROS.subarray(0, BLOCK - rem);
}

/**
 * The header blocks (a PAX header first when needed) for one entry; the ustar block is written
 * into `into` when given (the producer's scratch block: one small ArrayBuffer per entry less).
 */
function encodeHeader(h: Header, xattrs: [string, Buffer][], into?: Buffer): Buffer[] {
  const records: [string, string | Buffer][] = [];
  let split = splitName(h.name);
  if (!split) {
    records.push(['path', h.name]);
    // Any ASCII stand-in works: readers take the name from the PAX record.
    split = { prefix: '', name: h.name.replace(/[^\x20-\x7e]/g, '_').slice(-100) };
  }
  let linkname = h.linkname;
  if (!isAscii(linkname) || linkname.length > 100) {
    records.push(['linkpath', linkname]);
    linkname = linkname.replace(/[^\x20-\x7e]/g, '_').slice(0, 100);
  }
  const fixed = h.uid > MAX_OCTAL_8 || h.gid > MAX_OCTAL_8 || h.size > MAX_SIZE_12 ? { ...h } : h;
  if (h.uid > MAX_OCTAL_8) { records.push(['uid', String(h.uid)]); fixed.uid = 0; }
  if (h.gid > MAX_OCTAL_8) { records.push(['gid', String(h.gid)]); fixed.gid = 0; }
  if (h.size > MAX_SIZE_12) { records.push(['size', String(h.size)]); fixed.size = 0; }
  for (const [name, value] of xattrs) records.push([XATTR_PREFIX + name, value]);
  const out: Buffer[] = [];
  if (records.length > 0) {
    // Sorted records keep the PAX body independent of the order llistxattr happens to return.
    records.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const body = encodePax(records);
    const paxHeader = header('PaxHeader', 0o644, 0, 0, body.length, fixed.mtime, 'x');
    out.push(encodeUstar(paxHeader, { prefix: '', name: 'PaxHeader' }, ''), body);
    const pad = padding(body.length);
    if (pad) out.push(pad);
  }
  out.push(encodeUstar(fixed, split, linkname, into));
  return out;
}

/** The values of the attributes named (lstatXattrs' list), sorted by name; overlayfs' own left out. */
function readXattrs(file: string, names: string[] | undefined): [string, Buffer][] {
  if (!names) return [];
  const out: [string, Buffer][] = [];
  for (const name of names.sort()) {
    // overlayfs' own bookkeeping is not content; applyLayer ignores these too.
    if (name.startsWith('trusted.overlay.')) continue;
    const value = lgetxattr(file, name);
    if (value !== null) out.push([name, value]);
  }
  return out;
}

type Mode = 'plain' | 'overlay';

interface Frame {
  /** The directory on disk. */
  abs: string;
  /** Its name in the archive ('' for the root of a tarDirectory). */
  rel: string;
  names: string[];
  next: number;
}

const { S_IFMT, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK, O_RDONLY, O_NOFOLLOW } = fs.constants;

/** Chunks a consumer may hold before the producer waits (see TarProducer.writeTo). */
const AHEAD = 4;

/**
 * Bodies from this size on go by sendfile in writeToSocket (smaller ones are copied into the
 * chunks: a sendfile and a separate socket write per small file would cost more than the copy).
 */
const SENDFILE_MIN = 64 * 1024;

/** A file body writeToSocket sends by sendfile; the file is closed by the sender. */
interface FilePart {
  fd: number;
  size: number;
}

/**
 * Makes the archive synchronously, one ~1 MiB chunk per next(): headers and file bodies are
 * written straight into the chunk (bodies read with pread into it, so there is no copy between
 * the page cache and the socket write). Chunks handed back through recycle() are reused: a fresh
 * 1 MiB buffer per chunk cost a page fault per 4 KiB of it plus the GC work, as much CPU as
 * reading the files (0.3 CPU-s per GB).
 */
export class TarProducer {
  private readonly st = new Float64Array(EntryStat.Length);
  private readonly stack: Frame[] = [];
  private readonly firstPathOfInode = new Map<string, string>();
  private readonly wantXattrs: boolean;
  private started = false;
  private ended = false;
  private finished = false;
  /** Archive bytes that come before anything else: headers (and the end blocks) not yet in a chunk. */
  private readonly pending: Buffer[] = [];
  private pendingOff = 0;
  /** The file whose body is being copied. */
  private body: { fd: number; size: number; done: number } | undefined;
  private readonly spare: Buffer[] = [];
  /** Archive bytes handed out so far (by next(), or nextPart() as chunks and files). */
  bytes = 0;
  /** Bodies at least this big stop next() at their start, for nextPart() to hand out as files. */
  private fileMin = Infinity;
  /** The ustar block of the entry being added: copied into a chunk before the next entry. */
  private readonly scratch = Buffer.alloc(BLOCK);

  constructor(private readonly root: string, private readonly mode: Mode, private readonly opts: TarOptions & { rootName?: string }) {
    this.wantXattrs = opts.xattrs !== false;
  }

  /** The next chunk of the archive (at most 1 MiB; only the last one is shorter), null at the end. */
  next(): Buffer | null {
    if (this.finished) return null;
    const chunk = this.spare.pop() ?? Buffer.allocUnsafe(BATCH);
    let used = 0;
    try {
      while (used < BATCH) {
        if (this.pending.length > 0) {
          const p = this.pending[0];
          const n = p.copy(chunk, used, this.pendingOff);
          used += n;
          this.pendingOff += n;
          if (this.pendingOff === p.length) {
            this.pending.shift();
            this.pendingOff = 0;
          }
        } else if (this.body) {
          if (this.body.done === 0 && this.body.size >= this.fileMin) break;
          used += this.readBody(chunk, used);
        } else if (this.ended) {
          this.finished = true;
          break;
        } else if (!this.step()) {
          this.pending.push(Buffer.alloc(2 * BLOCK)); // end of archive
          this.ended = true;
        }
      }
    } catch (err) {
      this.close();
      throw err;
    }
    if (used === 0) {
      if (this.spare.length < AHEAD) this.spare.push(chunk);
      return null;
    }
    this.bytes += used;
    return chunk.subarray(0, used);
  }

  /**
   * Like next(), but a body of at least fileMin bytes comes as its open file when it is next: the
   * caller sends its size bytes (zeros for any it no longer has) and closes it.
   */
  private nextPart(): Buffer | FilePart | null {
    for (;;) {
      const b = this.body;
      if (b && b.done === 0 && b.size >= this.fileMin && this.pending.length === 0) {
        this.body = undefined;
        const pad = padding(b.size);
        if (pad) this.pending.push(pad);
        this.bytes += b.size;
        return { fd: b.fd, size: b.size };
      }
      const chunk = this.next();
      // An empty chunk: next() stopped at a file body right away (the loop above takes it).
      if (chunk === null && this.body && !this.finished) continue;
      return chunk;
    }
  }

  /**
   * Writes the whole archive to fd, a connected non-blocking socket nothing else writes to
   * meanwhile (the caller's duplicate of an HTTP response's socket): headers and small files from
   * the chunks, big file bodies by sendfile, waiting on Node's loop whenever the socket is full.
   * Rejects when the socket fails (the client went away); fd stays open either way.
   */
  async writeToSocket(fd: number): Promise<void> {
    this.fileMin = SENDFILE_MIN;
    try {
      for (;;) {
        const part = this.nextPart();
        if (part === null) return;
        if (Buffer.isBuffer(part)) {
          await writeAllToSocket(fd, part);
          this.recycle(part);
        } else {
          try {
            await sendFileToSocket(fd, part);
          } finally {
            fs.closeSync(part.fd);
          }
        }
      }
    } finally {
      this.close();
    }
  }

  /** Gives back a chunk from next() that its consumer no longer needs, for reuse. */
  recycle(chunk: Buffer): void {
    if (chunk.byteOffset === 0 && chunk.buffer.byteLength === BATCH && this.spare.length < AHEAD) {
      this.spare.push(Buffer.from(chunk.buffer, 0, BATCH));
    }
  }

  /** Stops: closes the file being read, if any; next() returns null from now on. */
  close(): void {
    this.finished = true;
    const b = this.body;
    this.body = undefined;
    if (b) fs.closeSync(b.fd);
  }

  /**
   * Writes the whole archive to dest, AHEAD chunks at most in its hands, each reused once dest
   * has written it (its write callback: the bytes are in the kernel by then). Resolves when dest
   * has finished; rejects (and stops reading) when dest fails or closes early.
   */
  writeTo(dest: Writable): Promise<void> {
    return new Promise((resolve, reject) => {
      let inFlight = 0;
      let stopped = false;
      finished(dest, (err) => {
        stopped = true;
        this.close();
        if (err) reject(err);
        else resolve();
      });
      const pump = (): void => {
        try {
          while (!stopped && inFlight < AHEAD) {
            const chunk = this.next();
            if (chunk === null) {
              stopped = true;
              dest.end();
              return;
            }
            inFlight++;
            dest.write(chunk, (err) => {
              inFlight--;
              if (err) return;
              this.recycle(chunk);
              pump();
            });
          }
        } catch (err) {
          stopped = true;
          dest.destroy(err as Error);
        }
      };
      pump();
    });
  }

  /** A Readable of the archive (its chunks are not reused: a stream cannot say when they are free). */
  stream(): Readable {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const producer = this;
    return new Readable({
      // A socket holds only ~200 KB: with one chunk buffered the producer would wait for the
      // reader to drain it, then the reader for the producer, taking turns instead of overlapping.
      highWaterMark: AHEAD * BATCH,
      read() {
        let chunk: Buffer | null;
        try {
          chunk = producer.next();
        } catch (err) {
          this.destroy(err as Error);
          return;
        }
        this.push(chunk);
      },
      destroy(err, cb) {
        try {
          producer.close();
        } catch {}
        cb(err);
      },
    });
  }

  private push(...bufs: Buffer[]): void {
    for (const b of bufs) this.pending.push(b);
  }

  /** Copies what fits of the current body into chunk at off; returns the bytes added. */
  private readBody(chunk: Buffer, off: number): number {
    const b = this.body!;
    const want = Math.min(b.size - b.done, BATCH - off);
    let got = 0;
    while (got < want) {
      const r = fs.readSync(b.fd, chunk, off + got, want - got, b.done + got);
      if (r === 0) break;
      got += r;
    }
    // A file that shrank meanwhile is padded with zeros to the size its header gave.
    if (got < want) chunk.fill(0, off + got, off + want);
    b.done += want;
    if (b.done === b.size) {
      this.body = undefined;
      fs.closeSync(b.fd);
      const pad = padding(b.size);
      if (pad) this.pending.push(pad);
    }
    return want;
  }

  /** Adds the next entry's headers (and opens its body); false when there is none left. */
  private step(): boolean {
    if (!this.started) {
      this.started = true;
      this.startRoot();
      return true;
    }
    const filter = this.opts.filter;
    while (this.stack.length > 0) {
      const top = this.stack[this.stack.length - 1];
      if (top.next >= top.names.length) {
        this.stack.pop();
        continue;
      }
      const name = top.names[top.next++];
      const rel = top.rel === '' ? name : `${top.rel}/${name}`;
      if (filter && !filter(rel)) continue;
      this.entry(`${top.abs}/${name}`, rel, top.rel, name);
      return true;
    }
    return false;
  }

  private startRoot(): void {
    const { root, opts } = this;
    if (opts.rootName) {
      // The root is an entry itself, under the name asked for (whatever its own name is).
      if (!opts.filter || opts.filter(opts.rootName)) this.entry(root, opts.rootName, '', opts.rootName);
      return;
    }
    if (opts.includeRoot) {
      const xattrs = readXattrs(root, lstatXattrs(root, this.st, this.wantXattrs));
      const st = this.st;
      this.push(...encodeHeader(this.header('./', st[EntryStat.Mode], 0, '5'), xattrs));
    }
    this.stack.push({ abs: root, rel: '', names: fs.readdirSync(root).sort(), next: 0 });
  }

  /** A header with the owner and mtime of the entry last stat'ed. */
  private header(name: string, mode: number, size: number, type: TypeFlag, linkname = '', devmajor = 0, devminor = 0): Header {
    const st = this.st;
    let uid = st[EntryStat.Uid];
    let gid = st[EntryStat.Gid];
    if (this.opts.mapOwner) ({ uid, gid } = this.opts.mapOwner(uid, gid));
    return header(name, mode, uid, gid, size, Math.max(0, st[EntryStat.MtimeSec]), type, linkname, devmajor, devminor);
  }

  /** The header(s) of the entry for abs, named rel (in the directory parentRel as name). */
  private entry(abs: string, rel: string, parentRel: string, name: string): void {
    const st = this.st;
    const names = lstatXattrs(abs, st, this.wantXattrs);
    const fileMode = st[EntryStat.Mode];
    const type = fileMode & S_IFMT;
    const mode = fileMode & 0o7777;
    if (type === S_IFDIR) {
      this.push(...encodeHeader(this.header(`${rel}/`, mode, 0, '5'), readXattrs(abs, names), this.scratch));
      if (this.mode === 'overlay' && lgetxattr(abs, OVERLAY_OPAQUE_XATTR)?.toString() === 'y') {
        // An opaque directory hides the lower layers' contents: OCI says so with this marker.
        this.push(...encodeHeader(this.header(`${rel}/${WHITEOUT_OPAQUE}`, 0, 0, '0'), []));
      }
      this.stack.push({ abs, rel, names: fs.readdirSync(abs).sort(), next: 0 });
      return;
    }
    if (type === S_IFCHR && this.mode === 'overlay' && st[EntryStat.RdevMajor] === 0 && st[EntryStat.RdevMinor] === 0) {
      // overlayfs whiteout (0/0 char device) → OCI whiteout file.
      const wh = parentRel === '' ? `${WHITEOUT_PREFIX}${name}` : `${parentRel}/${WHITEOUT_PREFIX}${name}`;
      this.push(...encodeHeader(this.header(wh, 0, 0, '0'), [], this.scratch));
      return;
    }
    if (type === S_IFSOCK) return; // tar cannot represent sockets; docker skips them too
    const nlink = st[EntryStat.Nlink];
    let key = '';
    if (nlink > 1) {
      key = `${st[EntryStat.Dev]}:${st[EntryStat.Ino]}`;
      const first = this.firstPathOfInode.get(key);
      if (first !== undefined) {
        this.push(...encodeHeader(this.header(rel, mode, 0, '1', first), [], this.scratch));
        return;
      }
    }
    const xattrs = readXattrs(abs, names);
    if (type === S_IFLNK) {
      this.push(...encodeHeader(this.header(rel, mode, 0, '2', fs.readlinkSync(abs)), xattrs, this.scratch));
    } else if (type === S_IFCHR || type === S_IFBLK) {
      const devType = type === S_IFCHR ? '3' : '4';
      this.push(...encodeHeader(this.header(rel, mode, 0, devType, '', st[EntryStat.RdevMajor], st[EntryStat.RdevMinor]), xattrs, this.scratch));
    } else if (type === S_IFIFO) {
      this.push(...encodeHeader(this.header(rel, mode, 0, '6'), xattrs, this.scratch));
    } else {
      const size = st[EntryStat.Size];
      // Opened before its header goes out, so a file that cannot be read fails the archive
      // without a header it would have no body for.
      const fd = size > 0 ? fs.openSync(abs, O_RDONLY | O_NOFOLLOW) : -1;
      this.push(...encodeHeader(this.header(rel, mode, size, '0'), xattrs, this.scratch));
      if (fd >= 0) this.body = { fd, size, done: 0 };
    }
    if (nlink > 1) this.firstPathOfInode.set(key, rel);
  }
}

/**
 * Waits for room in the socket fd after a write found it full. A failed poll (the peer gone)
 * resolves too, for the next write to report the socket's own error; should that write still
 * find the socket full, the poll's error is thrown.
 */
async function roomIn(fd: number, lastPoll: { errno: number }): Promise<void> {
  if (lastPoll.errno) throw Object.assign(new Error(`the connection failed (poll: errno ${lastPoll.errno})`), { code: 'ECONNRESET' });
  lastPoll.errno = await waitWritable(fd);
}

/** Writes all of buf to the non-blocking socket fd, waiting for room when it is full. */
async function writeAllToSocket(fd: number, buf: Buffer): Promise<void> {
  const lastPoll = { errno: 0 };
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
      lastPoll.errno = 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      await roomIn(fd, lastPoll);
    }
  }
}

/** Errors of a sendfile(2) the file's file system does not support (splice). */
const NO_SENDFILE = new Set(['EINVAL', 'ENOSYS', 'EOPNOTSUPP', 'ENOTSUP']);

/** Sends file.size bytes of the file to the socket fd; a file that shrank meanwhile is padded with zeros. */
async function sendFileToSocket(fd: number, file: FilePart): Promise<void> {
  const lastPoll = { errno: 0 };
  let done = 0;
  while (done < file.size) {
    let n: number;
    try {
      n = sendfile(fd, file.fd, done, file.size - done);
    } catch (err) {
      if (!NO_SENDFILE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      await copyFileToSocket(fd, file, done);
      return;
    }
    if (n < 0) {
      await roomIn(fd, lastPoll);
      continue;
    }
    lastPoll.errno = 0;
    if (n > 0) {
      done += n;
    } else {
      const zeros = Math.min(file.size - done, BATCH);
      await writeAllToSocket(fd, Buffer.alloc(zeros));
      done += zeros;
    }
  }
}

/** The rest of the file from offset, read and written (a file system that cannot splice). */
async function copyFileToSocket(fd: number, file: FilePart, offset: number): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(BATCH, file.size - offset));
  for (let done = offset; done < file.size;) {
    const want = Math.min(buf.length, file.size - done);
    let got = 0;
    while (got < want) {
      const r = fs.readSync(file.fd, buf, got, want - got, done + got);
      if (r === 0) break;
      got += r;
    }
    buf.fill(0, got, want); // shrank meanwhile: zeros up to the size its header gave
    await writeAllToSocket(fd, buf.subarray(0, want));
    done += want;
  }
}

/**
 * A tar of the path p itself, its entry named name (a directory's entries below it, "name/..."):
 * what `cp` sends, which names the copy after its destination. p may be a file, a symlink (stored
 * as one) or a directory; to follow a symlink, pass its resolved path.
 */
export function tarPath(p: string, name: string, opts: TarOptions = {}): Readable {
  return tarPathProducer(p, name, opts).stream();
}

/** tarPath's archive as a producer (TarProducer.writeTo reuses its chunks). */
export function tarPathProducer(p: string, name: string, opts: TarOptions = {}): TarProducer {
  if (!name || name.includes('/')) throw new Error(`invalid root entry name ${JSON.stringify(name)}`);
  return new TarProducer(p.replace(/\/+$/, '') || '/', 'plain', { ...opts, rootName: name });
}

/** A deterministic tar of the tree under dir. */
export function tarDirectory(dir: string, opts: TarOptions = {}): Readable {
  return tarDirectoryProducer(dir, opts).stream();
}

/** tarDirectory's archive as a producer (TarProducer.writeTo reuses its chunks). */
export function tarDirectoryProducer(dir: string, opts: TarOptions = {}): TarProducer {
  return new TarProducer(dir.replace(/\/+$/, '') || '/', 'plain', opts);
}

/**
 * An OCI layer tar of an overlayfs upper directory: whiteout devices become ".wh.<name>" files and
 * opaque directories get a ".wh..wh..opq" entry.
 */
export function overlayUpperToLayer(upperDir: string, opts: TarOptions = {}): Readable {
  return new TarProducer(upperDir.replace(/\/+$/, '') || '/', 'overlay', opts).stream();
}
