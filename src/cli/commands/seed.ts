// `berth image seed busybox|debian`: base images built on this machine, without a registry.
// busybox: a rootfs tar made in memory from Debian's static busybox, deterministic (fixed mtimes,
// sorted entries, fixed owners) so the same binary always gives the same layer.
// debian: debootstrap's minbase bookworm, tarred once and cached, then imported.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import * as tarStream from 'tar-stream';
import { displayJSONMessages } from '../client';
import type { CommandContext } from '../command';

/** 2000-01-01T00:00:00Z: every entry of the seeded busybox tar carries this mtime. */
export const SEED_MTIME = new Date(946684800 * 1000);

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`;

const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`;

const SHADOW = `root:*::0:::::
daemon:*::0:::::
bin:*::0:::::
sys:*::0:::::
sync:*::0:::::
mail:*::0:::::
www-data:*::0:::::
operator:*::0:::::
nobody:*::0:::::
`;

/** The applet names a busybox binary provides (from `busybox --list-full`, which it answers itself). */
export function busyboxApplets(busybox: string): string[] {
  const r = spawnSync(busybox, ['--list-full'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${busybox} --list-full failed: ${r.error?.message ?? r.stderr}`);
  const names = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const name = path.posix.basename(line.trim());
    if (name && name !== 'busybox' && !name.includes('/')) names.add(name);
  }
  return [...names].sort();
}

interface SeedEntry {
  header: Partial<tarStream.Header> & { name: string };
  body?: Buffer;
}

/**
 * The busybox rootfs, as the official image lays it out: /bin/busybox with every applet a
 * hardlink to it in /bin, the account files, and the usual empty directories.
 */
export function busyboxEntries(busybox: string): SeedEntry[] {
  const binary = fs.readFileSync(busybox);
  const base = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: SEED_MTIME };
  const dir = (name: string, mode = 0o755): SeedEntry => ({ header: { ...base, name: `${name}/`, type: 'directory', mode } });
  const file = (name: string, body: string | Buffer, mode = 0o644): SeedEntry => {
    const b = typeof body === 'string' ? Buffer.from(body) : body;
    return { header: { ...base, name, type: 'file', mode, size: b.length }, body: b };
  };
  const link = (name: string): SeedEntry => ({ header: { ...base, name, type: 'link', linkname: 'bin/busybox', mode: 0o755, size: 0 } });
  const entries: SeedEntry[] = [
    dir('bin'),
    file('bin/busybox', binary, 0o755),
    ...busyboxApplets(busybox).map((a) => link(`bin/${a}`)),
    dir('dev'),
    dir('etc'),
    file('etc/group', GROUP),
    file('etc/passwd', PASSWD),
    file('etc/shadow', SHADOW, 0o600),
    dir('home'),
    dir('root', 0o700),
    dir('tmp', 0o1777),
    dir('usr'),
    dir('usr/bin'),
    // Scripts commonly start with #!/usr/bin/env; the official image has no /usr/bin/env, but a
    // link costs nothing and saves surprises.
    link('usr/bin/env'),
    dir('usr/sbin'),
    dir('var'),
    dir('var/spool'),
    dir('var/spool/mail'),
    dir('var/www'),
  ];
  return entries;
}

/** Streams entries as a tar archive. */
export function packEntries(entries: SeedEntry[]): Readable {
  const pack = tarStream.pack();
  (async () => {
    for (const e of entries) {
      await new Promise<void>((resolve, reject) => {
        const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
        if (e.body) pack.entry(e.header, e.body, cb);
        else pack.entry(e.header, cb);
      });
    }
    pack.finalize();
  })().catch((err: Error) => pack.destroy(err));
  return pack as unknown as Readable;
}

async function importTar(ctx: CommandContext, body: Readable, repo: string, tag: string, cmd: string[]): Promise<string> {
  let id = '';
  const res = await ctx.client.request('POST', '/images/create', {
    query: { fromSrc: '-', repo, tag, changes: [`CMD ${JSON.stringify(cmd)}`], message: `berth image seed ${repo}` },
    body,
    headers: { 'Content-Type': 'application/x-tar' },
  });
  // The import stream's last status is the new image ID.
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const s = chunk.toString().trim();
      if (s.startsWith('sha256:')) id = s;
      cb();
    },
  });
  await displayJSONMessages(res, sink);
  return id;
}

export async function seedBusybox(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  const busybox = (v.busybox as string | undefined) ?? '/bin/busybox';
  if (!fs.existsSync(busybox)) throw new Error(`${busybox} not found: install Debian's busybox-static`);
  ctx.out(`Building busybox rootfs from ${busybox}\n`);
  const entries = busyboxEntries(busybox);
  ctx.out(`Importing ${entries.length} entries as busybox:latest\n`);
  const id = await importTar(ctx, packEntries(entries), 'busybox', 'latest', ['sh']);
  ctx.out(`${id}\nTagged busybox:latest\n`);
  return 0;
}

/** The Debian mirror apt uses on this machine (deb822 .sources or one-line .list files). */
export function aptMirror(root = '/etc/apt'): string {
  const files: string[] = [];
  if (fs.existsSync(path.join(root, 'sources.list'))) files.push(path.join(root, 'sources.list'));
  const d = path.join(root, 'sources.list.d');
  if (fs.existsSync(d)) for (const f of fs.readdirSync(d).sort()) if (/\.(list|sources)$/.test(f)) files.push(path.join(d, f));
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'mi').exec(stanza)?.[1]?.trim() ?? '';
        if (/^(yes|true)$/i.test(field('Enabled') || 'yes') && /\bdeb\b/.test(field('Types')) && /\bbookworm\b/.test(field('Suites')) && !/security/.test(field('URIs'))) {
          return field('URIs').split(/\s+/)[0];
        }
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/.exec(line);
        if (m) return m[1];
      }
    }
  }
  return 'http://deb.debian.org/debian';
}

