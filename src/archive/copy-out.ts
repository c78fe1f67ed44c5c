// The extraction of a tar from the daemon by `berth cp` (GET /containers/{id}/archive): docker's
// naming rules (the root entry renamed or dropped), nothing outside the destination, no write
// through a symlink.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TarHeader, TarSink } from './reader';
import { RegularFileSink, type OpenFile } from './file-sink';

/** How tar entry names are rewritten on the way: the first path component renamed, or dropped. */
export type Rebase = { kind: 'keep' } | { kind: 'rename'; to: string } | { kind: 'contents' };

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
export class CopyOutSink extends RegularFileSink implements TarSink {
  /** Paths below root (renamed, "a/b"; "" is root) known to be real directories. */
  private readonly dirs = new Set<string>(['']);
  /** open(2) and mkdir(2) apply the umask: a mode it leaves whole needs no chmod afterwards. */
  private readonly umask = process.umask();

  constructor(private readonly root: string, private readonly rebase: Rebase, private readonly keepOwner: boolean) {
    super();
  }

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

  protected finishFile(cur: OpenFile<object>): void {
    const mode = cur.header.mode & 0o7777;
    // Owner first: chown clears setuid/setgid bits, which the chmod then sets.
    if (this.keepOwner) fs.fchownSync(cur.fd, cur.header.uid, cur.header.gid);
    if (this.keepOwner || !this.umaskKeeps(mode)) fs.fchmodSync(cur.fd, mode);
  }
}


function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}
