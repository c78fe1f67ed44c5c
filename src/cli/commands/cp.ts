// `berth cp`: copies between a container and the local filesystem through the archive endpoints
// (HEAD stats a container path, GET sends it as a tar, PUT extracts a tar into a directory), with
// docker's naming rules: into an existing directory the source keeps its name, otherwise it takes
// the destination's; "SRC/." copies a directory's contents.
//
// The tars are made and read by berth's own archive code, as the daemon's side does: the tar going
// in is written by TarProducer (file bodies read straight into 1 MiB chunks, reused once sent), and the one
// coming out is parsed by TarReader and written with synchronous calls straight from the
// response's buffers (CopyOutSink). On a tree of many files that is a few syscalls per file and
// no stream per file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { tarDirectoryProducer, tarPathProducer } from '../../archive/create';
import { TarReader, type TarHeader, type TarSink } from '../../archive/reader';
import { DaemonError, UsageError } from '../client';
import type { CommandContext, CommandSpec } from '../command';
import { humanSize } from '../format';
import { writeAllSync } from '../../common/fsutil';

const enc = encodeURIComponent;
/** Go's os.FileMode bits, as the path-stat header carries them. */
const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** "ctr:/path" -> container and path; a local path (no colon before the first slash) -> no container. */
export function splitCpArg(arg: string): { container?: string; path: string } {
  if (path.isAbsolute(arg) || arg.startsWith('.')) return { path: arg };
  const colon = arg.indexOf(':');
  const slash = arg.indexOf('/');
  if (colon <= 0 || (slash >= 0 && slash < colon)) return { path: arg };
  return { container: arg.slice(0, colon), path: arg.slice(colon + 1) };
}

export function decodePathStat(header: string | string[] | undefined): PathStat | undefined {
  if (typeof header !== 'string' || !header) return undefined;
  try {
    return JSON.parse(Buffer.from(header, 'base64').toString()) as PathStat;
  } catch {
    return undefined;
  }
}

const isDirMode = (mode: number): boolean => Math.floor(mode / MODE_DIR) % 2 === 1;
const isLinkMode = (mode: number): boolean => Math.floor(mode / MODE_SYMLINK) % 2 === 1;
/** "dir/." or "dir/": the trailing form that asks for a directory's contents or a directory. */
const endsWithDot = (p: string): boolean => p === '.' || p.endsWith('/.');
const endsWithSep = (p: string): boolean => p.endsWith('/');

/** How tar entry names are rewritten on the way: the first path component renamed, or dropped. */
type Rebase = { kind: 'keep' } | { kind: 'rename'; to: string } | { kind: 'contents' };

export function rebaseName(name: string, rebase: Rebase): string | undefined {
  const clean = name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  if (rebase.kind === 'keep') return clean;
  const slash = clean.indexOf('/');
  const rest = slash < 0 ? '' : clean.slice(slash);
  if (rebase.kind === 'rename') return rebase.to + rest;
  return rest ? rest.slice(1) : undefined;
}

/**
 * The absolute path for an entry under root, refusing names that leave it or that pass through a
 * symlink already on disk (a tar could otherwise plant a link and write through it).
 */
export function safeTarget(root: string, name: string): string {
  const parts = name.split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) throw new Error(`invalid tar entry ${JSON.stringify(name)}: path escapes the destination`);
  let cur = root;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = path.join(cur, parts[i]);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(cur);
    } catch {
      st = undefined;
    }
    if (st?.isSymbolicLink()) throw new Error(`invalid tar entry ${JSON.stringify(name)}: path passes through a symlink`);
  }
  return path.join(root, ...parts);
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const CREATE_FILE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

/**
 * Writes the entries of a tar from the daemon below root, as the docker CLI's cp does: files are
 * owned by the user running the copy (the tar's owners only with keepOwner, `-a`), modes and
 * modification times are the tar's, symlinks stay links. As docker's extraction for cp, a
 * directory and a non-directory never replace each other; any other existing non-directory is
 * replaced. Entry names are renamed by rebase; none may leave root or pass through a symlink.
 *
 * Parents are checked once: the directories this copy made or found real are remembered, so a
 * file costs an open, its writes, the metadata calls and a close. Devices and fifos are skipped
 * (a client copy should not assume the privileges to make them).
 */
export class CopyOutSink implements TarSink {
  /** Paths below root (renamed, "a/b"; "" is root) known to be real directories. */
  private readonly dirs = new Set<string>(['']);
  private readonly dirTimes: { file: string; mtime: number }[] = [];
  private current: { fd: number; header: TarHeader } | undefined;
  /** open(2) and mkdir(2) apply the umask: a mode it leaves whole needs no chmod afterwards. */
  private readonly umask = process.umask();

