// File-system helpers shared by the stores: atomic writes (temp file, fsync, rename, fsync of the
// directory) so that a crash at any moment leaves either the old or the new file, never half.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export function tempNameBeside(file: string): string {
  return path.join(path.dirname(file), `.tmp-${path.basename(file)}-${randomBytes(6).toString('hex')}`);
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** Writes data to file atomically and durably. */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempNameBeside(file);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(file));
}

/** writeFileAtomic without blocking the event loop: every step on the thread pool. */
export async function writeFileAtomicAsync(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempNameBeside(file);
  const fh = await fs.promises.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDirAsync(path.dirname(file));
}

export async function fsyncDirAsync(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/**
 * Replaces file with data atomically (temp file, rename) but without fsync. For files that need
 * not survive a power loss: state under the exec root (a tmpfs on a normal host, gone with a
 * reboot anyway) and files rewritten at every container start. A daemon killed at any moment
 * still leaves the old file or the new one; on a busy disk each fsync cost tens of milliseconds.
 */
export function writeFileReplace(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempNameBeside(file);
  try {
    fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes all of buf to fd synchronously, straight from the caller's buffer: one syscall per piece
 * with no thread-pool round trip, which is what makes extracting many small files fast.
 */
export function writeAllSync(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

export function readJsonIfExists<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function mkdirp(dir: string, mode = 0o755): void {
  fs.mkdirSync(dir, { recursive: true, mode });
}

/**
 * The bytes a tree's files hold, as dockerd's graph drivers report a writable layer's size
 * (SizeRw): apparent sizes of everything but directories, hardlinks once. Allocated blocks would
 * show a fresh container as 4 kB (its root directory) where docker shows 0 B.
 */
export function contentSize(dir: string): number {
  const seen = new Set<string>();
  let size = 0;
  const visit = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p)) visit(path.join(p, name));
      return;
    }
    const key = `${st.dev}:${st.ino}`;
    if (st.nlink > 1) {
      if (seen.has(key)) return;
      seen.add(key);
    }
    size += st.size;
  };
  visit(dir);
  return size;
}
