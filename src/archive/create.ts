// Tar creation: deterministic archives of directory trees (export, save, commit) and OCI layers
// from overlayfs upper directories (commit, diff).
//
// The writer is berth's own rather than tar-stream's pack for two reasons: PAX xattr records must
// carry binary values (file capabilities), which tar-stream's PAX encoder cannot, and the output
// must be byte-for-byte a function of the tree (sorted names, whole-second mtimes, no atime/ctime,
// no user/group names), so that the same tree always gives the same digest.
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { llistxattr, lgetxattr } from '../native';
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
  linkname?: string;
  devmajor?: number;
  devminor?: number;
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

function encodeUstar(h: Header, split: { prefix: string; name: string }, linkname: string): Buffer {
  const buf = Buffer.alloc(BLOCK);
  buf.write(split.name, 0, 100, 'latin1');
  writeOctal(buf, h.mode & 0o7777, 100, 8);
  writeOctal(buf, h.uid, 108, 8);
  writeOctal(buf, h.gid, 116, 8);
  writeOctal(buf, h.size, 124, 12);
  writeOctal(buf, h.mtime, 136, 12);
  buf.write(h.type, 156, 1, 'latin1');
  buf.write(linkname, 157, 100, 'latin1');
  buf.write('ustar\x0000', 257, 8, 'latin1');
  writeOctal(buf, h.devmajor ?? 0, 329, 8);
  writeOctal(buf, h.devminor ?? 0, 337, 8);
  buf.write(split.prefix, 345, 155, 'latin1');
  buf.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i];
  buf.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  buf[154] = 0;
  buf[155] = 0x20;
  return buf;
}

/** Zeros the padding is cut from; callers copy it (Batcher.add), never keep or change it. */
const ZEROS = Buffer.alloc(BLOCK);

function padding(size: number): Buffer | undefined {
  const rem = size % BLOCK;
  return rem === 0 ? undefined : ZEROS.subarray(0, BLOCK - rem);
}

/** The header blocks (a PAX header first when needed) for one entry. */
function encodeHeader(h: Header, xattrs: [string, Buffer][]): Buffer[] {
  const records: [string, string | Buffer][] = [];
  let split = splitName(h.name);
  if (!split) {
    records.push(['path', h.name]);
    // Any ASCII stand-in works: readers take the name from the PAX record.
    split = { prefix: '', name: h.name.replace(/[^\x20-\x7e]/g, '_').slice(-100) };
  }
  let linkname = h.linkname ?? '';
  if (!isAscii(linkname) || linkname.length > 100) {
    records.push(['linkpath', linkname]);
    linkname = linkname.replace(/[^\x20-\x7e]/g, '_').slice(0, 100);
  }
  const fixed = { ...h };
  if (h.uid > MAX_OCTAL_8) { records.push(['uid', String(h.uid)]); fixed.uid = 0; }
  if (h.gid > MAX_OCTAL_8) { records.push(['gid', String(h.gid)]); fixed.gid = 0; }
  if (h.size > MAX_SIZE_12) { records.push(['size', String(h.size)]); fixed.size = 0; }
  for (const [name, value] of xattrs) records.push([XATTR_PREFIX + name, value]);
  const out: Buffer[] = [];
  if (records.length > 0) {
    // Sorted records keep the PAX body independent of the order llistxattr happens to return.
    records.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const body = encodePax(records);
    const paxHeader: Header = { name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: fixed.mtime, type: 'x' };
    out.push(encodeUstar(paxHeader, { prefix: '', name: 'PaxHeader' }, ''), body);
    const pad = padding(body.length);
    if (pad) out.push(pad);
  }
  out.push(encodeUstar(fixed, split, linkname));
  return out;
}

