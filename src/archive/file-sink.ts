// The part of a cp tar sink that writes regular files: the file being written, its body, its
// owner and mode once written, and directory times set last. The copy-in (berthd, into a
// container) and copy-out (the client, onto the host) sinks differ only in how they place entries
// and which owner and mode they give a finished file.
import * as fs from 'node:fs';
import { writeAllSync } from '../common/fsutil';
import type { TarHeader } from './reader';

/** A regular file being written: its fd and header, plus what the sink noted when opening it. */
export type OpenFile<Extra extends object> = { fd: number; header: TarHeader } & Extra;

export abstract class RegularFileSink<Extra extends object = object> {
  protected current: OpenFile<Extra> | undefined;
  /** Directories to give their tar mtime after everything below them is written. */
  protected readonly dirTimes: { file: string; mtime: Date | number }[] = [];

  /** The owner and mode of a written file (before its times are set and it is closed). */
  protected abstract finishFile(file: OpenFile<Extra>): void;

  data(chunk: Buffer): void {
    const cur = this.current;
    if (cur === undefined) return;
    writeAllSync(cur.fd, chunk);
  }

  end(): void {
    const cur = this.current;
    if (cur === undefined) return;
    this.current = undefined;
    const h = cur.header;
    try {
      this.finishFile(cur);
      fs.futimesSync(cur.fd, h.mtime, h.mtime);
    } finally {
      fs.closeSync(cur.fd);
    }
  }

  /** Closes the file being written, if any (the copy failed). */
  abort(): void {
    const cur = this.current;
    this.current = undefined;
    if (cur !== undefined) fs.closeSync(cur.fd);
  }

  /** Directory times last: entries written below a directory change its mtime. */
  finish(): void {
    for (const d of this.dirTimes.reverse()) fs.utimesSync(d.file, d.mtime, d.mtime);
  }
}
