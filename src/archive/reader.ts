// A lean, synchronous, push-style tar reader for layer extraction. Bytes go in with write() as
// they arrive; headers and body slices come out through a TarSink, in order, before write()
// returns. Bodies are handed on as views of the input chunks (no copies), and nothing here
// allocates per entry beyond the header object: extraction of layers made of tens of thousands
// of small files spends its time in the kernel, not in the parser.
//
// Formats: ustar (with its name prefix), GNU (long names and link targets, base-256 numbers) and
// POSIX pax (per-entry and global records; path, linkpath, size, uid, gid, mtime, atime, and
// SCHILY.xattr.* kept as raw bytes, see pax.ts). Like tar-stream, which this replaces for
// extraction: zero blocks are skipped rather than ending the archive, a directory entry has no
// body whatever its size field says, and a "file" whose name ends in "/" is a directory (old tars).
import { decodePax, PaxRecords, RAW_XATTRS } from './pax';

export type TarEntryType =
  | 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file'
  | `unsupported type ${string}`;

export interface TarHeader {
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of body that follow the header. */
  size: number;
  /** Seconds since the epoch; fractional when a pax record said so. */
  mtime: number;
  /** Seconds since the epoch, when a pax record gave one. */
  atime?: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** The pax records that applied to this entry (global ones included), if any. */
  pax?: PaxRecords;
}

/** Receives what the reader parses. Throwing from any method fails the write() that caused it. */
export interface TarSink {
  /** A new entry; size bytes of body follow through data() calls, then end(). */
  entry(header: TarHeader): void;
  /** A piece of the current entry's body: a view of the input, valid during this call only. */
  data(chunk: Buffer): void;
  /** The current entry's body is complete. */
  end(): void;
}

const BLOCK = 512;
/** Largest pax or GNU long-name body accepted: names and xattrs, not file data. */
const MAX_META_SIZE = 4 << 20;

const enum State { Header, Body, Meta, Padding }

export class TarFormatError extends Error {}

/** Octal (NUL- or space-terminated) or GNU base-256 number field. */
function readNumber(buf: Buffer, offset: number, length: number, what: string): number {
  const first = buf[offset];
  if (first & 0x80) {
    // Base-256: a big-endian two's complement number after the marker bit; negative is refused.
    if (first === 0xff) throw new TarFormatError(`invalid tar header: negative ${what}`);
    let value = first & 0x7f;
    for (let i = 1; i < length; i++) {
      value = value * 256 + buf[offset + i];
      if (!Number.isSafeInteger(value)) throw new TarFormatError(`invalid tar header: ${what} too large`);
    }
    return value;
  }
  let i = offset;
  const end = offset + length;
  while (i < end && buf[i] === 0x20) i++;
  let value = 0;
  for (; i < end; i++) {
    const c = buf[i];
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new TarFormatError(`invalid tar header: bad ${what} field`);
    value = value * 8 + (c - 0x30);
  }
  return value;
}

/** A NUL-terminated UTF-8 string field. */
function readString(buf: Buffer, offset: number, length: number): string {
  let end = buf.indexOf(0, offset);
  if (end < 0 || end > offset + length) end = offset + length;
  return buf.toString('utf8', offset, end);
}

function isZeroBlock(buf: Buffer, offset: number): boolean {
  for (let i = offset; i < offset + BLOCK; i += 4) {
    if (buf.readUInt32LE(i) !== 0) return false;
  }
  return true;
}

/** Verifies the header checksum: unsigned, or the signed variant some old tars wrote. */
function checksumOK(buf: Buffer, offset: number): boolean {
  const stored = readNumber(buf, offset + 148, 8, 'checksum');
  // The checksum field itself counts as eight spaces. One header per entry: a branch-free loop
  // over the other bytes, and the signed sum only when the unsigned one does not match.
  let unsigned = 8 * 0x20;
  for (let i = offset; i < offset + 148; i++) unsigned += buf[i];
  for (let i = offset + 156; i < offset + BLOCK; i++) unsigned += buf[i];
  if (stored === unsigned) return true;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    const b = buf[offset + i];
    signed += b > 127 ? b - 256 : b;
  }
  return stored === signed;
}

