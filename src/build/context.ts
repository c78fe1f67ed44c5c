// The build context: receiving it (a tar, plain or compressed, or a bare Dockerfile as in
// `docker build - < Dockerfile`) into a private directory without letting any entry escape it,
// and resolving COPY/ADD sources in it, with per-source content checksums for the build cache.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { BerthError, invalidParameter, systemError } from '../common/errors';
import { decompressionStages, detectCompression, peek } from '../archive/compression';
import { cleanPath } from './dockerignore';
import { resolveInRoot } from '../common/scopedpath';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

/** A valid ustar/gnu/v7 header block: its checksum field matches. */
export function looksLikeTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return sum === parseInt(field, 8);
}

/** Splits a tar entry name into safe segments, or throws naming the entry. */
function safeSegments(name: string): string[] {
  if (name.startsWith('/')) throw invalidParameter(`build context entry ${JSON.stringify(name)}: absolute paths are not allowed`);
  const segs = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.some((s) => s === '..')) throw invalidParameter(`build context entry ${JSON.stringify(name)}: path escapes the context`);
  return segs;
}

type Made = 'dir' | 'file' | 'symlink';

/**
 * Extracts a tar stream (plain, gzip or zstd) into dir, which must be empty and written by nobody
 * else meanwhile: what exists below it was therefore made by this call, so parents are checked
 * against an in-memory record instead of racing lstat calls. Entries may not be absolute, contain
 * "..", or pass through a symlink or file made earlier; hardlinks must point at earlier files.
 * Devices and fifos are skipped (a context has no use for them). On failure dir is emptied.
 */
export async function extractTarSafely(input: Readable, dir: string): Promise<void> {
  const made = new Map<string, Made>();
  const dirTimes: [string, Date][] = [];
  const ensureParents = (segs: string[], entry: string): void => {
    for (let i = 1; i < segs.length; i++) {
      const rel = segs.slice(0, i).join('/');
      const kind = made.get(rel);
      if (kind === 'dir') continue;
      if (kind !== undefined) throw invalidParameter(`build context entry ${JSON.stringify(entry)}: a parent is not a directory`);
      fs.mkdirSync(path.join(dir, rel), { mode: 0o755 });
      made.set(rel, 'dir');
    }
  };
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    stream.on('error', () => {});
    const fail = (err: unknown): void => {
      stream.resume();
      next(err as Error);
    };
    let segs: string[];
    let rel: string;
    let abs: string;
    try {
      segs = safeSegments(header.name);
      if (segs.length === 0) {
        stream.resume();
        stream.on('end', () => next());
        return;
      }
      rel = segs.join('/');
      abs = path.join(dir, rel);
      ensureParents(segs, header.name);
      const existing = made.get(rel);
      if (existing && !(existing === 'dir' && header.type === 'directory')) {
        fs.rmSync(abs, { recursive: true, force: true });
        made.delete(rel);
        // Forget what was below a replaced directory.
        for (const k of [...made.keys()]) if (k.startsWith(rel + '/')) made.delete(k);
      }
      const mode = (header.mode ?? 0o644) & 0o7777;
      const mtime = header.mtime ?? new Date(0);
      switch (header.type) {
        case 'directory':
          if (!made.has(rel)) fs.mkdirSync(abs, { mode: 0o700 });
          fs.chmodSync(abs, mode);
          made.set(rel, 'dir');
          dirTimes.push([abs, mtime]);
          break;
        case 'symlink':
          fs.symlinkSync(header.linkname ?? '', abs);
          made.set(rel, 'symlink');
          break;
        case 'link': {
          const target = safeSegments(header.linkname ?? '').join('/');
          if (made.get(target) !== 'file') throw invalidParameter(`build context entry ${JSON.stringify(header.name)}: hardlink target ${JSON.stringify(header.linkname)} is not a file of this context`);
          fs.linkSync(path.join(dir, target), abs);
          made.set(rel, 'file');
          break;
        }
        case 'file':
        case 'contiguous-file': {
          const fd = fs.openSync(abs, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
          made.set(rel, 'file');
          let failed: unknown;
          stream.on('data', (data: unknown) => {
            const chunk = data as Buffer;
            if (failed !== undefined) return;
            try {
              let off = 0;
              while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
            } catch (err) {
              failed = err;
            }
          });
          stream.on('end', () => {
            try {
              if (failed === undefined) {
                fs.fchmodSync(fd, mode);
                fs.futimesSync(fd, mtime, mtime);
              }
            } catch (err) {
              failed = err;
            }
            fs.closeSync(fd);
            next(failed as Error | undefined);
          });
          return;
        }
        default:
          break;
      }
    } catch (err) {
      fail(err);
      return;
    }
    stream.on('end', () => next());
    stream.resume();
  });
  try {
    const { stages } = await decompressionStages(input);
    await pipeline([...stages, extract]);
    for (const [d, t] of dirTimes.reverse()) fs.utimesSync(d, t, t);
  } catch (err) {
    input.destroy();
    for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    if (err instanceof BerthError) throw err;
    if (typeof (err as NodeJS.ErrnoException).syscall === 'string') throw systemError(`failed to extract the build context: ${(err as Error).message}`, err);
    throw invalidParameter(`failed to read the build context: ${(err as Error).message}`);
  }
}