  constructor(private readonly root: string, private readonly rebase: Rebase, private readonly keepOwner: boolean) {}

  private umaskKeeps(mode: number): boolean {
    return mode <= 0o777 && (mode & this.umask) === 0;
  }

  /** Where a (renamed) entry goes, its parents made and checked; undefined leaves it out. */
  private locate(name: string): { rel: string; file: string } | undefined {
    const renamed = rebaseName(name, this.rebase);
    if (!renamed) return undefined;
    const parts = renamed.split('/').filter((p) => p && p !== '.');
    if (parts.length === 0) return undefined;
    if (parts.includes('..')) throw new Error(`invalid tar entry ${JSON.stringify(name)}: path escapes the destination`);
    const rel = parts.join('/');
    const parent = parts.length === 1 ? '' : rel.slice(0, rel.length - parts[parts.length - 1].length - 1);
    if (!this.dirs.has(parent)) {
      let cur = '';
      for (let i = 0; i < parts.length - 1; i++) {
        cur = cur === '' ? parts[i] : `${cur}/${parts[i]}`;
        if (this.dirs.has(cur)) continue;
        const abs = path.join(this.root, cur);
        const st = lstatOrUndefined(abs);
        if (st?.isSymbolicLink()) throw new Error(`invalid tar entry ${JSON.stringify(name)}: path passes through a symlink`);
        // A parent the tar did not list is made as docker makes it.
        if (!st) fs.mkdirSync(abs, 0o755);
        else if (!st.isDirectory()) throw new Error(`cannot extract ${JSON.stringify(name)}: ${abs} is not a directory`);
        this.dirs.add(cur);
      }
    }
    return { rel, file: path.join(this.root, rel) };
  }