function typeOf(flag: number): TarEntryType | 'pax' | 'pax-global' | 'gnu-long-name' | 'gnu-long-link' {
  switch (flag) {
    case 0: case 0x30: return 'file';
    case 0x31: return 'link';
    case 0x32: return 'symlink';
    case 0x33: return 'character-device';
    case 0x34: return 'block-device';
    case 0x35: return 'directory';
    case 0x36: return 'fifo';
    case 0x37: return 'contiguous-file';
    case 0x78: return 'pax'; // 'x'
    case 0x67: return 'pax-global'; // 'g'
    case 0x4c: return 'gnu-long-name'; // 'L'
    case 0x4b: return 'gnu-long-link'; // 'K'
    default: return `unsupported type ${JSON.stringify(String.fromCharCode(flag))}`;
  }
}

function parseDecimal(value: string, key: string): number {
  if (!/^\d+$/.test(value)) throw new TarFormatError(`invalid pax record ${key}=${JSON.stringify(value)}`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`invalid pax record ${key}=${JSON.stringify(value)}`);
  return n;
}

function parseTime(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const t = Number.parseFloat(value);
  return Number.isFinite(t) ? t : undefined;
}

export class TarReader {
  private state = State.Header;
  /** Body bytes of the current entry still to come (Body and Meta states). */
  private remaining = 0;
  /** Padding bytes still to skip after a body. */
  private padding = 0;
  /** A header split across writes. */
  private readonly partial = Buffer.alloc(BLOCK);
  private partialLength = 0;
  /** A pax or GNU long-name body being collected, and what it is. */
  private meta: Buffer[] = [];
  private metaType: 'pax' | 'pax-global' | 'gnu-long-name' | 'gnu-long-link' = 'pax';
  private metaSize = 0;
  private pending: { pax?: PaxRecords; longName?: string; longLink?: string } = {};
  private globalPax: PaxRecords | undefined;

  constructor(private readonly sink: TarSink) {}

