// The files of one container's log, all in conmon's k8s-file format:
//
//   <dir>/container.log        what conmon was told to write: for a rotating driver a symlink to
//                              the current generation (conmon opens through it), or a plain file
//                              conmon made itself (see rotate.ts)
//   <dir>/container.log.tmp    for a rotating driver, a symlink to an empty new generation: the
//                              name conmon opens when it switches files, then renames over
//                              container.log (so it renames the symlink, never a generation)
//   <dir>/log-files/<seq>.log  generations, oldest first by number; <seq>.log.gz compressed
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The name conmon opens before renaming it over the log (its reopen). */
export const TMP_SUFFIX = '.tmp';
/** A compressed file being written. */
export const GZ_TMP_SUFFIX = '.tmp-gz';
const GEN_RE = /^(\d+)\.log(\.gz)?$/;

export interface LogFile {
  path: string;
  compressed: boolean;
  /** The generation's number (files in log-files/). */
  seq?: number;
}

export interface Generation extends LogFile {
  seq: number;
}

/** Where a log's generations live. */
export function generationsDir(logPath: string): string {
  return path.join(path.dirname(logPath), 'log-files');
}

export function generationPath(logPath: string, seq: number): string {
  return path.join(generationsDir(logPath), `${String(seq).padStart(10, '0')}.log`);
}

/** The generation conmon's next switch will open (the target of <log>.tmp), if armed. */
export function armedTarget(logPath: string): string | undefined {
  try {
    return path.resolve(path.dirname(logPath), fs.readlinkSync(logPath + TMP_SUFFIX));
  } catch {
    return undefined;
  }
}

/** Every generation file, oldest first, the armed (empty, not yet used) one included. */
export function allGenerations(logPath: string): Generation[] {
  const dir = generationsDir(logPath);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: Generation[] = [];
  for (const name of names) {
    const m = GEN_RE.exec(name);
    if (m) out.push({ path: path.join(dir, name), seq: Number(m[1]), compressed: m[2] !== undefined });
  }
  // A file being compressed exists in both forms only inside one locked step; prefer the plain one.
  out.sort((a, b) => a.seq - b.seq || Number(a.compressed) - Number(b.compressed));
  return out.filter((g, i) => i === 0 || out[i - 1].seq !== g.seq);
}

/**
 * Every file of the log, oldest first: the generations (without the armed one), then the log's
 * own name (the current file, through the symlink, or a file conmon made itself). A reader
 * counts each inode once, where it comes last.
 */
export function logFiles(logPath: string): LogFile[] {
  // The armed target is read before anything else: if conmon switches meanwhile, the file it
  // switched to is found again as the current one.
  const armed = armedTarget(logPath);
  return [...allGenerations(logPath).filter((g) => g.path !== armed), { path: logPath, compressed: false }];
}

/** Total bytes of the log's files (each inode once). */
export function logSize(logPath: string): number {
  const seen = new Set<number>();
  let total = 0;
  const files = [...allGenerations(logPath).map((g) => g.path), logPath];
  for (const f of files) {
    const st = fs.statSync(f, { throwIfNoEntry: false });
    if (!st || seen.has(st.ino)) continue;
    seen.add(st.ino);
    total += st.size;
  }
  return total;
}