export interface ReceivedContext {
  /** True when the body was a Dockerfile rather than a tar: dir then holds only that file. */
  dockerfileOnly: boolean;
}

/** Longest Dockerfile accepted as a bare (non-tar) body. */
const MAX_BARE_DOCKERFILE = 16 << 20;

/**
 * Receives a POST /build body into dir (empty): a context tar (plain, gzip or zstd), or a bare
 * Dockerfile, which is stored as dir/<dockerfileName>.
 */
export async function receiveContext(input: Readable, dir: string, dockerfileName = 'Dockerfile'): Promise<ReceivedContext> {
  const { head, stream } = await peek(input, 512);
  if (head.length === 0) return { dockerfileOnly: false };
  if (detectCompression(head) !== 'none' || looksLikeTarHeader(head) || isEndOfArchive(head)) {
    await extractTarSafely(stream, dir);
    return { dockerfileOnly: false };
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > MAX_BARE_DOCKERFILE) throw invalidParameter('the Dockerfile sent as the request body is too large');
    chunks.push(c as Buffer);
  }
  const file = path.join(dir, ...safeSegments(cleanPath(dockerfileName)));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat(chunks), { mode: 0o644 });
  return { dockerfileOnly: true };
}

function isEndOfArchive(head: Buffer): boolean {
  return head.length >= 512 && head.subarray(0, 512).every((b) => b === 0);
}

// ---- paths inside a root ------------------------------------------------------------------

export { resolveInRoot };

/** True when the pattern uses filepath.Match wildcards. */
export function hasWildcards(p: string): boolean {
  return /[*?[]/.test(p.replace(/\\./g, ''));
}

/** Go's filepath.Match: '*' and '?' stay within a path segment. */
export function matchPath(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '\\' && i + 1 < pattern.length) re += '\\' + pattern[++i];
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) return false;
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('^') || body.startsWith('!')) body = '^' + body.slice(1);
      re += '[' + body.replace(/\\/g, '\\\\') + ']';
      i = end;
    } else re += /[.+()|{}$^\]]/.test(ch) ? '\\' + ch : ch;
  }
  return new RegExp(re + '$', 's').test(name);
}

export interface SourceInfo {
  /** The host path of the source (top-level symlinks resolved inside the root). */
  abs: string;
  /** The source's path relative to its root, for messages and checksums. */
  rel: string;
  isDir: boolean;
  /** Content checksum over the tree: names, modes, link targets, file contents. */
  checksum: string;
}

/**
 * The files a COPY/ADD source names in root: one entry, or every match of a wildcard pattern.
 * Errors as docker's classic builder words them.
 */
export function resolveSources(root: string, source: string, cmd = 'COPY'): SourceInfo[] {
  const rel = cleanPath(source.replace(/^\/+/, ''));
  if (rel === '..' || rel.startsWith('../')) throw invalidParameter(`${cmd} failed: forbidden path outside the build context: ${source} ()`);
  if (hasWildcards(rel)) {
    const out: SourceInfo[] = [];
    const walk = (dirRel: string): void => {
      for (const name of fs.readdirSync(path.join(root, dirRel)).sort()) {
        const r = dirRel ? `${dirRel}/${name}` : name;
        const st = fs.lstatSync(path.join(root, r));
        if (matchPath(rel, r)) {
          out.push(info(root, r, cmd));
          continue;
        }
        if (st.isDirectory()) walk(r);
      }
    };
    walk('');
    if (out.length === 0) throw invalidParameter(`${cmd} failed: no source files were specified`);
    return out;
  }
  return [info(root, rel === '.' ? '' : rel, cmd)];
}

