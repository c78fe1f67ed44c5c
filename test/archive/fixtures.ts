// Helpers for archive tests: temp dirs with this suite's prefix, and tars built entry by entry
// with tar-stream's pack (which writes any header, hostile ones included).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import * as tar from 'tar-stream';

export interface TestContext {
  after(fn: () => void | Promise<void>): void;
}

export function tempDir(t: TestContext, what = 'archive'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `berth-storage-test-${what}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export type FixtureEntry = Partial<tar.Header> & { name: string; body?: string | Buffer; pax?: Record<string, string> };

export const FIXED_MTIME = new Date('2020-02-02T02:02:02Z');

/** A tar of the given entries (defaults: mtime FIXED_MTIME, type from body/name). */
export async function makeTar(entries: FixtureEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const done = (async () => {
    const parts: Buffer[] = [];
    for await (const c of pack) parts.push(c as Buffer);
    return Buffer.concat(parts);
  })();
  for (const e of entries) {
    const { body, ...header } = e;
    header.mtime ??= FIXED_MTIME;
    header.type ??= e.name.endsWith('/') ? 'directory' : 'file';
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (header.type === 'file') pack.entry(header as tar.Header, body ?? '', cb);
      else pack.entry(header as tar.Header, cb);
    });
  }
  pack.finalize();
  return done;
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function collect(s: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** Names of a tar's entries, with their types, in order. */
export async function listTar(buf: Buffer): Promise<{ name: string; type: string; linkname: string | null; pax?: unknown }[]> {
  const extract = tar.extract();
  const out: { name: string; type: string; linkname: string | null; pax?: unknown }[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      out.push({ name: entry.header.name, type: entry.header.type, linkname: entry.header.linkname ?? null, pax: entry.header.pax });
      entry.resume();
    }
  })();
  extract.end(buf);
  await done;
  return out;
}
