// Resumable uploads: a session survives a server restart (the hash is rebuilt from the partial file),
// and a chunk cut off mid-stream leaves the session at its last acknowledged size.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { createHash } from 'node:crypto';
import { request, rmrf, sha256, startTestRegistry, tmpDir } from './helpers';

it('resumes an upload after the server restarts', async (t) => {
  const root = tmpDir();
  t.after(() => rmrf(root));
  const data = Buffer.alloc(5 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 10)) & 0xff;
  const first = await startTestRegistry({ root });
  let loc: string;
  try {
    const post = await request(first.url, 'POST', '/v2/resume/me/blobs/uploads/');
    loc = post.headers.location!;
    const p = await request(first.url, 'PATCH', loc, { body: data.subarray(0, 3 << 20), headers: { 'Content-Range': `0-${(3 << 20) - 1}` } });
    assert.equal(p.status, 202);
  } finally {
    await first.close();
  }
  const second = await startTestRegistry({ root });
  t.after(() => second.close());
  const status = await request(second.url, 'GET', loc);
  assert.equal(status.status, 204);
  assert.equal(status.headers.range, `0-${(3 << 20) - 1}`);
  const p2 = await request(second.url, 'PATCH', loc, { body: data.subarray(3 << 20, 4 << 20), headers: { 'Content-Range': `${3 << 20}-${(4 << 20) - 1}` } });
  assert.equal(p2.status, 202);
  assert.equal(p2.headers.range, `0-${(4 << 20) - 1}`);
  const put = await request(second.url, 'PUT', `${loc}?digest=${sha256(data)}`, { body: data.subarray(4 << 20) });
  assert.equal(put.status, 201);
  const got = await request(second.url, 'GET', `/v2/resume/me/blobs/${sha256(data)}`);
  assert.equal(sha256(got.body), sha256(data));
});

it('completes with sha512 digests too', async (t) => {
  const s = await startTestRegistry();
  t.after(async () => {
    await s.close();
    rmrf(s.root);
  });
  const data = Buffer.from('sha512 content');
  const d = 'sha512:' + createHash('sha512').update(data).digest('hex');
  const post = await request(s.url, 'POST', '/v2/algo/x/blobs/uploads/');
  await request(s.url, 'PATCH', post.headers.location!, { body: data });
  const put = await request(s.url, 'PUT', `${post.headers.location}?digest=${d}`);
  assert.equal(put.status, 201);
  assert.equal(put.headers['docker-content-digest'], d);
  assert.deepEqual((await request(s.url, 'GET', `/v2/algo/x/blobs/${d}`)).body, data);
});

it('drops a chunk cut off mid-stream; the session resumes from the last acknowledged byte', async (t) => {
  const s = await startTestRegistry();
  t.after(async () => {
    await s.close();
    rmrf(s.root);
  });
  const data = Buffer.alloc(2 << 20, 'z');
  const post = await request(s.url, 'POST', '/v2/cut/off/blobs/uploads/');
  const loc = post.headers.location!;
  assert.equal((await request(s.url, 'PATCH', loc, { body: data.subarray(0, 1000), headers: { 'Content-Range': '0-999' } })).status, 202);
  // Announce the rest, send part of it, then drop the connection.
  await new Promise<void>((resolve) => {
    const url = new URL(s.url);
    const req = http.request({ host: url.hostname, port: url.port, method: 'PATCH', path: loc, headers: { 'Content-Range': `1000-${data.length - 1}`, 'Content-Length': data.length - 1000 }, agent: false });
    req.on('error', () => resolve());
    req.write(data.subarray(1000, 500_000), () => setTimeout(() => {
      req.destroy();
      resolve();
    }, 100));
  });
  // The server notices the abort asynchronously; poll until the session settles at 1000 bytes.
  let range = '';
  for (let i = 0; i < 50; i++) {
    range = (await request(s.url, 'GET', loc)).headers.range as string;
    if (range === '0-999') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(range, '0-999');
  const rest = await request(s.url, 'PATCH', loc, { body: data.subarray(1000), headers: { 'Content-Range': `1000-${data.length - 1}` } });
  assert.equal(rest.status, 202);
  assert.equal((await request(s.url, 'PUT', `${loc}?digest=${sha256(data)}`)).status, 201);
});
