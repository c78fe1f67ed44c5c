// Sealed memfd copies of the OCI runtime binary, which berthd keeps open and runs the runtime
// from (/proc/<berthd>/fd/<n>): for health probes, for conmon's `<runtime> create` and exec, and
// for `<runtime> start|kill|delete`.
//
// crun and runc copy themselves before every command as their CVE-2019-5736 defence (a
// read-only bind mount or memfd, then a second execve and a second round of dynamic linking,
// which doubles their start-up cost); a binary that already runs from a fully sealed memfd is
// recognised as safe and the copy is skipped. The protection is the same: a container can
// neither write the memfd nor reach the host's file through it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { silentLogger, type Logger } from '../common/logger';
import { sealedCopy } from '../native';

interface SealedBinary {
  fd: number;
  /** Identity of the file it was copied from: a replaced binary (upgrade) is copied again. */
  stamp: string;
}

export class SealedBinaries {
  private readonly binaries = new Map<string, SealedBinary>();
  private warned = false;

  constructor(private readonly log: Logger = silentLogger) {}

  /**
   * /proc/<berthd>/fd/<n> of the sealed copy of the binary, or the binary itself if that fails.
   * The path is good only while berthd runs: give it to processes that exec it right away, and
   * record the real path.
   */
  executable(file: string): string {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return file;
    }
    const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    let b = this.binaries.get(file);
    if (b?.stamp !== stamp) {
      if (b) retire(b.fd);
      this.binaries.delete(file);
      try {
        b = { fd: sealedCopy(file, path.basename(file)), stamp };
        this.binaries.set(file, b);
      } catch (err) {
        if (!this.warned) this.log.warn('cannot make a sealed copy of the runtime; running it from disk', { path: file, error: (err as Error).message });
        this.warned = true;
        return file;
      }
    }
    return `/proc/${process.pid}/fd/${b.fd}`;
  }

  /** Closes the copies (after a grace period: a spawn may still be on its way). */
  close(): void {
    for (const b of this.binaries.values()) retire(b.fd);
    this.binaries.clear();
  }
}

/**
 * Closes a sealed copy a minute from now: a spawn queued a moment ago (or a conmon about to run
 * `<runtime> create`) may still be about to exec /proc/<pid>/fd/<n>, and closing it at once could
 * let that number name some other file by then.
 */
function retire(fd: number): void {
  setTimeout(() => {
    try { fs.closeSync(fd); } catch {}
  }, 60_000).unref();
}
