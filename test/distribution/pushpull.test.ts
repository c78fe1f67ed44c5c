// Push and pull through the real docker CLI against a real berthd and a real registry (`berth
// registry serve` on 127.0.0.1): round trip with the same image ID and a RepoDigest, the JSON
// progress stream as dockerd shapes it, pull by digest, "Layer already exists", cross-repository
// mounts, multi-layer gzip images behind a manifest list, --all-tags, docker's errors, and a layer
// whose content does not match the config leaving nothing behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs } from '../images/fixtures';
import { gzip, messages, putManifest, sha256, startRegistry, tarOf, uploadBlob, type TestRegistry } from './helpers';

let d: TestDaemon;
let reg: TestRegistry;
let imageId: string;
let repo: string;

before(async () => {
  reg = await startRegistry('pushpull');
  d = await startDaemon({ name: 'dist-pushpull' });
  const rootfs = path.join(d.dir, 'rootfs.tar');
  fs.writeFileSync(rootfs, await busyboxRootfs());
  const r = await docker(d, ['import', '-c', 'CMD ["sh"]', rootfs, 'busybox:latest']);
  assert.equal(r.code, 0, r.stderr);
  imageId = r.stdout.trim();
  repo = `${reg.host}/test/busybox`;
});
after(async () => {
  await destroyDaemon(d);
  await reg?.stop();
});

