// The extraction of a docker cp upload (PUT /containers/{id}/archive) into a container's file
// system: every entry's parent is resolved inside the container (links followed within it, a
// path under a mount mapped to the mount's source), the entry itself is never followed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidParameter } from '../common/errors';
import { resolveScoped, type ScopedMount, type ScopedPath } from '../common/scopedpath';
import { IdentityMapping, mkdirAllOwned, type IdRange } from '../security/userns';
import type { TarHeader, TarSink } from './reader';
import { RegularFileSink, type OpenFile } from './file-sink';

export interface CopyInOptions {
  noOverwriteDirNonDir: boolean;
  copyUIDGID: boolean;
}

/** Where and how a copy-in extracts. */
export interface CopyInJob {
  /** The container's root on the host (mounted). */
  root: string;
  mounts: ScopedMount[];
  /** The directory extracted into (resolved, existing). */
  dest: ScopedPath;
  /** --userns-remap's ranges: the tree holds host IDs, the tar container IDs. */
  idMap?: { uids: IdRange[]; gids: IdRange[] };
  opts: CopyInOptions;
}

/** Cleans a tar entry name to relative components; refuses one that would leave its root. */
function entryParts(name: string): string[] {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw invalidParameter(`refusing to extract ${JSON.stringify(name)}: it leaves the destination`);
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

/**
 * Writes the entries of a docker cp upload below dest, inside the container. Runs synchronously
 * inside TarReader.write(): bodies go straight from the request's buffers to the files.
 *
 * Every entry's parent is resolved inside the container (links followed within it); the entry
 * itself is never followed. Directories resolved (or made) by this copy are remembered, so the
 * tens of thousands of entries of a big tree do not each lstat their whole path again; whatever
 * an entry replaces or turns into a non-directory is forgotten, with everything below it.
 */
export class CopyInSink extends RegularFileSink<{ modeSet: boolean }> implements TarSink {
  /** Logical directory → host directory, for directories this copy resolved or made. */
  private readonly dirs = new Map<string, string>();
  /** open(2) applies the umask: a mode it leaves whole needs no fchmod afterwards. */
  private readonly umask = process.umask();

  private readonly view: { root: string; mounts: ScopedMount[]; idMap?: IdentityMapping };
  private readonly dest: ScopedPath;
  private readonly opts: CopyInOptions;

  constructor(job: CopyInJob) {
    super();
    this.view = { root: job.root, mounts: job.mounts, idMap: job.idMap ? new IdentityMapping(job.idMap.uids, job.idMap.gids) : undefined };
    this.dest = job.dest;
    this.opts = job.opts;
  }

  private parentOf(logical: string): string {
    const parentLogical = path.posix.dirname(logical);
    const known = this.dirs.get(parentLogical);
    if (known !== undefined) return known;
    const parent = resolveScoped(this.view.root, parentLogical, { mounts: this.view.mounts, followLast: true });
    mkdirAllOwned(parent.host, 0o755, this.view.idMap?.rootPair());
    this.dirs.set(parentLogical, parent.host);
    return parent.host;
  }

  /** Forgets what is known at or below logical (it is being replaced). */
  private forget(logical: string): void {
    if (this.dirs.size === 0) return;
    const prefix = `${logical}/`;
    for (const k of this.dirs.keys()) if (k === logical || k.startsWith(prefix)) this.dirs.delete(k);
  }

  /**
   * Runs make(), which creates target exclusively. When something is there already (rare: the
   * lstat is paid only then, and a new entry costs one syscall), docker's rules apply: with
   * noOverwriteDirNonDir a directory and a non-directory never replace each other; an existing
   * directory stays for a directory entry (undefined is returned); anything else is removed, with
   * everything below it, and made again. Nothing existing is ever followed.
   */
  private place<T>(target: string, logical: string, h: TarHeader, make: () => T): T | undefined {
    try {
      return make();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const isDir = h.type === 'directory';
    const existing = fs.lstatSync(target);
    if (this.opts.noOverwriteDirNonDir && existing.isDirectory() !== isDir) {
      throw invalidParameter(isDir
        ? `cannot overwrite non-directory "${logical}" with directory "${h.name}"`
        : `cannot overwrite directory "${logical}" with non-directory "${h.name}"`);
    }
    if (isDir && existing.isDirectory()) return undefined;
    this.forget(logical);
    fs.rmSync(target, { recursive: true, force: true });
    return make();
  }

  /** The host owner of an entry: its container IDs (root's without copyUIDGID), remapped. */
  private ownerOf(h: TarHeader): { uid: number; gid: number } {
    const owner = { uid: this.opts.copyUIDGID ? h.uid : 0, gid: this.opts.copyUIDGID ? h.gid : 0 };
    return this.view.idMap ? this.view.idMap.toHost(owner.uid, owner.gid) : owner;
  }

  entry(h: TarHeader): void {
    const parts = entryParts(h.name);
    if (parts.length === 0) return;
    const logical = path.posix.join(this.dest.logical, ...parts);
    const target = path.join(this.parentOf(logical), path.posix.basename(logical));
    const mode = h.mode & 0o7777;
    const { uid, gid } = this.ownerOf(h);
    const mtime = new Date(h.mtime * 1000);
    switch (h.type) {
      case 'directory':
        this.place(target, logical, h, () => fs.mkdirSync(target, { mode: 0o700 }));
        fs.lchownSync(target, uid, gid);
        fs.chmodSync(target, mode);
        this.dirTimes.push({ file: target, mtime });
        // A real directory (made now, or lstat'ed as one): entries below it go straight there.
        this.dirs.set(logical, target);
        return;
      case 'file':
      case 'contiguous-file': {
        // Made with its final mode when nothing changes it afterwards (a chown would clear
        // setuid bits; the umask would clear others): one syscall less per file. Otherwise it is
        // made 0600 and chmod'ed once written.
        const modeSet = uid === 0 && gid === 0 && mode <= 0o777 && (mode & this.umask) === 0;
        const fd = this.place(target, logical, h, () => fs.openSync(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, modeSet ? mode : 0o600))!;
        this.current = { fd, header: h, modeSet };
        return;
      }
      case 'symlink':
        this.place(target, logical, h, () => fs.symlinkSync(h.linkname, target));
        fs.lchownSync(target, uid, gid);
        return;
      case 'link': {
        const linkParts = entryParts(h.linkname);
        const src = resolveScoped(this.view.root, path.posix.join(this.dest.logical, ...linkParts), { mounts: this.view.mounts, followLast: false });
        this.place(target, logical, h, () => fs.linkSync(src.host, target));
        fs.lchownSync(target, uid, gid);
        fs.chmodSync(target, mode);
        fs.utimesSync(target, mtime, mtime);
        return;
      }
      default:
        // Devices, fifos: not created by cp (an unprivileged request must not make devices).
        return;
    }
  }

  /** Files are created by root: only another owner needs the chown; the mode unless open set it. */
  protected finishFile(cur: OpenFile<{ modeSet: boolean }>): void {
    const { uid, gid } = this.ownerOf(cur.header);
    if (uid !== 0 || gid !== 0) fs.fchownSync(cur.fd, uid, gid);
    if (!cur.modeSet) fs.fchmodSync(cur.fd, cur.header.mode & 0o7777);
  }
}
