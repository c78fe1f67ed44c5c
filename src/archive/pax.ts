// Binary-safe PAX extended headers. tar-stream decodes and encodes PAX values as UTF-8 strings,
// which corrupts binary xattr values (security.capability, for one), so berth reads and writes
// the records itself: reader.ts parses them with decodePax, create.ts writes them with encodePax.

export const XATTR_PREFIX = 'SCHILY.xattr.';

/** Where a parsed PAX object keeps the raw bytes of its xattr records. */
export const RAW_XATTRS = Symbol('berth.rawXattrs');

export type PaxRecords = Record<string, string> & { [RAW_XATTRS]?: Map<string, Buffer> };

/** Parses "<len> <key>=<value>\n" records; xattr values are kept as raw bytes too. */
export function decodePax(buf: Buffer): PaxRecords {
  const result: PaxRecords = {};
  const raw = new Map<string, Buffer>();
  let pos = 0;
  while (pos < buf.length) {
    const space = buf.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number.parseInt(buf.toString('latin1', pos, space), 10);
    if (!Number.isSafeInteger(len) || len <= space - pos || pos + len > buf.length) throw new Error('invalid PAX header record');
    const record = buf.subarray(space + 1, pos + len - 1); // without the trailing newline
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new Error('invalid PAX header record');
    const key = record.toString('utf8', 0, eq);
    const value = record.subarray(eq + 1);
    result[key] = value.toString('utf8');
    if (key.startsWith(XATTR_PREFIX)) raw.set(key.slice(XATTR_PREFIX.length), Buffer.from(value));
    pos += len;
  }
  if (raw.size > 0) Object.defineProperty(result, RAW_XATTRS, { value: raw, enumerable: false });
  return result;
}

/** Encodes records as a PAX header body. Values may be binary. */
export function encodePax(records: [string, string | Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), typeof value === 'string' ? Buffer.from(value) : value, Buffer.from('\n')]);
    // The length prefix counts itself: find the digit count that makes the total consistent.
    let digits = String(body.length).length;
    if (String(body.length + digits).length > digits) digits++;
    parts.push(Buffer.from(String(body.length + digits)), body);
  }
  return Buffer.concat(parts);
}

/** The xattrs of an extracted entry, from its PAX records. */
export function xattrsOf(pax: PaxRecords | undefined | null): Map<string, Buffer> | undefined {
  if (!pax) return undefined;
  const raw = pax[RAW_XATTRS];
  if (raw) return raw;
  let out: Map<string, Buffer> | undefined;
  for (const key of Object.keys(pax)) {
    if (!key.startsWith(XATTR_PREFIX)) continue;
    out ??= new Map();
    out.set(key.slice(XATTR_PREFIX.length), Buffer.from(pax[key]));
  }
  return out;
}