function devNumbers(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

function readXattrs(file: string): [string, Buffer][] {
  let names: string[];
  try {
    names = llistxattr(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return [];
    throw err;
  }
  const out: [string, Buffer][] = [];
  for (const name of names.sort()) {
    // overlayfs' own bookkeeping is not content; applyLayer ignores these too.
    if (name.startsWith('trusted.overlay.')) continue;
    const value = lgetxattr(file, name);
    if (value !== null) out.push([name, value]);
  }
  return out;
}

/**
 * Packs the archive into ~1 MiB chunks so the consumer sees few, large writes. File bodies are
 * read straight into the chunk being packed: no copy between reading and sending.
 */
class Batcher {
  private buf = Buffer.allocUnsafe(BATCH);
  private used = 0;
  /** Copies buf in; returns true when a chunk is full and take() should be called. */
  add(buf: Buffer): boolean {
    let off = 0;
    while (off < buf.length) {
      if (this.used === this.buf.length) this.grow(buf.length - off);
      const n = buf.copy(this.buf, this.used, off);
      this.used += n;
      off += n;
    }
    return this.used >= BATCH;
  }
  /** Room left in the current chunk. */
  get free(): number {
    return this.buf.length - this.used;
  }
  /** Reads up to want bytes of fd at pos into the current chunk (zero-filled past the end of file). */
  readFrom(fd: number, want: number, pos: number): void {
    const n = Math.min(want, this.free);
    let got = 0;
    while (got < n) {
      const r = fs.readSync(fd, this.buf, this.used + got, n - got, pos + got);
      if (r === 0) break;
      got += r;
    }
    if (got < n) this.buf.fill(0, this.used + got, this.used + n);
    this.used += n;
  }
  take(): Buffer {
    const out = this.buf.subarray(0, this.used);
    this.buf = Buffer.allocUnsafe(BATCH);
    this.used = 0;
    return out;
  }
  /** Only reached with a full chunk nobody took: make room rather than lose order. */
  private grow(more: number): void {
    const bigger = Buffer.allocUnsafe(this.buf.length + Math.max(more, BATCH));
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  }
  get full(): boolean {
    return this.used >= BATCH;
  }
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

async function* generateTar(root: string, mode: Mode, opts: TarOptions & { rootName?: string }): AsyncGenerator<Buffer> {
  const batch = new Batcher();
  const firstPathOfInode = new Map<string, string>();
  const mtimeOf = (st: fs.Stats): number => Math.max(0, Math.floor(st.mtimeMs / 1000));
  const ownerOf = (st: fs.Stats): { uid: number; gid: number } => (opts.mapOwner ? opts.mapOwner(st.uid, st.gid) : { uid: st.uid, gid: st.gid });
  const xattrsOf = opts.xattrs === false ? (): [string, Buffer][] => [] : readXattrs;

  /**
   * Adds the header(s) of the entry for abs, named rel (in the directory parentRel as name);
   * says whether a body must follow or the entry is a directory to descend into.
   */
  const emit = (abs: string, rel: string, parentRel: string, name: string, st: fs.Stats): 'body' | 'dir' | undefined => {
    const base = { mode: st.mode & 0o7777, ...ownerOf(st), mtime: mtimeOf(st) };
    if (st.isDirectory()) {
      for (const b of encodeHeader({ ...base, name: `${rel}/`, size: 0, type: '5' }, xattrsOf(abs))) batch.add(b);
      if (mode === 'overlay' && lgetxattr(abs, OVERLAY_OPAQUE_XATTR)?.toString() === 'y') {
        // An opaque directory hides the lower layers' contents: OCI says so with this marker.
        for (const b of encodeHeader({ ...base, name: `${rel}/${WHITEOUT_OPAQUE}`, mode: 0, size: 0, type: '0' }, [])) batch.add(b);
      }
      return 'dir';
    }
    if (st.isCharacterDevice() && mode === 'overlay' && st.rdev === 0) {
      // overlayfs whiteout (0/0 char device) → OCI whiteout file.
      const wh = parentRel === '' ? `${WHITEOUT_PREFIX}${name}` : `${parentRel}/${WHITEOUT_PREFIX}${name}`;
      for (const b of encodeHeader({ ...base, name: wh, mode: 0, size: 0, type: '0' }, [])) batch.add(b);
      return undefined;
    }
    if (st.isSocket()) return undefined; // tar cannot represent sockets; docker skips them too
    const key = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? firstPathOfInode.get(key) : undefined;
    if (first !== undefined) {
      for (const b of encodeHeader({ ...base, name: rel, size: 0, type: '1', linkname: first }, [])) batch.add(b);
      return undefined;
    }
    if (st.nlink > 1) firstPathOfInode.set(key, rel);
    const xattrs = xattrsOf(abs);
    if (st.isSymbolicLink()) {
      for (const b of encodeHeader({ ...base, name: rel, size: 0, type: '2', linkname: fs.readlinkSync(abs) }, xattrs)) batch.add(b);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const { major, minor } = devNumbers(st.rdev);
      const type = st.isCharacterDevice() ? '3' : '4';
      for (const b of encodeHeader({ ...base, name: rel, size: 0, type, devmajor: major, devminor: minor }, xattrs)) batch.add(b);
    } else if (st.isFIFO()) {
      for (const b of encodeHeader({ ...base, name: rel, size: 0, type: '6' }, xattrs)) batch.add(b);
    } else {
      for (const b of encodeHeader({ ...base, name: rel, size: st.size, type: '0' }, xattrs)) batch.add(b);
      return 'body';
    }
    return undefined;
  };

  // Depth-first, names sorted at every level: the archive order is a function of the tree.
  const stack: Frame[] = [];
  if (opts.rootName) {
    // The root is an entry itself, under the name asked for (whatever its own name is).
    const st = fs.lstatSync(root);
    if (!opts.filter || opts.filter(opts.rootName)) {
      const kind = emit(root, opts.rootName, '', opts.rootName, st);
      if (kind === 'body') yield* fileBody(root, st.size, batch);
      else if (kind === 'dir') stack.push({ abs: root, rel: opts.rootName, names: fs.readdirSync(root).sort(), next: 0 });
    }
  } else {
    if (opts.includeRoot) {
      const st = fs.lstatSync(root);
      for (const b of encodeHeader({ name: './', mode: st.mode, ...ownerOf(st), size: 0, mtime: mtimeOf(st), type: '5' }, xattrsOf(root))) batch.add(b);
    }
    stack.push({ abs: root, rel: '', names: fs.readdirSync(root).sort(), next: 0 });
  }
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next >= top.names.length) {
      stack.pop();
      continue;
    }
    const name = top.names[top.next++];
    const rel = top.rel === '' ? name : `${top.rel}/${name}`;
    if (opts.filter && !opts.filter(rel)) continue;
    const abs = `${top.abs}/${name}`;
    const st = fs.lstatSync(abs);
    const kind = emit(abs, rel, top.rel, name, st);
    if (kind === 'body') yield* fileBody(abs, st.size, batch);
    else if (kind === 'dir') stack.push({ abs, rel, names: fs.readdirSync(abs).sort(), next: 0 });
    if (batch.full) yield batch.take();
  }
  batch.add(Buffer.alloc(2 * BLOCK)); // end of archive
  yield batch.take();
}

/** Exactly size bytes of the file (zero-padded if it shrank meanwhile), then block padding. */
async function* fileBody(abs: string, size: number, batch: Batcher): AsyncGenerator<Buffer> {
  const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    let done = 0;
    while (done < size) {
      if (batch.free === 0) yield batch.take();
      const want = Math.min(size - done, batch.free);
      batch.readFrom(fd, want, done);
      done += want;
      if (batch.full) yield batch.take();
    }
  } finally {
    fs.closeSync(fd);
  }
  const pad = padding(size);
  if (pad) batch.add(pad);
}