export function seedCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_CACHE_HOME ? path.join(env.XDG_CACHE_HOME, 'berth', 'seed') : '/var/cache/berth/seed';
}

function runStreaming(ctx: CommandContext, cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const forward = (b: Buffer): void => {
      for (const line of b.toString().split('\n')) if (line.trim()) ctx.out(`  ${line.trim()}\n`);
    };
    p.stdout.on('data', forward);
    p.stderr.on('data', forward);
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with status ${code}`))));
  });
}

/** Mounts debootstrap may leave under dir when it fails half-way (proc, sys, dev/pts). */
function unmountUnder(dir: string): void {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m && (m === dir || m.startsWith(dir + '/')));
  for (const m of mounts.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
}

export async function seedDebian(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  const cacheDir = seedCacheDir(ctx.io.env);
  const cached = path.join(cacheDir, 'debian-bookworm.tar');
  if (v.refresh || !fs.existsSync(cached)) {
    const mirror = (v.mirror as string | undefined) ?? aptMirror();
    fs.mkdirSync(cacheDir, { recursive: true });
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-seed-debian-'));
    const rootfs = path.join(work, 'rootfs');
    let tmpTar: string | undefined;
    try {
      ctx.out(`Running debootstrap --variant=minbase bookworm from ${mirror}\n`);
      await runStreaming(ctx, 'debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror]);
      unmountUnder(rootfs);
      // No apt lists or caches in the image, as the official one.
      for (const d of ['var/lib/apt/lists', 'var/cache/apt/archives']) {
        for (const f of fs.readdirSync(path.join(rootfs, d), { withFileTypes: true })) if (f.isFile() && f.name !== 'lock') fs.rmSync(path.join(rootfs, d, f.name));
      }
      ctx.out(`Creating ${cached}\n`);
      const tmp = `${cached}.tmp-${process.pid}`;
      tmpTar = tmp;
      await runStreaming(ctx, 'tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '--sort=name', '-C', rootfs, '-cf', tmp, '.']);
      const fd = fs.openSync(tmp, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, cached);
      tmpTar = undefined;
    } finally {
      if (tmpTar) fs.rmSync(tmpTar, { force: true });
      unmountUnder(rootfs);
      fs.rmSync(work, { recursive: true, force: true });
    }
  } else {
    ctx.out(`Using cached ${cached}\n`);
  }
  ctx.out('Importing as debian:bookworm\n');
  const id = await importTar(ctx, fs.createReadStream(cached), 'debian', 'bookworm', ['bash']);
  await ctx.client.call('POST', '/images/debian:bookworm/tag', { query: { repo: 'debian', tag: 'latest' } });
  ctx.out(`${id}\nTagged debian:bookworm\nTagged debian:latest\n`);
  return 0;
}