  /** Parses a chunk; throws TarFormatError on a malformed archive, or what the sink threw. */
  write(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case State.Header: {
          if (this.partialLength > 0 || len - pos < BLOCK) {
            const n = Math.min(BLOCK - this.partialLength, len - pos);
            chunk.copy(this.partial, this.partialLength, pos, pos + n);
            this.partialLength += n;
            pos += n;
            if (this.partialLength < BLOCK) return;
            this.partialLength = 0;
            this.header(this.partial, 0);
          } else {
            this.header(chunk, pos);
            pos += BLOCK;
          }
          break;
        }
        case State.Body: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          // Leave the state first: a sink that throws must not leave us mid-body.
          if (this.remaining === 0) this.state = this.padding > 0 ? State.Padding : State.Header;
          this.sink.data(n === len && pos === 0 ? chunk : chunk.subarray(pos, pos + n));
          pos += n;
          if (this.remaining === 0) this.sink.end();
          break;
        }
        case State.Meta: {
          const n = Math.min(this.remaining, len - pos);
          this.meta.push(Buffer.from(chunk.subarray(pos, pos + n)));
          this.remaining -= n;
          pos += n;
          if (this.remaining === 0) {
            this.state = this.padding > 0 ? State.Padding : State.Header;
            this.finishMeta();
          }
          break;
        }
        case State.Padding: {
          const n = Math.min(this.padding, len - pos);
          this.padding -= n;
          pos += n;
          if (this.padding === 0) this.state = State.Header;
          break;
        }
      }
    }
  }

  /** The input ended: throws unless it ended between entries. */
  finish(): void {
    if (this.state === State.Header && this.partialLength === 0) return;
    if (this.state === State.Padding) return; // only the last entry's padding is missing
    throw new TarFormatError('unexpected end of tar data');
  }

  private header(buf: Buffer, off: number): void {
    if (isZeroBlock(buf, off)) return;
    if (!checksumOK(buf, off)) throw new TarFormatError('invalid tar header checksum (is the data a tar archive?)');
    const kind = typeOf(buf[off + 156]);
    const size = readNumber(buf, off + 124, 12, 'size');
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;

    if (kind === 'pax' || kind === 'pax-global' || kind === 'gnu-long-name' || kind === 'gnu-long-link') {
      if (size > MAX_META_SIZE) throw new TarFormatError(`tar ${kind} header of ${size} bytes is too large`);
      this.metaType = kind;
      this.meta = [];
      this.metaSize = size;
      this.remaining = size;
      this.padding = padding;
      if (size === 0) {
        this.state = State.Header;
        this.finishMeta();
      } else {
        this.state = State.Meta;
      }
      return;
    }

    let name = readString(buf, off, 100);
    // POSIX ustar ("ustar\0"): a prefix field may hold the leading part of a long name. GNU tar
    // ("ustar  \0") keeps other things in that space.
    if (buf[off + 257] === 0x75 && buf.toString('latin1', off + 257, off + 263) === 'ustar\0' && buf[off + 345] !== 0) {
      name = `${readString(buf, off + 345, 155)}/${name}`;
    }
    const header: TarHeader = {
      name,
      type: kind,
      mode: readNumber(buf, off + 100, 8, 'mode'),
      uid: readNumber(buf, off + 108, 8, 'uid'),
      gid: readNumber(buf, off + 116, 8, 'gid'),
      size,
      mtime: readNumber(buf, off + 136, 12, 'mtime'),
      linkname: readString(buf, off + 157, 100),
      devmajor: readNumber(buf, off + 329, 8, 'devmajor'),
      devminor: readNumber(buf, off + 337, 8, 'devminor'),
      // Present from the start, so that every header object has the same shape.
      atime: undefined,
      pax: undefined,
    };
    this.applyPending(header);
    if (header.type === 'file' && header.name.endsWith('/')) header.type = 'directory';
    const bodySize = header.type === 'directory' ? 0 : header.size;
    const bodyPadding = (BLOCK - (bodySize % BLOCK)) % BLOCK;
    this.remaining = bodySize;
    this.padding = bodyPadding;
    this.state = bodySize > 0 ? State.Body : bodyPadding > 0 ? State.Padding : State.Header;
    this.sink.entry(header);
    if (bodySize === 0) this.sink.end();
  }

  /** Long names and pax records apply to the entry that follows them. */
  private applyPending(header: TarHeader): void {
    const { longName, longLink } = this.pending;
    let pax = this.pending.pax;
    this.pending = {};
    if (longName !== undefined) header.name = longName;
    if (longLink !== undefined) header.linkname = longLink;
    if (this.globalPax) pax = pax === undefined ? this.globalPax : mergePax(this.globalPax, pax);
    if (pax === undefined) return;
    header.pax = pax;
    if (pax.path !== undefined) header.name = pax.path;
    if (pax.linkpath !== undefined) header.linkname = pax.linkpath;
    if (pax.size !== undefined) header.size = parseDecimal(pax.size, 'size');
    if (pax.uid !== undefined) header.uid = parseDecimal(pax.uid, 'uid');
    if (pax.gid !== undefined) header.gid = parseDecimal(pax.gid, 'gid');
    const mtime = parseTime(pax.mtime);
    if (mtime !== undefined) header.mtime = mtime;
    const atime = parseTime(pax.atime);
    if (atime !== undefined) header.atime = atime;
  }

  private finishMeta(): void {
    const body = this.meta.length === 1 ? this.meta[0] : Buffer.concat(this.meta, this.metaSize);
    this.meta = [];
    let records: PaxRecords;
    switch (this.metaType) {
      case 'gnu-long-name':
        this.pending.longName = readString(body, 0, body.length);
        return;
      case 'gnu-long-link':
        this.pending.longLink = readString(body, 0, body.length);
        return;
      case 'pax-global':
        try {
          records = decodePax(body);
        } catch (err) {
          throw new TarFormatError((err as Error).message);
        }
        this.globalPax = this.globalPax ? mergePax(this.globalPax, records) : records;
        return;
      case 'pax':
        try {
          records = decodePax(body);
        } catch (err) {
          throw new TarFormatError((err as Error).message);
        }
        this.pending.pax = this.pending.pax ? mergePax(this.pending.pax, records) : records;
        return;
    }
  }
}

function mergePax(a: PaxRecords, b: PaxRecords): PaxRecords {
  const merged: PaxRecords = Object.assign({}, a, b);
  const raw = new Map([...(a[RAW_XATTRS] ?? []), ...(b[RAW_XATTRS] ?? [])]);
  if (raw.size > 0) Object.defineProperty(merged, RAW_XATTRS, { value: raw, enumerable: false });
  return merged;
}