/**
 * The archive is made a few chunks ahead of its consumer: a socket holds only ~200 KB, so with
 * one 1 MiB chunk buffered the writer would wait for the reader to drain it, then the reader for
 * the writer to read the next files, taking turns on a tree of small files instead of overlapping.
 */
const READ_AHEAD = { objectMode: false, highWaterMark: 4 * BATCH };

/**
 * A tar of the path p itself, its entry named name (a directory's entries below it, "name/..."):
 * what `cp` sends, which names the copy after its destination. p may be a file, a symlink (stored
 * as one) or a directory; to follow a symlink, pass its resolved path.
 */
export function tarPath(p: string, name: string, opts: TarOptions = {}): Readable {
  if (!name || name.includes('/')) throw new Error(`invalid root entry name ${JSON.stringify(name)}`);
  return Readable.from(generateTar(p.replace(/\/+$/, '') || '/', 'plain', { ...opts, rootName: name }), READ_AHEAD);
}

/** A deterministic tar of the tree under dir. */
export function tarDirectory(dir: string, opts: TarOptions = {}): Readable {
  return Readable.from(generateTar(dir.replace(/\/+$/, '') || '/', 'plain', opts), READ_AHEAD);
}

/**
 * An OCI layer tar of an overlayfs upper directory: whiteout devices become ".wh.<name>" files and
 * opaque directories get a ".wh..wh..opq" entry.
 */
export function overlayUpperToLayer(upperDir: string, opts: TarOptions = {}): Readable {
  return Readable.from(generateTar(upperDir.replace(/\/+$/, '') || '/', 'overlay', opts), READ_AHEAD);
}
