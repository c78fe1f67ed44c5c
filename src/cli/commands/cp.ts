// `berth cp`: copies between a container and the local filesystem through the archive endpoints
// (HEAD stats a container path, GET sends it as a tar, PUT extracts a tar into a directory), with
// docker's naming rules: into an existing directory the source keeps its name, otherwise it takes
// the destination's; "SRC/." copies a directory's contents.
//
// The tars are made and read by berth's own archive code, as the daemon's side does: the tar going
// in is written by TarProducer (file bodies read straight into 1 MiB chunks, reused once sent), and the one
// coming out is parsed by TarReader and written with synchronous calls straight from the
// response's buffers (archive/copy-out.ts' CopyOutSink, through archive/copy-stream.ts). On a tree
// of many files that is a few syscalls per file and no stream per file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { tarDirectoryProducer, tarPathProducer } from '../../archive/create';
import { extractCopy } from '../../archive/copy-stream';
import type { Rebase } from '../../archive/copy-out';
import { DaemonError, UsageError } from '../client';
import type { CommandContext, CommandSpec } from '../command';
import { humanSize } from '../format';

export { CopyOutSink, rebaseName, safeTarget } from '../../archive/copy-out';

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

/**
 * Extracts a tar into root, renaming entries by rebase. Ownership is kept only with keepOwner.
 */
export async function extractTar(input: Readable, root: string, rebase: Rebase, keepOwner: boolean): Promise<void> {
  try {
    await extractCopy(input, { kind: 'copy-out', root, rebase, keepOwner });
  } catch (err) {
    input.destroy();
    throw err;
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
