// docker cp with the real docker CLI: both directions, tar streams on stdin/stdout, a stopped
// container, volumes, and symlinks planted in the container that try to reach the host.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as http from 'node:http';
import * as path from 'node:path';
import * as tar from 'tar-stream';
import { api } from '../helpers/daemon';
import { setupDaemon, tarNames, type CtrEnv } from './fixtures';

let env: CtrEnv;
let work: string;

before(async () => {
  env = await setupDaemon('cp');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cp-work-'));
});
after(async () => {
  await env?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('docker cp', () => {
  it('copies files both ways into a running container, including tar streams', async () => {
    const dk = env.docker;
    const run = await dk(['run', '-d', '--name', 'live', '-v', 'cpvol:/vol', 'busybox', 'sh', '-c', 'mkdir -p /srv/sub && echo inner > /srv/sub/f && echo v > /vol/v && sleep 300']);
    assert.equal(run.code, 0, run.stderr);
    for (let i = 0; i < 50 && (await dk(['exec', 'live', 'test', '-f', '/srv/sub/f'])).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    const out = await dk(['cp', 'live:/srv', path.join(work, 'srv')]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(fs.readFileSync(path.join(work, 'srv', 'sub', 'f'), 'utf8'), 'inner\n');
    const vol = await dk(['cp', 'live:/vol/v', path.join(work, 'v')]);
    assert.equal(vol.code, 0, vol.stderr);
    assert.equal(fs.readFileSync(path.join(work, 'v'), 'utf8'), 'v\n');

    fs.writeFileSync(path.join(work, 'up.txt'), 'uploaded\n', { mode: 0o640 });
    const up = await dk(['cp', path.join(work, 'up.txt'), 'live:/tmp/up.txt']);
    assert.equal(up.code, 0, up.stderr);
    const cat = await dk(['exec', 'live', 'sh', '-c', 'cat /tmp/up.txt; stat -c "%a %u" /tmp/up.txt']);
    assert.equal(cat.stdout, 'uploaded\n640 0\n');

    const stream = await dk(['cp', 'live:/srv/sub', '-']);
    assert.equal(stream.code, 0, stream.stderr);
    assert.deepEqual((await tarNames(stream.stdoutBuf)).sort(), ['sub', 'sub/f']);
    const tarIn = await dk(['cp', '-', 'live:/tmp'], { input: stream.stdoutBuf });
    assert.equal(tarIn.code, 0, tarIn.stderr);
    assert.equal((await dk(['exec', 'live', 'cat', '/tmp/sub/f'])).stdout, 'inner\n');

    const missing = await dk(['cp', 'live:/nope', work]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /Could not find the file \/nope in container live/);
    const head = await api(env.d.socket, 'HEAD', '/containers/live/archive?path=/srv');
    assert.equal(head.status, 200);
    const stat = JSON.parse(Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString()) as { name: string; mode: number };
    assert.equal(stat.name, 'srv');
    assert.ok(stat.mode >= 2 ** 31, 'directory bit set');
    assert.equal((await api(env.d.socket, 'HEAD', '/containers/live/archive?path=/nope')).status, 404);
    await dk(['rm', '-f', '-v', 'live']);
  });

  it('works on a stopped container', async () => {
    const dk = env.docker;
    assert.equal((await dk(['run', '--name', 'stopped', 'busybox', 'sh', '-c', 'echo saved > /root/s'])).code, 0);
    const got = await dk(['cp', 'stopped:/root/s', path.join(work, 's')]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(fs.readFileSync(path.join(work, 's'), 'utf8'), 'saved\n');
    fs.writeFileSync(path.join(work, 'in'), 'put\n');
    assert.equal((await dk(['cp', path.join(work, 'in'), 'stopped:/root/in'])).code, 0);
    const back = await dk(['start', '-a', 'stopped']);
    assert.equal(back.code, 0);
    const check = await dk(['cp', 'stopped:/root/in', '-']);
    assert.deepEqual(await tarNames(check.stdoutBuf), ['in']);
    await dk(['rm', 'stopped']);
  });

  it('sends the tar on the bare connection (big files whole); a client leaving early frees everything', async () => {
    const dk = env.docker;
    assert.equal((await dk(['run', '-d', '--name', 'raw', 'busybox', 'sleep', '300'])).code, 0);
    const big = Buffer.alloc(5 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i * 2654435761 >>> 0, i);
    fs.mkdirSync(path.join(work, 'rawdata'));
    fs.writeFileSync(path.join(work, 'rawdata', 'big'), big);
    fs.writeFileSync(path.join(work, 'rawdata', 'small'), 'small\n');
    const up = await dk(['cp', path.join(work, 'rawdata'), 'raw:/data']);
    assert.equal(up.code, 0, up.stderr);
    // 25 MiB in all: more than the socket holds, so that the early leaver below leaves mid-copy.
    assert.equal((await dk(['exec', 'raw', 'sh', '-c', 'for i in 1 2 3 4; do cat /data/big > /data/copy$i; done'])).code, 0);

    const get = (): Promise<http.IncomingMessage> => new Promise((resolve, reject) => {
      http.get({ socketPath: env.d.socket, path: '/containers/raw/archive?path=/data' }, resolve).on('error', reject);
    });
    const res = await get();
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.headers['transfer-encoding'], undefined, 'not chunked: the body ends with the connection');
    assert.equal(res.headers['content-length'], undefined);
    const files = new Map<string, Buffer>();
    const extract = tar.extract();
    extract.on('entry', (h, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (b: unknown) => void parts.push(b as Buffer));
      stream.on('end', () => { files.set(h.name, Buffer.concat(parts)); next(); });
    });
    await new Promise<void>((resolve, reject) => {
      extract.on('finish', resolve).on('error', reject);
      res.pipe(extract);
    });
    assert.ok(files.get('data/big')?.equals(big), 'the big file, byte for byte');
    assert.equal(files.get('data/small')?.toString(), 'small\n');
    assert.ok(files.get('data/copy4')?.equals(big));

    // A client that reads a little and leaves: berthd closes what it opened, the container thaws.
    const pid = env.d.proc.pid!;
    const fds = (): number => fs.readdirSync(`/proc/${pid}/fd`).length;
    const before = fds();
    const partial = await get();
    await new Promise((resolve) => partial.once('data', resolve));
    partial.destroy();
    let now = fds();
    for (let i = 0; i < 40 && now !== before; i++) {
      await new Promise((r) => setTimeout(r, 50));
      now = fds();
    }
    assert.equal(now, before, 'berthd holds no file or socket of the abandoned copy');
    assert.equal((await api(env.d.socket, 'GET', '/_ping')).status, 200);
    const state = (await api(env.d.socket, 'GET', '/containers/raw/json')).json<{ State: { Status: string; Paused: boolean } }>().State;
    assert.deepEqual([state.Status, state.Paused], ['running', false]);
    await dk(['rm', '-f', 'raw']);
  });

  it('never follows a planted symlink out of the container', async () => {
    const dk = env.docker;
    const c = await dk(['run', '--name', 'evil', 'busybox', 'sh', '-c', 'ln -s / /evil && ln -s /etc/passwd /pw && mkdir -p /etc && echo container-shadow > /etc/shadow']);
    assert.equal(c.code, 0, c.stderr);
    const shadow = await dk(['cp', 'evil:/evil/etc/shadow', path.join(work, 'shadow')]);
    assert.equal(shadow.code, 0, shadow.stderr);
    assert.equal(fs.readFileSync(path.join(work, 'shadow'), 'utf8'), 'container-shadow\n');
    const dotdot = await dk(['cp', 'evil:/../../../../etc/shadow', path.join(work, 'shadow2')]);
    assert.equal(fs.readFileSync(path.join(work, 'shadow2'), 'utf8'), 'container-shadow\n', dotdot.stderr);

    const marker = `berth-cp-escape-${process.pid}`;
    fs.writeFileSync(path.join(work, marker), 'x');
    const put = await dk(['cp', path.join(work, marker), `evil:/evil/tmp/${marker}`]);
    assert.equal(fs.existsSync(path.join('/tmp', marker)), false, 'host /tmp must not be written');
    assert.equal(put.code, 0, put.stderr);
    const inside = await dk(['cp', `evil:/tmp/${marker}`, '-']);
    assert.deepEqual(await tarNames(inside.stdoutBuf), [marker]);

    // A tar that plants a link and writes through it, or climbs out with "..", stays inside too.
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (b) => {
      chunks.push(b as Buffer);
    });
    const done = new Promise<void>((r) => pack.on('end', () => r()));
    pack.entry({ name: 'hostlink', type: 'symlink', linkname: '/' });
    pack.entry({ name: `hostlink/tmp/${marker}-2`, mode: 0o644 }, 'through-link');
    pack.finalize();
    await done;
    const through = await api(env.d.socket, 'PUT', '/containers/evil/archive?path=/', Buffer.concat(chunks), { 'Content-Type': 'application/x-tar' });
    assert.equal(through.status, 200, through.body.toString());
    assert.equal(fs.existsSync(path.join('/tmp', `${marker}-2`)), false);
    const climb = tar.pack();
    const cchunks: Buffer[] = [];
    climb.on('data', (b) => {
      cchunks.push(b as Buffer);
    });
    const cdone = new Promise<void>((r) => climb.on('end', () => r()));
    climb.entry({ name: `../../../../tmp/${marker}-3`, mode: 0o644 }, 'climb');
    climb.finalize();
    await cdone;
    const up = await api(env.d.socket, 'PUT', '/containers/evil/archive?path=/tmp', Buffer.concat(cchunks), { 'Content-Type': 'application/x-tar' });
    assert.equal(up.status, 400, up.body.toString());
    assert.equal(fs.existsSync(path.join('/tmp', `${marker}-3`)), false);
    await dk(['rm', 'evil']);
  });
  it('freezes a running container for the copy (no symlink swap can race it), without a state change', async () => {
    const dk = env.docker;
    const run = await dk(['run', '-d', '--name', 'frz', 'busybox', 'sh', '-c', 'dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null && touch /ready; exec sleep 300']);
    assert.equal(run.code, 0, run.stderr);
    for (let i = 0; i < 100 && (await dk(['exec', 'frz', 'test', '-f', '/ready'])).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    const pid = JSON.parse((await dk(['inspect', '-f', '{{json .State.Pid}}', 'frz'])).stdout) as number;
    // The container's v1 freezer cgroup, from its main process.
    const rel = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1] === 'freezer')!.split(':')[2];
    const mnt = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup' && f[f.length - 1].split(',').includes('freezer'))![4];
    const freezer = (): string => fs.readFileSync(path.join(mnt, rel, 'freezer.state'), 'utf8').trim();
    assert.equal(freezer(), 'THAWED');
    // Start a GET of a 32 MB file and hold the response unread: the copy is in progress.
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ socketPath: env.d.socket, path: '/containers/frz/archive?path=/big' }, resolve).on('error', reject);
    });
    assert.equal(res.statusCode, 200);
    res.pause();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(freezer(), 'FROZEN');
    assert.equal((await api(env.d.socket, 'GET', '/containers/frz/json')).status, 200);
    let bytes = 0;
    res.on('data', (c: Buffer) => { bytes += c.length; });
    res.resume();
    await new Promise((r) => res.on('end', r));
    assert.ok(bytes > 32 * 1024 * 1024, `got ${bytes} bytes`);
    for (let i = 0; i < 50 && freezer() !== 'THAWED'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(freezer(), 'THAWED');
    assert.match((await dk(['inspect', '-f', '{{.State.Status}}', 'frz'])).stdout, /^running$/m);
    await dk(['rm', '-f', 'frz']);
  });
});