function info(root: string, rel: string, cmd: string): SourceInfo {
  const abs = rel === '' ? root : resolveInRoot(root, rel);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw invalidParameter(`${cmd} failed: file not found in build context or excluded by .dockerignore: stat ${rel}: file does not exist`);
  }
  return { abs, rel: rel || '.', isDir: st.isDirectory(), checksum: checksumTree(abs) };
}

/**
 * sha256 over a file or tree: each entry's relative name, type, permission bits and content (or
 * link target). Owners and times are left out, as docker's builder cache leaves them out: COPY
 * sets ownership itself, and a fresh checkout must not miss the cache.
 */
export function checksumTree(abs: string): string {
  const h = createHash('sha256');
  const add = (p: string, rel: string): void => {
    const st = fs.lstatSync(p);
    const perm = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) {
      h.update(`L\0${rel}\0${fs.readlinkSync(p)}\0`);
    } else if (st.isDirectory()) {
      h.update(`D\0${rel}\0${perm}\0`);
      for (const name of fs.readdirSync(p).sort()) add(path.join(p, name), rel ? `${rel}/${name}` : name);
    } else if (st.isFile()) {
      h.update(`F\0${rel}\0${perm}\0${st.size}\0`);
      h.update(fileDigest(p));
    } else {
      h.update(`O\0${rel}\0${perm}\0`);
    }
  };
  // The top level is the source itself: followed if a symlink.
  const st = fs.statSync(abs);
  if (st.isDirectory()) {
    h.update(`D\0.\0${(st.mode & 0o7777).toString(8)}\0`);
    for (const name of fs.readdirSync(abs).sort()) add(path.join(abs, name), name);
  } else {
    h.update(`F\0.\0${(st.mode & 0o7777).toString(8)}\0${st.size}\0`);
    h.update(fileDigest(abs));
  }
  return h.digest('hex');
}

function fileDigest(p: string): Buffer {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest();
}

// ---- copying into a layer ------------------------------------------------------------------

export interface Ownership {
  uid: number;
  gid: number;
}

export interface CopyOptions {
  owner: Ownership;
  /** --chmod: permission bits for every copied entry. */
  mode?: number;
}

/** Copies a file, symlink or tree from src to dst (dst's parent exists), with owner and mode. */
export function copyEntry(src: string, dst: string, opts: CopyOptions, followTop = true): void {
  const st = followTop ? fs.statSync(src) : fs.lstatSync(src);
  const setMeta = (p: string, s: fs.Stats): void => {
    fs.lchownSync(p, opts.owner.uid, opts.owner.gid);
    if (!s.isSymbolicLink()) {
      fs.chmodSync(p, opts.mode ?? s.mode & 0o7777);
      fs.utimesSync(p, s.atime, s.mtime);
    }
  };
  if (st.isSymbolicLink()) {
    fs.rmSync(dst, { recursive: true, force: true });
    fs.symlinkSync(fs.readlinkSync(src), dst);
    setMeta(dst, st);
  } else if (st.isDirectory()) {
    let exists = false;
    try {
      exists = fs.lstatSync(dst).isDirectory();
    } catch {}
    if (!exists) {
      fs.rmSync(dst, { recursive: true, force: true });
      fs.mkdirSync(dst, { mode: 0o755 });
    }
    for (const name of fs.readdirSync(src)) copyEntry(path.join(src, name), path.join(dst, name), opts, false);
    setMeta(dst, st);
  } else if (st.isFile()) {
    fs.rmSync(dst, { recursive: true, force: true });
    fs.copyFileSync(src, dst);
    setMeta(dst, st);
  }
  // Sockets, fifos and devices in a context are not copied, as docker's copier skips them.
}

/** Copies the contents of a directory (not the directory itself) into dst. */
export function copyDirContents(srcDir: string, dst: string, opts: CopyOptions): void {
  for (const name of fs.readdirSync(srcDir)) copyEntry(path.join(srcDir, name), path.join(dst, name), opts, false);
}

/** Whether a local ADD source is an archive docker would unpack: a tar, possibly compressed. */
export function isLocalArchive(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const n = fs.readSync(fd, head, 0, 512, 0);
    if (n >= 6 && detectCompression(head.subarray(0, n)) !== 'none') return true;
    return n === 512 && looksLikeTarHeader(head);
  } finally {
    fs.closeSync(fd);
  }
}
