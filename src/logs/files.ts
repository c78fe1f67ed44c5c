// The files of one container's log, all in conmon's k8s-file format:
//
//   container.log          the current file, written by conmon
//   container.log.hold     berthd's hard link to the file conmon writes (drivers that rotate):
//                          when conmon replaces container.log, the finished file lives on here
//   container.log.next     an empty file berthd also links as container.log.tmp, the name conmon
//                          opens (O_TRUNC, harmless on an empty file) and renames over the log
//   container.log.<n>      rotated files, 1 the newest; .<n>.gz when compressed (docker's names)
import * as fs from 'node:fs';
import * as path from 'node:path';

export const HOLD_SUFFIX = '.hold';
/** The empty file berthd links as conmon's <log>.tmp, so that the next file conmon opens is held already. */
export const NEXT_SUFFIX = '.next';
/** The name conmon opens before renaming it over the log (its reopen). */
export const TMP_SUFFIX = '.tmp';
/** A compressed file being written. */
export const GZ_TMP_SUFFIX = '.tmp-gz';
const ROTATED_RE = /^(\d+)(\.gz)?$/;

export interface LogFile {
  path: string;
  compressed: boolean;
}

/** The rotated files of a log, oldest first (highest number first). */
export function rotatedFiles(logPath: string): (LogFile & { n: number })[] {
  const dir = path.dirname(logPath);
  const base = path.basename(logPath) + '.';
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: (LogFile & { n: number })[] = [];
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const m = ROTATED_RE.exec(name.slice(base.length));
    if (!m) continue;
    out.push({ path: path.join(dir, name), compressed: m[2] !== undefined, n: Number(m[1]) });
  }
  // A file being compressed may briefly exist in both forms only across an await, never in one
  // synchronous listing; still, prefer the compressed one if both are seen.
  out.sort((a, b) => b.n - a.n || Number(b.compressed) - Number(a.compressed));
  return out.filter((f, i) => i === 0 || out[i - 1].n !== f.n);
}

/** Every file of the log, oldest first: rotated ones, the held one, the current one. */
export function logFiles(logPath: string): LogFile[] {
  return [
    ...rotatedFiles(logPath).map(({ path: p, compressed }) => ({ path: p, compressed })),
    { path: logPath + HOLD_SUFFIX, compressed: false },
    { path: logPath + NEXT_SUFFIX, compressed: false },
    { path: logPath, compressed: false },
  ];
}

/** Total bytes of the log's files (each inode once). */
export function logSize(logPath: string): number {
  const seen = new Set<number>();
  let total = 0;
  for (const f of logFiles(logPath)) {
    const st = fs.statSync(f.path, { throwIfNoEntry: false });
    if (!st || seen.has(st.ino)) continue;
    seen.add(st.ino);
    total += st.size;
  }
  return total;
}