async function inspect(ref: string, format: string): Promise<string> {
  const r = await docker(d, ['image', 'inspect', ref, '--format', format]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test('docker push, rmi, pull gives back the same image with a RepoDigest', async () => {
  assert.equal((await docker(d, ['tag', 'busybox', `${repo}:v1`])).code, 0);
  const push = await docker(d, ['push', `${repo}:v1`]);
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stdout, new RegExp(`The push refers to repository \\[${repo.replace(/\./g, '\\.')}\\]`));
  assert.match(push.stdout, /[a-f0-9]{12}: Pushed/);
  const m = /v1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(push.stdout);
  assert.ok(m, push.stdout);
  const digest = m[1];
  // The registry really has it: the manifest's digest is what push reported.
  const man = await fetch(`${reg.url}/v2/test/busybox/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(man.status, 200);
  assert.equal(sha256(Buffer.from(await man.arrayBuffer())), digest);

  // Remove every name and the image itself, then pull it back.
  const rmi = await docker(d, ['rmi', '-f', imageId]);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.equal((await docker(d, ['images', '-q'])).stdout.trim(), '');
  const pull = await docker(d, ['pull', `${repo}:v1`]);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, /v1: Pulling from test\/busybox/);
  assert.match(pull.stdout, /Pull complete/);
  assert.match(pull.stdout, new RegExp(`Digest: ${digest}`));
  assert.match(pull.stdout, new RegExp(`Status: Downloaded newer image for ${repo.replace(/\./g, '\\.')}:v1`));
  assert.equal(await inspect(`${repo}:v1`, '{{.Id}}'), imageId);
  assert.deepEqual(JSON.parse(await inspect(`${repo}:v1`, '{{json .RepoDigests}}')), [`${repo}@${digest}`]);
  const listed = await docker(d, ['images', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}']);
  assert.equal(listed.stdout.trim(), `${repo} v1 ${digest}`);
  // Put back the familiar name for the later tests.
  assert.equal((await docker(d, ['tag', `${repo}:v1`, 'busybox'])).code, 0);
});

test('the pull stream has dockerd\'s messages, in order', async () => {
  await docker(d, ['tag', 'busybox', `${reg.host}/test/stream:v1`]);
  assert.equal((await docker(d, ['push', `${reg.host}/test/stream:v1`])).code, 0);
  await docker(d, ['rmi', '-f', imageId]);
  const r = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/test/stream`)}&tag=v1`);
  assert.equal(r.status, 200);
  const msgs = messages(r.body);
  const layerId = msgs[1].id as string;
  assert.deepEqual(msgs[0], { status: 'Pulling from test/stream', id: 'v1' });
  assert.deepEqual(msgs[1], { status: 'Pulling fs layer', progressDetail: {}, id: layerId });
  assert.match(layerId, /^[a-f0-9]{12}$/);
  const statuses = msgs.map((m) => m.status);
  for (const s of ['Downloading', 'Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete']) assert.ok(statuses.includes(s), `${s} in ${statuses}`);
  assert.ok(statuses.indexOf('Download complete') < statuses.indexOf('Extracting'));
  const dl = msgs.find((m) => m.status === 'Downloading')!;
  const detail = dl.progressDetail as { current: number; total: number };
  assert.ok(detail.total > 1_000_000 && detail.current > 0);
  assert.match(dl.progress as string, /^\[=*>\s*\] +[\d.]+[kM]?B\/[\d.]+MB$/);
  assert.equal(Object.keys(dl).join(','), 'status,progressDetail,progress,id');
  assert.match(String(msgs[msgs.length - 2].status), /^Digest: sha256:[a-f0-9]{64}$/);
  assert.deepEqual(msgs[msgs.length - 1], { status: `Status: Downloaded newer image for ${reg.host}/test/stream:v1` });
  // Again: nothing to fetch.
  const again = messages((await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/test/stream`)}&tag=v1`)).body);
  assert.deepEqual(again[1], { status: 'Already exists', progressDetail: {}, id: layerId });
  assert.deepEqual(again[again.length - 1], { status: `Status: Image is up to date for ${reg.host}/test/stream:v1` });
  assert.equal(await inspect(`${reg.host}/test/stream:v1`, '{{.Id}}'), imageId);
  await docker(d, ['tag', imageId, 'busybox']);
});

test('pull by digest; a second push says "Layer already exists"; a new repo mounts', async () => {
  await docker(d, ['tag', imageId, `${repo}:v1`]);
  const push = await docker(d, ['push', `${repo}:v1`]);
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stdout, /[a-f0-9]{12}: Layer already exists/);
  const digest = /digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)![1];

  await docker(d, ['rmi', '-f', imageId]);
  const byDigest = await docker(d, ['pull', `${repo}@${digest}`]);
  assert.equal(byDigest.code, 0, byDigest.stderr);
  assert.match(byDigest.stdout, new RegExp(`${digest}: Pulling from test/busybox`));
  assert.equal(await inspect(`${repo}@${digest}`, '{{.Id}}'), imageId);
  assert.equal(await inspect(imageId, '{{json .RepoTags}}'), '[]');

  await docker(d, ['tag', imageId, `${reg.host}/other/copy:v2`]);
  const mount = await docker(d, ['push', `${reg.host}/other/copy:v2`]);
  assert.equal(mount.code, 0, mount.stderr);
  assert.match(mount.stdout, /[a-f0-9]{12}: Mounted from test\/(busybox|stream)/);
  await docker(d, ['tag', imageId, 'busybox']);
});

test('errors: missing repository, missing tag, missing local image, unreachable registry', async () => {
  const missing = await docker(d, ['pull', `${reg.host}/nosuch/repo:latest`]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, new RegExp(`Error response from daemon: (manifest for ${reg.host.replace(/\./g, '\\.')}/nosuch/repo:latest not found|repository ${reg.host.replace(/\./g, '\\.')}/nosuch/repo not found)`));
  const raw = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${repo}`)}&tag=nosuchtag`);
  assert.equal(raw.status, 404);
  assert.match(raw.json<{ message: string }>().message, /^manifest for .*\/test\/busybox:nosuchtag not found: manifest unknown: /);

  await docker(d, ['tag', imageId, `${repo}:v1`]);
  const noTag = await docker(d, ['push', `${repo}:nosuchtag`]);
  assert.notEqual(noTag.code, 0);
  assert.match(noTag.stderr, new RegExp(`tag does not exist: ${repo.replace(/\./g, '\\.')}:nosuchtag`));
  const noLocal = await docker(d, ['push', `${reg.host}/test/absent:v1`]);
  assert.notEqual(noLocal.code, 0);
  assert.match(noLocal.stderr + noLocal.stdout, new RegExp(`An image does not exist locally with the tag: ${reg.host.replace(/\./g, '\\.')}/test/absent`));

  const down = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent('127.0.0.1:1/x/y')}&tag=v1`);
  assert.equal(down.status, 500);
  assert.match(down.json<{ message: string }>().message, /^Get "http:\/\/127\.0\.0\.1:1\/v2\/": dial tcp 127\.0\.0\.1:1: connect: connection refused$/);

  const bad = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(repo)}&tag=v1&platform=${encodeURIComponent('linux/amd64/x/y')}`);
  assert.equal(bad.status, 400);
});

test('multi-layer gzip image behind a manifest list pulls the platform entry; --all-tags', async () => {
  // Build and upload by hand what a docker build + push would: three gzip layers, a Docker v2
  // schema 2 manifest, and a manifest list with it for linux/amd64 and a decoy for arm64.
  const base = await busyboxRootfs();
  const l2 = await tarOf([{ name: 'etc/', type: 'directory' }, { name: 'etc/motd', data: 'hello from layer 2\n' }]);
  const l3 = await tarOf([{ name: 'etc/', type: 'directory' }, { name: 'etc/.wh.motd' }, { name: 'data.bin', data: Buffer.alloc(300_000, 7) }]);
  const layers = [base, l2, l3];
  const gz = layers.map(gzip);
  const name = 'multi/app';
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z', config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map(sha256) },
  }));
  for (const b of [...gz, config]) await uploadBlob(reg.url, name, b);
  const man = await putManifest(reg.url, name, 'amd64only', {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
    layers: gz.map((b) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: b.length, digest: sha256(b) })),
  }, 'application/vnd.docker.distribution.manifest.v2+json');
  const armConfig = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(l2)] } }));
  await uploadBlob(reg.url, name, armConfig);
  const armMan = await putManifest(reg.url, name, 'armonly', {
    schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: armConfig.length, digest: sha256(armConfig) },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz[1].length, digest: sha256(gz[1]) }],
  }, 'application/vnd.docker.distribution.manifest.v2+json');
  const list = await putManifest(reg.url, name, 'latest', {
    schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
    manifests: [
      { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: armMan.bytes.length, digest: armMan.digest, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: man.bytes.length, digest: man.digest, platform: { architecture: 'amd64', os: 'linux' } },
    ],
  }, 'application/vnd.docker.distribution.manifest.list.v2+json');

  const pull = await docker(d, ['pull', `${reg.host}/${name}:latest`]);
  assert.equal(pull.code, 0, pull.stderr);
  // The base layer is the busybox one already here (same diffID), so only two are fetched.
  assert.equal((pull.stdout.match(/Pull complete/g) ?? []).length, 2, pull.stdout);
  assert.equal((pull.stdout.match(/Already exists/g) ?? []).length, 1, pull.stdout);
  assert.match(pull.stdout, new RegExp(`Digest: ${list.digest}`));
  const id = await inspect(`${reg.host}/${name}:latest`, '{{.Id}}');
  assert.equal(id, sha256(config));
  assert.deepEqual(JSON.parse(await inspect(id, '{{json .RootFS.Layers}}')), layers.map(sha256));
  assert.deepEqual(JSON.parse(await inspect(id, '{{json .RepoDigests}}')), [`${reg.host}/${name}@${list.digest}`]);
  // Sizes are the uncompressed ones.
  const size = Number(await inspect(id, '{{.Size}}'));
  assert.ok(size >= base.length + l3.length - 10_000, `size ${size}`);

  // The arm64 entry, asked for explicitly; and a platform the list lacks.
  const arm = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/${name}`)}&tag=latest&platform=linux/arm64`);
  assert.equal(arm.status, 200);
  assert.equal(await inspect(sha256(armConfig), '{{.Architecture}}'), 'arm64');
  const none = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/${name}`)}&tag=latest&platform=linux/s390x`);
  assert.equal(none.status, 404);
  assert.equal(none.json<{ message: string }>().message, 'no matching manifest for linux/s390x in the manifest list entries');

  // --all-tags: amd64only, armonly (a single-platform manifest, taken as it is) and latest.
  const allTags = await docker(d, ['pull', '--all-tags', `${reg.host}/${name}`]);
  assert.equal(allTags.code, 0, allTags.stderr + allTags.stdout);
  assert.match(allTags.stdout, /amd64only: Pulling from multi\/app/);
  assert.match(allTags.stdout, /latest: Pulling from multi\/app/);
  assert.match(allTags.stdout, new RegExp(`Status: (Downloaded newer image|Image is up to date) for ${reg.host.replace(/\./g, '\\.')}/multi/app$`, 'm'));
});

/** The daemon's snapshots: keys from its metadata, and the directories on disk. */
function snapshots(): { keys: string[]; dirs: number } {
  const db = new Database(path.join(d.dataRoot, 'overlay2', 'metadata.db'), { readonly: true });
  try {
    const keys = (db.prepare('SELECT key FROM snapshots ORDER BY key').all() as { key: string }[]).map((r) => r.key);
    return { keys, dirs: fs.readdirSync(path.join(d.dataRoot, 'overlay2', 'snapshots')).length };
  } finally {
    db.close();
  }
}

test('a bottom layer whose content does not match its diffID fails the pull; the layers above, unpacked already, go too', async () => {
  // Layers are unpacked while they download, each into a snapshot of its own, and committed
  // bottom up: the upper two are unpacked (or being unpacked) when the bottom one fails.
  const l1 = await tarOf([{ name: 'one.txt', data: 'layer one\n' }]);
  const l2 = await tarOf([{ name: 'two.txt', data: 'layer two\n' }]);
  const l3 = await tarOf([{ name: 'three.bin', data: Buffer.alloc(500_000, 3) }]);
  const gz = [l1, l2, l3].map(gzip);
  const name = 'bad/diffid';
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256('not layer one'), sha256(l2), sha256(l3)] },
  }));
  for (const b of [...gz, config]) await uploadBlob(reg.url, name, b);
  await putManifest(reg.url, name, 'latest', {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: sha256(config) },
    layers: gz.map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: b.length, digest: sha256(b) })),
  }, 'application/vnd.oci.image.manifest.v1+json');

  const before = snapshots();
  assert.equal(before.dirs, before.keys.length);
  const pull = await docker(d, ['pull', `${reg.host}/${name}:latest`]);
  assert.notEqual(pull.code, 0, pull.stdout);
  assert.match(pull.stderr, /unpacked content has diffID/);
  assert.notEqual((await docker(d, ['image', 'inspect', sha256(config)])).code, 0, 'no image');
  assert.deepEqual(snapshots(), before, 'no snapshot of the failed pull is left, committed or not');

  // The same good layers under a truthful config pull fine afterwards.
  const good = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [l1, l2, l3].map(sha256) } }));
  await uploadBlob(reg.url, name, good);
  await putManifest(reg.url, name, 'good', {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: good.length, digest: sha256(good) },
    layers: gz.map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: b.length, digest: sha256(b) })),
  }, 'application/vnd.oci.image.manifest.v1+json');
  const ok = await docker(d, ['pull', `${reg.host}/${name}:good`]);
  assert.equal(ok.code, 0, ok.stderr);
  const run = await docker(d, ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', `${reg.host}/${name}:good`]);
  assert.deepEqual(JSON.parse(run.stdout), [l1, l2, l3].map(sha256));
  // The container's root sees every layer: the chain's parents are right.
  const created = await docker(d, ['create', '--name', 'diffid-check', `${reg.host}/${name}:good`, 'x']);
  assert.equal(created.code, 0, created.stderr);
  const tarFile = path.join(d.dir, 'diffid-check.tar');
  const exported = await docker(d, ['export', '-o', tarFile, 'diffid-check']);
  assert.equal(exported.code, 0, exported.stderr);
  const names = new Set(execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }).split('\n').map((n) => n.replace(/^\.\//, '')));
  for (const n of ['one.txt', 'two.txt', 'three.bin']) assert.ok(names.has(n), `${n} in ${[...names].join(' ')}`);
  assert.equal((await docker(d, ['rm', 'diffid-check'])).code, 0);
  const after = snapshots();
  // The three layers, and the init layer the image's containers share (it goes with the image).
  assert.equal(after.keys.length, before.keys.length + 4);
  assert.equal(after.keys.filter((k) => k.startsWith('init-')).length, before.keys.filter((k) => k.startsWith('init-')).length + 1);
  assert.ok(!after.keys.some((k) => k.startsWith('extract-')), after.keys.join(', '));
});
