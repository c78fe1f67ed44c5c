// Transfer behaviour: an interrupted pull keeps what it downloaded and the next pull fetches only
// the rest (a Range request, seen by a recording proxy in front of the registry); and a push of an
// image with 200 small layers, which must stay fast (keep-alive connections, parallel uploads).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { imageArchive, messages, sha256, startProxy, startRegistry, tarOf, type RecordingProxy, type TestRegistry } from './helpers';

let d: TestDaemon;
let reg: TestRegistry;
let proxy: RecordingProxy;

before(async () => {
  reg = await startRegistry('transfer');
  proxy = await startProxy(reg.url);
  d = await startDaemon({ name: 'dist-transfer' });
});
after(async () => {
  await destroyDaemon(d);
  await proxy?.close();
  await reg?.stop();
});

test('an interrupted pull resumes where it stopped', async () => {
  const layer = await tarOf([{ name: 'big.bin', data: randomBytes(6 << 20) }]);
  const layerDigest = sha256(layer);
  const archive = path.join(d.dir, 'big.tar');
  fs.writeFileSync(archive, await imageArchive(`${reg.host}/test/big:v1`, [layer]));
  const load = await docker(d, ['load', '-i', archive]);
  assert.equal(load.code, 0, load.stderr);
  const id = (await docker(d, ['image', 'inspect', `${reg.host}/test/big:v1`, '--format', '{{.Id}}'])).stdout.trim();
  const push = await docker(d, ['push', `${reg.host}/test/big:v1`]);
  assert.equal(push.code, 0, push.stderr);
  assert.equal((await docker(d, ['rmi', '-f', id])).code, 0);

  // First pull through the proxy: the layer stalls after 2 MiB; then the client goes away.
  const cut = 2 << 20;
  proxy.stallBlob = layerDigest;
  proxy.stallAfter = cut;
  const stalled = proxy.stalled();
  const received: Buffer[] = [];
  const req = http.request({ socketPath: d.socket, method: 'POST', path: `/images/create?fromImage=${encodeURIComponent(`${proxy.host}/test/big`)}&tag=v1` }, (res) => {
    res.on('data', (c: Buffer) => received.push(c));
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end();
  await stalled;
  // Let berthd write what it received, then hang up: the pull is cancelled.
  const deadline = Date.now() + 5000;
  while (!Buffer.concat(received).toString().includes('"current":2097152') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  req.destroy();
  const blobRequests = () => proxy.log.filter((e) => e.method === 'GET' && e.url.includes(`/blobs/${layerDigest}`));
  assert.equal(blobRequests().length, 1);
  assert.ok(messages(Buffer.concat(received)).some((m) => m.status === 'Downloading'));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await docker(d, ['images', '-q'])).stdout.trim(), '', 'the cancelled pull stored no image');

  // Second pull: only the remainder is fetched, with a Range request.
  proxy.stallAfter = undefined;
  const pull = await docker(d, ['pull', `${proxy.host}/test/big:v1`]);
  assert.equal(pull.code, 0, pull.stderr);
  const reqs = blobRequests();
  assert.equal(reqs.length, 2, JSON.stringify(reqs));
  const second = reqs[1];
  const m = /^bytes=(\d+)-$/.exec(second.range ?? '');
  assert.ok(m, `second request had Range ${second.range}`);
  const start = Number(m[1]);
  assert.ok(start > 0 && start <= cut, `resumed at ${start}`);
  assert.equal(second.status, 206);
  assert.equal(second.bytesSent, layer.length - start);
  assert.equal((await docker(d, ['image', 'inspect', `${proxy.host}/test/big:v1`, '--format', '{{.Id}}'])).stdout.trim(), id);
  await docker(d, ['rmi', '-f', id]);
});

test('a push of 200 small layers is fast, and so is the second one', async () => {
  const layers: Buffer[] = [];
  for (let i = 0; i < 200; i++) layers.push(await tarOf([{ name: `f${i}.txt`, data: `layer ${i}\n` }]));
  const archive = path.join(d.dir, 'many.tar');
  const ref = `${reg.host}/test/many:v1`;
  fs.writeFileSync(archive, await imageArchive(ref, layers));
  const load = await docker(d, ['load', '-i', archive], { timeoutMs: 120_000 });
  assert.equal(load.code, 0, load.stderr);

  const timePush = async (): Promise<{ ms: number; msgs: Record<string, unknown>[] }> => {
    const t0 = process.hrtime.bigint();
    const r = await api(d.socket, 'POST', `/images/${encodeURIComponent(`${reg.host}/test/many`)}/push?tag=v1`, undefined, { 'X-Registry-Auth': Buffer.from('{}').toString('base64') });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.equal(r.status, 200);
    const msgs = messages(r.body);
    assert.ok(!msgs.some((x) => x.error), JSON.stringify(msgs.filter((x) => x.error)));
    return { ms, msgs };
  };
  const first = await timePush();
  assert.equal(first.msgs.filter((x) => x.status === 'Pushed').length, 200);
  const aux = first.msgs.find((x) => x.aux) as { aux: { Tag: string; Digest: string; Size: number }; progressDetail: object };
  assert.equal(aux.aux.Tag, 'v1');
  assert.deepEqual(Object.keys(aux), ['progressDetail', 'aux']);
  const second = await timePush();
  assert.equal(second.msgs.filter((x) => x.status === 'Layer already exists').length, 200);
  assert.equal((second.msgs.find((x) => x.aux) as typeof aux).aux.Digest, aux.aux.Digest);
  process.stdout.write(`# 200-layer push: first ${first.ms.toFixed(0)} ms, second ${second.ms.toFixed(0)} ms\n`);
  // The target is 1.5 s; the bound here leaves room for a loaded CI machine.
  assert.ok(first.ms < 10_000, `first push took ${first.ms} ms`);
});
