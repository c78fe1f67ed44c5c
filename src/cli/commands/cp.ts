// `berth cp`: copies between a container and the local filesystem through the archive endpoints
// (HEAD stats a container path, GET sends it as a tar, PUT extracts a tar into a directory), with
// docker's naming rules: into an existing directory the source keeps its name, otherwise it takes
// the destination's; "SRC/." copies a directory's contents.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import * as tar from 'tar-stream';

type EntryHeader = Partial<tar.Header> & { name: string };
import { DaemonError, UsageError } from '../client';
import type { CommandContext, CommandSpec } from '../command';
import { humanSize } from '../format';

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

/** Extracts a tar into root, renaming entries by rebase. Ownership is kept only with keepOwner. */
export function extractTar(input: NodeJS.ReadableStream, root: string, rebase: Rebase, keepOwner: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const ex = tar.extract();
    const dirTimes: { p: string; mtime: Date }[] = [];
    ex.on('entry', (h, stream, next) => {
      const fail = (e: unknown): void => {
        stream.resume();
        ex.destroy(e as Error);
      };
      try {
        const name = rebaseName(h.name, rebase);
        if (name === undefined || name === '') {
          stream.resume();
          stream.on('end', next);
          return;
        }
        const target = safeTarget(root, name);
        const mode = (h.mode ?? 0o644) & 0o7777;
        const finish = (): void => {
          if (keepOwner && h.uid !== undefined && h.gid !== undefined) fs.lchownSync(target, h.uid, h.gid);
          if (h.mtime && h.type !== 'symlink') {
            if (h.type === 'directory') dirTimes.push({ p: target, mtime: h.mtime });
            else fs.utimesSync(target, h.mtime, h.mtime);
          }
          next();
        };
        const replaceNonDir = (): void => {
          const st = lstatOrUndefined(target);
          if (st && !st.isDirectory()) fs.rmSync(target, { force: true });
        };
        if (h.type === 'directory') {
          const st = lstatOrUndefined(target);
          if (st && !st.isDirectory()) fs.rmSync(target, { force: true });
          if (!st || !st.isDirectory()) fs.mkdirSync(target, { mode });
          fs.chmodSync(target, mode);
          stream.resume();
          stream.on('end', finish);
        } else if (h.type === 'file' || h.type === 'contiguous-file') {
          replaceNonDir();
          const out = fs.createWriteStream(target, { mode });
          out.on('error', fail);
          out.on('finish', () => {
            try {
              fs.chmodSync(target, mode);
              finish();
            } catch (e) {
              fail(e);
            }
          });
          stream.pipe(out);
        } else if (h.type === 'symlink') {
          replaceNonDir();
          fs.symlinkSync(h.linkname ?? '', target);
          stream.resume();
          stream.on('end', finish);
        } else if (h.type === 'link') {
          replaceNonDir();
          const linkName = rebaseName(h.linkname ?? '', rebase);
          if (!linkName) throw new Error(`invalid hard link ${JSON.stringify(h.linkname)}`);
          fs.linkSync(safeTarget(root, linkName), target);
          stream.resume();
          stream.on('end', finish);
        } else {
          // Devices and fifos need privileges a client copy should not assume; docker skips them too
          // when it cannot create them.
          stream.resume();
          stream.on('end', next);
        }
      } catch (e) {
        fail(e);
      }
    });
    ex.on('finish', () => {
      try {
        for (const d of dirTimes.reverse()) fs.utimesSync(d.p, d.mtime, d.mtime);
        resolve();
      } catch (e) {
        reject(e);
      }
    });
    ex.on('error', reject);
    input.on('error', reject);
    input.pipe(ex);
  });
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/** A tar of a local path whose root entry is named rootName (its contents only when rootName is ''). */
export function packPath(src: string, rootName: string, follow: boolean): { stream: Readable; size: () => number } {
  const pack = tar.pack();
  const out = new PassThrough();
  let bytes = 0;
  pack.on('data', (c: unknown) => void (bytes += (c as Buffer).length));
  pack.on('error', (e: Error) => out.destroy(e));
  pack.pipe(out);
  const add = (header: EntryHeader, data?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (data) pack.entry(header as tar.Header, data, done);
      else pack.entry(header as tar.Header, done);
    });
  const addFile = (header: EntryHeader, file: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const entry = pack.entry(header as tar.Header, (err) => (err ? reject(err) : resolve()));
      const rs = fs.createReadStream(file);
      rs.on('error', (e) => {
        entry.destroy(e);
        reject(e);
      });
      rs.pipe(entry);
    });
  const inodes = new Map<string, string>();
  const walk = async (abs: string, name: string, st: fs.Stats): Promise<void> => {
    const base: EntryHeader = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      if (name) await add({ ...base, name: `${name}/`, type: 'directory' });
      for (const child of fs.readdirSync(abs).sort()) {
        await walk(path.join(abs, child), name ? `${name}/${child}` : child, fs.lstatSync(path.join(abs, child)));
      }
    } else if (st.isSymbolicLink()) {
      await add({ ...base, type: 'symlink', linkname: fs.readlinkSync(abs) });
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? inodes.get(key) : undefined;
      if (first) await add({ ...base, type: 'link', linkname: first });
      else {
        if (st.nlink > 1) inodes.set(key, name);
        await addFile({ ...base, type: 'file', size: st.size }, abs);
      }
    }
  };
  void (async () => {
    try {
      const st = follow ? fs.statSync(src) : fs.lstatSync(src);
      await walk(src, rootName, st);
      pack.finalize();
    } catch (e) {
      out.destroy(e as Error);
    }
  })();
  return { stream: out, size: () => bytes };
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
  await ctx.client.call('PUT', `/containers/${enc(container)}/archive`, { query: { ...query, path: target }, body: packed.stream, headers: { 'Content-Type': 'application/x-tar' } });
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
