// Paths that must not leave a root: a container's root filesystem (cp, user lookup, mount points)
// and a build context or build stage. Symlinks are followed as a process chrooted into the root
// would follow them — an absolute target starts again at the root, ".." stops at it — as docker's
// FollowSymlinkInScope does, so no link planted in an image or container reaches a host file.
// A container's volumes and binds map logical paths under their destination to their host source.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidParameter } from './errors';

const MAX_SYMLINK_HOPS = 255;

/** A mount seen from inside the root: its destination there and the host directory behind it. */
export interface ScopedMount {
  destination: string;
  source: string;
}

export interface ScopedPath {
  /** The host path (it need not exist). */
  host: string;
  /** The cleaned path as seen inside the root, absolute. */
  logical: string;
}

/** Host path of a cleaned logical path: under the deepest mount covering it, else under root. */
function hostOf(root: string, mounts: readonly ScopedMount[], logical: string[]): string {
  const p = '/' + logical.join('/');
  let best: ScopedMount | undefined;
  for (const m of mounts) {
    const covers = p === m.destination || p.startsWith(m.destination === '/' ? '/' : m.destination + '/');
    if (covers && (!best || m.destination.length > best.destination.length)) best = m;
  }
  if (!best) return path.join(root, ...logical);
  return path.join(best.source, p.slice(best.destination.length));
}

/**
 * Resolves p inside root (with mounts), following symlinks within it; the last component is
 * followed only when followLast (default true).
 */
export function resolveScoped(root: string, p: string, opts: { mounts?: readonly ScopedMount[]; followLast?: boolean } = {}): ScopedPath {
  const mounts = opts.mounts ?? [];
  const followLast = opts.followLast ?? true;
  const todo = p.split('/').filter((c) => c !== '' && c !== '.');
  const cur: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '..') {
      cur.pop();
      continue;
    }
    const host = hostOf(root, mounts, [...cur, c]);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    if (st?.isSymbolicLink() && (todo.length > 0 || followLast)) {
      if (++hops > MAX_SYMLINK_HOPS) throw invalidParameter(`too many levels of symbolic links resolving ${p}`);
      const target = fs.readlinkSync(host);
      if (target.startsWith('/')) cur.length = 0;
      todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    cur.push(c);
  }
  return { host: hostOf(root, mounts, cur), logical: '/' + cur.join('/') };
}

/** resolveScoped without mounts: the host path of p inside root. */
export function resolveInRoot(root: string, p: string, followLast = true): string {
  return resolveScoped(root, p, { followLast }).host;
}
