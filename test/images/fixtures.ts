// Small root filesystems for image tests, made from Debian's busybox-static: real binaries, so
// the same tars serve container tests too.
import * as fs from 'node:fs';
import * as tar from 'tar-stream';

export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  mode?: number;
  data?: Buffer | string;
  linkname?: string;
  uid?: number;
  gid?: number;
}

/** Builds a tar in memory from explicit entries (used for hostile layers too). */
export function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => { chunks.push(c as Buffer); });
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), mtime: new Date(1_700_000_000_000), uid: e.uid ?? 0, gid: e.gid ?? 0, linkname: e.linkname };
    if (type === 'file') pack.entry(header, typeof e.data === 'string' ? Buffer.from(e.data) : e.data ?? Buffer.alloc(0));
    else pack.entry(header);
  }
  pack.finalize();
  return done;
}

/** A minimal busybox root filesystem: /bin/busybox, sh and a few applets, /etc/passwd. */
export function busyboxRootfs(extra: TarEntry[] = []): Promise<Buffer> {
  const applets = ['sh', 'echo', 'cat', 'ls', 'sleep', 'true', 'false', 'touch', 'rm', 'id', 'env', 'ps', 'mkdir', 'hostname', 'wc', 'head', 'seq', 'yes', 'dd', 'test'];
  return makeTar([
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', mode: 0o755, data: fs.readFileSync('/bin/busybox') },
    ...applets.map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
    { name: 'etc/group', data: 'root:x:0:\nnogroup:x:65534:\n' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'root/', type: 'directory', mode: 0o700 },
    ...extra,
  ]);
}