  /**
   * Runs make(), an exclusive create; when something is in the way (the only case that costs an
   * lstat), docker's rules: a directory and a non-directory do not replace each other, an
   * existing directory stays for a directory entry (false is returned), anything else is removed
   * and made again.
   */
  private place(file: string, isDir: boolean, make: () => void): boolean {
    try {
      make();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const existing = fs.lstatSync(file);
    if (existing.isDirectory() !== isDir) {
      throw new Error(isDir
        ? `cannot overwrite non-directory ${JSON.stringify(file)} with directory ${JSON.stringify(this.root)}`
        : `cannot overwrite directory ${JSON.stringify(file)} with non-directory ${JSON.stringify(this.root)}`);
    }
    if (isDir) return false;
    fs.unlinkSync(file);
    make();
    return true;
  }

  entry(h: TarHeader): void {
    if (h.type !== 'directory' && h.type !== 'file' && h.type !== 'contiguous-file' && h.type !== 'symlink' && h.type !== 'link') return;
    const at = this.locate(h.name);
    if (at === undefined) return;
    const { file } = at;
    const mode = h.mode & 0o7777;
    switch (h.type) {
      case 'directory': {
        const made = this.place(file, true, () => fs.mkdirSync(file, mode));
        if (this.keepOwner) fs.lchownSync(file, h.uid, h.gid);
        if (!made || this.keepOwner || !this.umaskKeeps(mode)) fs.chmodSync(file, mode);
        this.dirs.add(at.rel);
        this.dirTimes.push({ file, mtime: h.mtime });
        return;
      }
      case 'file':
      case 'contiguous-file': {
        let fd = -1;
        this.place(file, false, () => void (fd = fs.openSync(file, CREATE_FILE, mode)));
        this.current = { fd, header: h };
        return;
      }
      case 'symlink':
        this.place(file, false, () => fs.symlinkSync(h.linkname, file));
        if (this.keepOwner) fs.lchownSync(file, h.uid, h.gid);
        fs.lutimesSync(file, h.mtime, h.mtime);
        return;
      case 'link': {
        const linkName = rebaseName(h.linkname, this.rebase);
        if (!linkName) throw new Error(`invalid hard link ${JSON.stringify(h.linkname)}`);
        const target = safeTarget(this.root, linkName);
        this.place(file, false, () => fs.linkSync(target, file));
        if (this.keepOwner) fs.lchownSync(file, h.uid, h.gid);
        fs.utimesSync(file, h.mtime, h.mtime);
        return;
      }
    }
  }

  data(chunk: Buffer): void {
    const cur = this.current;
    if (cur === undefined) return;
    writeAllSync(cur.fd, chunk);
  }

  end(): void {
    const cur = this.current;
    if (cur === undefined) return;
    this.current = undefined;
    const h = cur.header;
    const mode = h.mode & 0o7777;
    try {
      // Owner first: chown clears setuid/setgid bits, which the chmod then sets.
      if (this.keepOwner) fs.fchownSync(cur.fd, h.uid, h.gid);
      if (this.keepOwner || !this.umaskKeeps(mode)) fs.fchmodSync(cur.fd, mode);
      fs.futimesSync(cur.fd, h.mtime, h.mtime);
    } finally {
      fs.closeSync(cur.fd);
    }
  }

  /** Closes the file being written, if any (the copy failed). */
  abort(): void {
    const cur = this.current;
    this.current = undefined;
    if (cur !== undefined) fs.closeSync(cur.fd);
  }

  /** Directory times last: entries written below a directory change its mtime. */
  finish(): void {
    for (const d of this.dirTimes.reverse()) fs.utimesSync(d.file, d.mtime, d.mtime);
  }
}

/** Extracts a tar into root, renaming entries by rebase. Ownership is kept only with keepOwner. */
export async function extractTar(input: Readable, root: string, rebase: Rebase, keepOwner: boolean): Promise<void> {
  const sink = new CopyOutSink(root, rebase, keepOwner);
  const reader = new TarReader(sink);
  try {
    for await (const chunk of input) reader.write(chunk as Buffer);
    reader.finish();
    sink.finish();
  } catch (err) {
    input.destroy();
    try { sink.abort(); } catch { /* the first error is the one to report */ }
    throw err;
  }
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * A tar of a local path whose root entry is named rootName (its contents only when rootName is
 * ''), with a count of the bytes sent. -L (follow) resolves src itself; links below it stay links.
 * As a request body it is written by writeTo (its 1 MiB chunks reused once sent); stream is the
 * same tar as a Readable (made on first use; use one or the other).
 */
export function packPath(src: string, rootName: string, follow: boolean): { readonly stream: Readable; size: () => number; writeTo(dest: Writable): Promise<void> } {
  const from = follow ? fs.realpathSync(src) : src;
  // No xattrs: the daemon's cp extraction does not set them.
  const producer = rootName ? tarPathProducer(from, rootName, { xattrs: false }) : tarDirectoryProducer(from, { xattrs: false });
  let stream: Readable | undefined;
  return {
    get stream() {
      stream ??= producer.stream();
      return stream;
    },
    size: () => producer.bytes,
    writeTo: (dest) => producer.writeTo(dest),
  };
}

async function statContainerPath(ctx: CommandContext, container: string, p: string): Promise<PathStat | undefined> {
  try {
    const res = await ctx.client.request('HEAD', `/containers/${enc(container)}/archive`, { query: { path: p } });
    res.resume();
    return decodePathStat(res.headers['x-docker-container-path-stat']);
  } catch (e) {
    if (e instanceof DaemonError && e.status === 404 && !/No such container/i.test(e.message)) return undefined;
    throw e;
  }
}

function localStat(p: string, follow: boolean): fs.Stats | undefined {
  try {
    return follow ? fs.statSync(p) : fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

function reportCopied(ctx: CommandContext, v: Record<string, unknown>, bytes: number, to: string): void {
  // As docker: the summary is for a person at a terminal.
  if (!v.quiet && (ctx.io.stderr as { isTTY?: boolean }).isTTY) ctx.err(`Successfully copied ${humanSize(bytes, 3)} to ${to}\n`);
}

async function copyFromContainer(ctx: CommandContext, v: Record<string, unknown>, container: string, src: string, dst: string): Promise<number> {
  let srcPath = src;
  let stat: PathStat | undefined;
  if (v['follow-link']) {
    stat = await statContainerPath(ctx, container, srcPath);
    if (stat && isLinkMode(stat.mode) && stat.linkTarget) srcPath = stat.linkTarget;
  }
  const res = await ctx.client.request('GET', `/containers/${enc(container)}/archive`, { query: { path: srcPath } });
  stat = decodePathStat(res.headers['x-docker-container-path-stat']) ?? stat;
  if (dst === '-') {
    await new Promise<void>((resolve, reject) => {
      res.on('end', resolve);
      res.on('error', reject);
      res.pipe(ctx.io.stdout, { end: false });
    });
    return 0;
  }
  let bytes = 0;
  res.on('data', (c: Buffer) => void (bytes += c.length));
  const srcIsDir = stat ? isDirMode(stat.mode) : false;
  const dstStat = localStat(dst, true);
  let root: string;
  let rebase: Rebase;
  if (dstStat?.isDirectory()) {
    root = dst;
    // The daemon names the tar's root after the path it archived (the link's target with -L):
    // the copy keeps the name the user gave.
    const srcBase = path.posix.basename(src.replace(/\/+$/, ''));
    rebase = srcIsDir && endsWithDot(src) ? { kind: 'contents' } : srcBase ? { kind: 'rename', to: srcBase } : { kind: 'keep' };
  } else if (dstStat) {
    if (srcIsDir) {
      res.destroy();
      throw new Error(`cannot copy a directory to a file: ${dst}`);
    }
    root = path.dirname(dst);
    rebase = { kind: 'rename', to: path.basename(dst) };
  } else {
    if (endsWithSep(dst) && !srcIsDir) {
      res.destroy();
      throw new Error(`destination directory ${dst} must exist: no such directory`);
    }
    root = path.dirname(path.resolve(dst));
    if (!localStat(root, true)?.isDirectory()) {
      res.destroy();
      throw new Error(`destination directory ${root} must exist: no such directory`);
    }
    rebase = { kind: 'rename', to: path.basename(path.resolve(dst)) };
  }
  await extractTar(res, root, rebase, Boolean(v.archive));
  reportCopied(ctx, v, bytes, dst);
  return 0;
}

async function copyToContainer(ctx: CommandContext, v: Record<string, unknown>, src: string, container: string, dst: string): Promise<number> {
  const query = { path: dst, noOverwriteDirNonDir: 'true', copyUIDGID: v.archive ? 'true' : undefined };
  const dstStat = await statContainerPath(ctx, container, dst);
  if (src === '-') {
    if (!dstStat || !isDirMode(dstStat.mode)) throw new Error(`destination "${container}:${dst}" must be a directory`);
    await ctx.client.call('PUT', `/containers/${enc(container)}/archive`, { query, body: ctx.io.stdin, headers: { 'Content-Type': 'application/x-tar' } });
    return 0;
  }
  const follow = Boolean(v['follow-link']);
  const st = localStat(src, follow);
  if (!st) throw new Error(`stat ${src}: no such file or directory`);
  let target: string;
  let rootName: string;
  if (dstStat && isDirMode(dstStat.mode)) {
    target = dst;
    rootName = st.isDirectory() && endsWithDot(src) ? '' : path.basename(path.resolve(src));
  } else if (dstStat) {
    if (st.isDirectory()) throw new Error(`cannot copy a directory to a file: ${container}:${dst}`);
    target = path.posix.dirname(dst);
    rootName = path.posix.basename(dst);
  } else {
    if (endsWithSep(dst) && !st.isDirectory()) throw new Error(`destination directory ${container}:${dst} must exist: no such directory`);
    target = path.posix.dirname(dst.replace(/\/+$/, '')) || '/';
    rootName = path.posix.basename(dst.replace(/\/+$/, ''));
  }
  const packed = packPath(src, rootName, follow);
  await ctx.client.call('PUT', `/containers/${enc(container)}/archive`, { query: { ...query, path: target }, body: packed, headers: { 'Content-Type': 'application/x-tar' } });
  reportCopied(ctx, v, packed.size(), `${container}:${dst}`);
  return 0;
}

async function cpCmd(ctx: CommandContext, v: Record<string, unknown>, srcArg: string, dstArg: string): Promise<number> {
  const src = splitCpArg(srcArg);
  const dst = splitCpArg(dstArg);
  if (src.container && dst.container) throw new UsageError('copying between containers is not supported');
  if (!src.container && !dst.container) throw new UsageError('must specify at least one container source');
  if (src.container) {
    if (!src.path) throw new Error('filepath cannot be empty');
    return copyFromContainer(ctx, v, src.container, src.path, dst.path);
  }
  if (!dst.path) throw new Error('filepath cannot be empty');
  return copyToContainer(ctx, v, src.path, dst.container!, dst.path);
}

export function cpCommands(): CommandSpec[] {
  return [
    {
      paths: [['container', 'cp'], ['cp']],
      usage: '[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH',
      description: "Copy files/folders between a container and the local filesystem\n\nUse '-' as the source to read a tar archive from stdin\nand extract it to a directory destination in a container.\nUse '-' as the destination to stream a tar archive of a\ncontainer source to stdout.",
      flags: [
        { name: 'archive', short: 'a', type: 'bool', description: 'Archive mode (copy all uid/gid information)' },
        { name: 'follow-link', short: 'L', type: 'bool', description: 'Always follow symbol link in SRC_PATH' },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached' },
      ],
      args: { exact: 2 },
      run: (ctx, f) => cpCmd(ctx, f.values, f.args[0], f.args[1]),
    },
  ];
}
