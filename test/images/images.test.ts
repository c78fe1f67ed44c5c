// The image endpoints through the real docker CLI and raw API calls, against a real berthd:
// import with changes, list with flags and filters, tag, inspect, history, save/load round trip,
// rmi, prune, system df, and docker-shaped errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs, makeTar } from './fixtures';

let d: TestDaemon;
let rootfsTar: string;
let imageId: string;

before(async () => {
  d = await startDaemon({ name: 'images' });
  rootfsTar = path.join(d.dir, 'rootfs.tar');
  fs.writeFileSync(rootfsTar, await busyboxRootfs());
  const r = await docker(d, ['import', '-c', 'CMD ["sh"]', '-c', 'ENV FOO=bar', '-c', 'LABEL team=core', '-c', 'WORKDIR /tmp', '-m', 'seeded', rootfsTar, 'busybox:latest']);
  assert.equal(r.code, 0, r.stderr);
  imageId = r.stdout.trim();
  assert.match(imageId, /^sha256:[a-f0-9]{64}$/);
});
after(async () => { await destroyDaemon(d); });

test('import applies changes and message to the config', async () => {
  const r = await docker(d, ['image', 'inspect', 'busybox', '--format', '{{json .Config.Cmd}} {{json .Config.Env}} {{.Config.WorkingDir}} {{index .Config.Labels "team"}} {{.Comment}} {{.Os}}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '["sh"] ["FOO=bar"] /tmp core seeded linux');
  const bad = await api(d.socket, 'POST', `/images/create?fromSrc=-&repo=x&changes=${encodeURIComponent('RUN true')}`, await busyboxRootfs());
  assert.equal(bad.status, 400);
  assert.match(bad.json<{ message: string }>().message, /RUN is not a valid change command/);
});

test('images lists with -q, --digests, --no-trunc, --format and filters', async () => {
  const q = await docker(d, ['images', '-q']);
  assert.equal(q.stdout.trim(), imageId.slice(7, 19));
  const full = await docker(d, ['images', '--no-trunc', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}']);
  assert.equal(full.stdout.trim(), `${imageId} busybox:latest`);
  const table = await docker(d, ['images']);
  assert.match(table.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n/);
  assert.match(table.stdout, /busybox\s+latest\s+[a-f0-9]{12}\s+/);
  const digests = await docker(d, ['images', '--digests']);
  assert.match(digests.stdout, /DIGEST/);
  assert.equal((await docker(d, ['images', '-q', '--filter', 'label=team=core'])).stdout.trim(), imageId.slice(7, 19));
  assert.equal((await docker(d, ['images', '-q', '--filter', 'label=team=other'])).stdout.trim(), '');
  assert.equal((await docker(d, ['images', '-q', '--filter', 'reference=busy*'])).stdout.trim(), imageId.slice(7, 19));
  assert.equal((await docker(d, ['images', '-q', '--filter', 'dangling=true'])).stdout.trim(), '');
  const badFilter = await docker(d, ['images', '--filter', 'nope=1']);
  assert.notEqual(badFilter.code, 0);
  assert.match(badFilter.stderr, /invalid filter 'nope'/);
});

test('tag adds names; references normalise as docker does', async () => {
  assert.equal((await docker(d, ['tag', 'busybox', 'localhost:5000/team/app:v1'])).code, 0);
  assert.equal((await docker(d, ['tag', imageId.slice(7, 19), 'other'])).code, 0);
  const tags = (await docker(d, ['image', 'inspect', 'busybox', '--format', '{{json .RepoTags}}'])).stdout.trim();
  assert.deepEqual(JSON.parse(tags).sort(), ['busybox:latest', 'localhost:5000/team/app:v1', 'other:latest']);
  assert.equal((await docker(d, ['image', 'inspect', 'docker.io/library/busybox:latest', '--format', '{{.Id}}'])).stdout.trim(), imageId);
  const bad = await api(d.socket, 'POST', `/images/busybox/tag?repo=Upper`);
  assert.equal(bad.status, 400);
  assert.match(bad.json<{ message: string }>().message, /must be lowercase/);
  const r = await docker(d, ['tag', 'busybox', 'BadName']);
  assert.notEqual(r.code, 0);
});

test('history shows the layer and the comment', async () => {
  const r = await docker(d, ['history', '--no-trunc', '--format', '{{.ID}}|{{.Comment}}', 'busybox']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${imageId}|seeded`);
});

test('unknown images are 404 with docker wording', async () => {
  const r = await docker(d, ['image', 'inspect', 'nosuch']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /No such image: nosuch/);
  const raw = await api(d.socket, 'GET', '/images/nosuch:v2/json');
  assert.equal(raw.status, 404);
  assert.deepEqual(raw.json(), { message: 'No such image: nosuch:v2' });
  const rmi = await docker(d, ['rmi', 'nosuch']);
  assert.match(rmi.stderr, /No such image: nosuch:latest/);
});

test('save then load gives back the same image ID', async () => {
  const archive = path.join(d.dir, 'save.tar');
  const s = await docker(d, ['save', '-o', archive, 'busybox']);
  assert.equal(s.code, 0, s.stderr);
  const names = (await import('node:child_process')).execFileSync('tar', ['tf', archive]).toString().split('\n');
  for (const n of ['manifest.json', 'index.json', 'oci-layout', 'repositories']) assert.ok(names.includes(n), `${n} in archive`);
  // Remove every name, so the image is gone, then load it back.
  for (const t of ['busybox', 'other', 'localhost:5000/team/app:v1']) await docker(d, ['rmi', t]);
  assert.equal((await docker(d, ['images', '-q'])).stdout.trim(), '');
  const l = await docker(d, ['load', '-i', archive]);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /Loaded image: busybox:latest/);
  assert.equal((await docker(d, ['image', 'inspect', 'busybox', '--format', '{{.Id}}'])).stdout.trim(), imageId);
});

test('rmi: multiple names need force when removed by ID; untag keeps the image', async () => {
  await docker(d, ['tag', 'busybox', 'second:v1']);
  const byId = await docker(d, ['rmi', imageId.slice(7, 19)]);
  assert.notEqual(byId.code, 0);
  assert.match(byId.stderr, /unable to delete [a-f0-9]{12} \(must be forced\) - image is referenced in multiple repositories/);
  const untag = await docker(d, ['rmi', 'second:v1']);
  assert.equal(untag.code, 0, untag.stderr);
  assert.equal(untag.stdout.trim(), 'Untagged: second:v1');
  assert.equal((await docker(d, ['images', '-q'])).stdout.trim(), imageId.slice(7, 19));
});

test('system df and info count images', async () => {
  const df = await docker(d, ['system', 'df', '--format', '{{.Type}} {{.TotalCount}}']);
  assert.equal(df.code, 0, df.stderr);
  assert.match(df.stdout, /^Images 1$/m);
  assert.equal((await docker(d, ['info', '--format', '{{.Images}}'])).stdout.trim(), '1');
});

test('hostile layers are refused and leave nothing behind', async () => {
  const sentinel = path.join(d.dir, 'outside');
  fs.mkdirSync(sentinel);
  const blobsBefore = fs.readdirSync(path.join(d.dataRoot, 'content', 'blobs', 'sha256')).sort();
  const snapsBefore = fs.readdirSync(path.join(d.dataRoot, 'overlay2', 'snapshots')).sort();
  const hostile = [
    await makeTar([{ name: '../../../../escape', data: 'x' }]),
    await makeTar([{ name: `${sentinel}/abs`, data: 'x' }]),
    await makeTar([{ name: 'link', type: 'symlink', linkname: sentinel }, { name: 'link/evil', data: 'x' }]),
    await makeTar([{ name: 'passwd', type: 'link', linkname: '/etc/passwd' }]),
    await makeTar([{ name: 'a/', type: 'directory' }, { name: 'a/hl', type: 'link', linkname: '../../etc/passwd' }]),
  ];
  for (const [i, body] of hostile.entries()) {
    const r = await api(d.socket, 'POST', `/images/create?fromSrc=-&repo=hostile${i}`, body);
    assert.equal(r.status, 400, `hostile tar ${i}: ${r.body}`);
    assert.ok(r.json<{ message: string }>().message.length > 0);
  }
  assert.deepEqual(fs.readdirSync(sentinel), []);
  assert.equal(fs.existsSync(path.join(d.dir, '..', 'escape')), false);
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'content', 'blobs', 'sha256')).sort(), blobsBefore);
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'overlay2', 'snapshots')).sort(), snapsBefore);
  assert.equal((await docker(d, ['images', '-q', '--filter', 'reference=hostile*'])).stdout.trim(), '');
});

test('load of a broken archive is a 400 and stores nothing', async () => {
  const blobsBefore = fs.readdirSync(path.join(d.dataRoot, 'content', 'blobs', 'sha256')).sort();
  const r = await api(d.socket, 'POST', '/images/load', await makeTar([{ name: 'hello.txt', data: 'not an image' }]));
  assert.equal(r.status, 400);
  assert.match(r.json<{ message: string }>().message, /manifest.json nor index.json/);
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'content', 'blobs', 'sha256')).sort(), blobsBefore);
});

test('prune removes dangling images only; -a removes unused ones', async () => {
  const extra = await busyboxRootfs([{ name: 'marker', data: 'dangling' }]);
  const r = await api(d.socket, 'POST', '/images/create?fromSrc=-', extra);
  assert.equal(r.status, 200);
  const danglingId = JSON.parse(r.body.toString().trim().split('\n').pop()!).status as string;
  assert.equal((await docker(d, ['images', '-q', '--filter', 'dangling=true'])).stdout.trim(), danglingId.slice(7, 19));
  const p = await docker(d, ['image', 'prune', '-f']);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, new RegExp(`deleted: ${danglingId}`));
  assert.equal((await docker(d, ['images', '-q'])).stdout.trim(), imageId.slice(7, 19));
  const all = await docker(d, ['image', 'prune', '-a', '-f']);
  assert.equal(all.code, 0, all.stderr);
  assert.equal((await docker(d, ['images', '-q'])).stdout.trim(), '');
  // Everything the image had is gone from disk too.
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'content', 'blobs', 'sha256')), []);
});
