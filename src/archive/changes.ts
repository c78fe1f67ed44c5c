// Filesystem changes of a container (`docker diff`), computed from its overlayfs upper directory
// and the lower directories beneath it, with docker's kinds.
import * as fs from 'node:fs';
import { lgetxattr } from '../native';
import { OVERLAY_OPAQUE_XATTR } from './apply';

export enum ChangeKind {
  Modified = 0,
  Added = 1,
  Deleted = 2,
}

export interface Change {
  Path: string;
  Kind: ChangeKind;
}

function lstatOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Changes recorded in upperDir relative to lowerDirs (top-most first, as overlay's lowerdir).
 * A directory whose own metadata is unchanged is reported only when something below it changed,
 * as docker does. Output is sorted by path.
 */
export function changes(upperDir: string, lowerDirs: string[]): Change[] {
  const upper = upperDir.replace(/\/+$/, '');
  const lowers = lowerDirs.map((d) => d.replace(/\/+$/, ''));
  const out = new Map<string, ChangeKind>();

  const inLower = (rel: string): fs.Stats | undefined => {
    for (const lower of lowers) {
      const st = lstatOrUndefined(`${lower}/${rel}`);
      if (st) return st;
    }
    return undefined;
  };

  const record = (rel: string, kind: ChangeKind): void => {
    out.set(`/${rel}`, kind);
    // A change below a directory means the directory changed too.
    for (let parent = rel.slice(0, Math.max(0, rel.lastIndexOf('/'))); parent !== ''; parent = parent.slice(0, Math.max(0, parent.lastIndexOf('/')))) {
      if (out.has(`/${parent}`)) break;
      out.set(`/${parent}`, ChangeKind.Modified);
    }
  };

  const walk = (rel: string, parentAdded: boolean): void => {
    const dir = rel === '' ? upper : `${upper}/${rel}`;
    for (const name of fs.readdirSync(dir).sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const abs = `${upper}/${childRel}`;
      const st = fs.lstatSync(abs);
      if (st.isCharacterDevice() && st.rdev === 0) {
        if (!parentAdded) record(childRel, ChangeKind.Deleted);
        continue;
      }
      if (parentAdded) {
        record(childRel, ChangeKind.Added);
        if (st.isDirectory()) walk(childRel, true);
        continue;
      }
      const lower = inLower(childRel);
      if (!lower) {
        record(childRel, ChangeKind.Added);
        if (st.isDirectory()) walk(childRel, true);
        continue;
      }
      if (st.isDirectory() && lower.isDirectory()) {
        const opaque = lgetxattr(abs, OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
        if (opaque) {
          // Removed and re-created: what the lower layers had below it is gone.
          record(childRel, ChangeKind.Modified);
          for (const lowerName of lowerNames(childRel)) {
            if (lstatOrUndefined(`${abs}/${lowerName}`) === undefined) record(`${childRel}/${lowerName}`, ChangeKind.Deleted);
          }
          walk(childRel, true);
          continue;
        }
        const same = st.mode === lower.mode && Math.floor(st.mtimeMs) === Math.floor(lower.mtimeMs) && st.uid === lower.uid && st.gid === lower.gid;
        if (!same) record(childRel, ChangeKind.Modified);
        walk(childRel, false);
        continue;
      }
      record(childRel, ChangeKind.Modified);
      if (st.isDirectory()) walk(childRel, true); // a directory replacing a file: all new
    }
  };

  const lowerNames = (rel: string): string[] => {
    const names = new Set<string>();
    for (const lower of lowers) {
      try {
        for (const n of fs.readdirSync(`${lower}/${rel}`)) names.add(n);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      }
    }
    return [...names].sort();
  };

  walk('', false);
  return [...out.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([Path, Kind]) => ({ Path, Kind }));
}
