// A conformance walk through the OCI distribution spec's four areas (pull, push, content
// discovery, content management), status code by status code, against a real server on
// 127.0.0.1:0, plus the error cases: malformed digests, bad names, path traversal attempts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  errorCode, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_MANIFEST, postBlob, pushImageBlobs, putManifest, request, rmrf, sha256, startTestRegistry,
} from './helpers';
import type { RunningRegistry } from '../../src/registry/server';

type Server = RunningRegistry & { root: string };

const MT_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const MT_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const BAD_DIGEST = 'sha256:xyz';

function withServer(fn: (s: () => Server) => void, opts: Parameters<typeof startTestRegistry>[0] = {}): void {
  let server: Server;
  before(async () => {
    server = await startTestRegistry(opts);
  });
  after(async () => {
    await server.close();
    rmrf(server.root);
  });
  fn(() => server);
}

describe('pull', () => {
  withServer((s) => {
    let pushed: { manifest: Buffer; config: string; layer: string };
    let digest: string;
    before(async () => {
      pushed = await pushImageBlobs(s().url, 'pull/img', 'p1');
      digest = sha256(pushed.manifest);
      assert.equal((await putManifest(s().url, 'pull/img', 'v1', pushed.manifest)).status, 201);
    });

    it('GET /v2/ answers 200 with the API version header', async () => {
      const r = await request(s().url, 'GET', '/v2/');
      assert.equal(r.status, 200);
      assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
      assert.deepEqual(r.json(), {});
      assert.equal((await request(s().url, 'GET', '/v2')).status, 200);
    });

    it('pulls a manifest by tag and by digest, with content type and digest headers', async () => {
      for (const ref of ['v1', digest]) {
        const r = await request(s().url, 'GET', `/v2/pull/img/manifests/${ref}`, { headers: { Accept: MT_OCI_MANIFEST } });
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-type'], MT_OCI_MANIFEST);
        assert.equal(r.headers['docker-content-digest'], digest);
        assert.deepEqual(r.body, pushed.manifest);
      }
    });

    it('HEAD on a manifest gives headers and length without a body', async () => {
      const r = await request(s().url, 'HEAD', '/v2/pull/img/manifests/v1');
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(pushed.manifest.length));
      assert.equal(r.headers['docker-content-digest'], digest);
      assert.equal(r.body.length, 0);
    });

    it('unknown manifests are 404 MANIFEST_UNKNOWN (tag, digest, other repository)', async () => {
      for (const p of ['/v2/pull/img/manifests/nope', `/v2/pull/img/manifests/${sha256('nothing')}`, '/v2/pull/other/manifests/v1']) {
        const r = await request(s().url, 'GET', p);
        assert.equal(r.status, 404, p);
        assert.equal(errorCode(r), 'MANIFEST_UNKNOWN', p);
      }
      const head = await request(s().url, 'HEAD', '/v2/pull/img/manifests/nope');
      assert.equal(head.status, 404);
      assert.equal(head.body.length, 0);
    });

    it('pulls blobs with GET and HEAD; unknown blobs are 404 BLOB_UNKNOWN', async () => {
      const r = await request(s().url, 'GET', `/v2/pull/img/blobs/${pushed.layer}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'layer-p1');
      assert.equal(r.headers['docker-content-digest'], pushed.layer);
      const h = await request(s().url, 'HEAD', `/v2/pull/img/blobs/${pushed.layer}`);
      assert.equal(h.status, 200);
      assert.equal(h.headers['content-length'], '8');
      const u = await request(s().url, 'GET', `/v2/pull/img/blobs/${sha256('unknown')}`);
      assert.equal(u.status, 404);
      assert.equal(errorCode(u), 'BLOB_UNKNOWN');
      // A blob stored for one repository is not served through another.
      assert.equal((await request(s().url, 'GET', `/v2/pull/elsewhere/blobs/${pushed.layer}`)).status, 404);
    });

    it('serves byte ranges with 206 and refuses unsatisfiable ones with 416', async () => {
      const r = await request(s().url, 'GET', `/v2/pull/img/blobs/${pushed.layer}`, { headers: { Range: 'bytes=2-4' } });
      assert.equal(r.status, 206);
      assert.equal(r.body.toString(), 'yer');
      assert.equal(r.headers['content-range'], 'bytes 2-4/8');
      const suffix = await request(s().url, 'GET', `/v2/pull/img/blobs/${pushed.layer}`, { headers: { Range: 'bytes=-2' } });
      assert.equal(suffix.status, 206);
      assert.equal(suffix.body.toString(), 'p1');
      const open = await request(s().url, 'GET', `/v2/pull/img/blobs/${pushed.layer}`, { headers: { Range: 'bytes=6-' } });
      assert.equal(open.body.toString(), 'p1');
      const bad = await request(s().url, 'GET', `/v2/pull/img/blobs/${pushed.layer}`, { headers: { Range: 'bytes=100-200' } });
      assert.equal(bad.status, 416);
      assert.equal(bad.headers['content-range'], 'bytes */8');
    });

    it('malformed digests are 400 DIGEST_INVALID, never 500', async () => {
      for (const p of [
        `/v2/pull/img/blobs/${BAD_DIGEST}`,
        '/v2/pull/img/blobs/sha256:' + 'a'.repeat(63),
        '/v2/pull/img/blobs/sha256:' + 'A'.repeat(64),
        '/v2/pull/img/blobs/md5:d41d8cd98f00b204e9800998ecf8427e',
        '/v2/pull/img/blobs/notadigest',
        `/v2/pull/img/manifests/${BAD_DIGEST}`,
        `/v2/pull/img/referrers/${BAD_DIGEST}`,
        '/v2/pull/img/blobs/%E0%A4%A',
      ]) {
        const r = await request(s().url, 'GET', p);
        assert.equal(r.status, 400, p);
        assert.equal(errorCode(r), 'DIGEST_INVALID', p);
      }
    });

    it('negotiates on Accept: refuses a type the client does not accept', async () => {
      const r = await request(s().url, 'GET', '/v2/pull/img/manifests/v1', { headers: { Accept: MT_DOCKER_MANIFEST } });
      assert.equal(r.status, 404);
      assert.equal(errorCode(r), 'MANIFEST_UNKNOWN');
      const wild = await request(s().url, 'GET', '/v2/pull/img/manifests/v1', { headers: { Accept: '*/*' } });
      assert.equal(wild.status, 200);
      const q = await request(s().url, 'GET', '/v2/pull/img/manifests/v1', { headers: { Accept: `${MT_DOCKER_MANIFEST}, ${MT_OCI_MANIFEST};q=0.5` } });
      assert.equal(q.status, 200);
    });

    it('serves the linux/amd64 image of a tagged list to a client that cannot read lists', async () => {
      const amd = await pushImageBlobs(s().url, 'pull/multi', 'amd');
      const arm = await pushImageBlobs(s().url, 'pull/multi', 'arm');
      const dockerize = (m: Buffer): Buffer => {
        const doc = JSON.parse(m.toString());
        doc.mediaType = MT_DOCKER_MANIFEST;
        return Buffer.from(JSON.stringify(doc));
      };
      const amdM = dockerize(amd.manifest);
      const armM = dockerize(arm.manifest);
      assert.equal((await putManifest(s().url, 'pull/multi', sha256(amdM), amdM, MT_DOCKER_MANIFEST)).status, 201);
      assert.equal((await putManifest(s().url, 'pull/multi', sha256(armM), armM, MT_DOCKER_MANIFEST)).status, 201);
      const list = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT_DOCKER_LIST,
          manifests: [
            { mediaType: MT_DOCKER_MANIFEST, digest: sha256(armM), size: armM.length, platform: { architecture: 'arm64', os: 'linux' } },
            { mediaType: MT_DOCKER_MANIFEST, digest: sha256(amdM), size: amdM.length, platform: { architecture: 'amd64', os: 'linux' } },
          ],
        }),
      );
      assert.equal((await putManifest(s().url, 'pull/multi', 'latest', list, MT_DOCKER_LIST)).status, 201);
      const full = await request(s().url, 'GET', '/v2/pull/multi/manifests/latest', { headers: { Accept: `${MT_DOCKER_LIST}, ${MT_DOCKER_MANIFEST}` } });
      assert.equal(full.headers['content-type'], MT_DOCKER_LIST);
      const single = await request(s().url, 'GET', '/v2/pull/multi/manifests/latest', { headers: { Accept: MT_DOCKER_MANIFEST } });
      assert.equal(single.status, 200);
      assert.equal(single.headers['content-type'], MT_DOCKER_MANIFEST);
      assert.equal(single.headers['docker-content-digest'], sha256(amdM));
      assert.deepEqual(single.body, amdM);
      // By digest the exact bytes are asked for: never swapped.
      const byDigest = await request(s().url, 'GET', `/v2/pull/multi/manifests/${sha256(list)}`, { headers: { Accept: MT_DOCKER_MANIFEST } });
      assert.equal(byDigest.status, 404);
    });
  });
});

describe('push', () => {
  withServer((s) => {
    it('POST then PUT: 202 with Location, Docker-Upload-UUID and Range 0-0, then 201', async () => {
      const data = Buffer.from('post-then-put');
      const post = await request(s().url, 'POST', '/v2/push/a/blobs/uploads/', { headers: { 'Content-Length': 0 } });
      assert.equal(post.status, 202);
      const loc = post.headers.location!;
      assert.match(loc, /^\/v2\/push\/a\/blobs\/uploads\/[0-9a-f-]{36}$/);
      assert.equal(post.headers['docker-upload-uuid'], loc.split('/').pop());
      assert.equal(post.headers.range, '0-0');
      const put = await request(s().url, 'PUT', `${loc}?digest=${sha256(data)}`, { body: data, headers: { 'Content-Type': 'application/octet-stream' } });
      assert.equal(put.status, 201);
      assert.equal(put.headers.location, `/v2/push/a/blobs/${sha256(data)}`);
      assert.equal(put.headers['docker-content-digest'], sha256(data));
      const get = await request(s().url, 'GET', put.headers.location!);
      assert.deepEqual(get.body, data);
      // The session is over.
      assert.equal((await request(s().url, 'GET', loc)).status, 404);
    });

    it('single POST with ?digest= answers 201; a wrong digest is 400 DIGEST_INVALID and stores nothing', async () => {
      const ok = await postBlob(s().url, 'push/a', 'monolithic');
      assert.equal(ok.status, 201);
      assert.equal(ok.headers.location, `/v2/push/a/blobs/${sha256('monolithic')}`);
      const bad = await request(s().url, 'POST', `/v2/push/a/blobs/uploads/?digest=${sha256('other')}`, { body: 'monolithic2' });
      assert.equal(bad.status, 400);
      assert.equal(errorCode(bad), 'DIGEST_INVALID');
      assert.equal((await request(s().url, 'HEAD', `/v2/push/a/blobs/${sha256('other')}`)).status, 404);
      assert.equal(fs.readdirSync(path.join(s().root, 'uploads')).length, 0, 'failed upload leaves no session');
      const malformed = await request(s().url, 'POST', `/v2/push/a/blobs/uploads/?digest=${BAD_DIGEST}`, { body: 'x' });
      assert.equal(malformed.status, 400);
      assert.equal(errorCode(malformed), 'DIGEST_INVALID');
    });

    it('chunked upload: PATCH in order (202 + Range), GET status 204, 416 for out-of-order, overlap and gaps', async () => {
      const data = Buffer.from('0123456789abcdefghijKLMNOPQRST');
      const post = await request(s().url, 'POST', '/v2/push/chunks/blobs/uploads/', { headers: { 'Content-Length': 0 } });
      const loc = post.headers.location!;
      const patch = (start: number, end: number, body: Buffer, loc2 = loc) =>
        request(s().url, 'PATCH', loc2, { body, headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${end}`, 'Content-Length': body.length } });
      const p1 = await patch(0, 9, data.subarray(0, 10));
      assert.equal(p1.status, 202);
      assert.equal(p1.headers.range, '0-9');
      assert.equal(p1.headers.location, loc);
      const p2 = await patch(10, 19, data.subarray(10, 20), p1.headers.location);
      assert.equal(p2.status, 202);
      assert.equal(p2.headers.range, '0-19');
      const status = await request(s().url, 'GET', loc);
      assert.equal(status.status, 204);
      assert.equal(status.headers.range, '0-19');
      assert.equal(status.headers.location, loc);
      for (const [start, end] of [[5, 14], [0, 9], [25, 29], [15, 24]]) {
        const r = await patch(start, end, data.subarray(start, end + 1));
        assert.equal(r.status, 416, `${start}-${end}`);
        assert.equal(errorCode(r), 'BLOB_UPLOAD_INVALID');
      }
      const malformed = await request(s().url, 'PATCH', loc, { body: 'x', headers: { 'Content-Range': 'garbage' } });
      assert.equal(malformed.status, 416);
      const mismatch = await request(s().url, 'PATCH', loc, { body: 'abc', headers: { 'Content-Range': '20-29' } });
      assert.equal(mismatch.status, 400);
      assert.equal(errorCode(mismatch), 'SIZE_INVALID');
      // Nothing the refused chunks carried was kept.
      assert.equal((await request(s().url, 'GET', loc)).headers.range, '0-19');
      const put = await request(s().url, 'PUT', `${loc}?digest=${sha256(data)}`, {
        body: data.subarray(20),
        headers: { 'Content-Range': '20-29', 'Content-Length': 10 },
      });
      assert.equal(put.status, 201);
      assert.deepEqual((await request(s().url, 'GET', `/v2/push/chunks/blobs/${sha256(data)}`)).body, data);
    });

    it('streamed PATCH without Content-Range (chunked transfer encoding) appends', async () => {
      const post = await request(s().url, 'POST', '/v2/push/stream/blobs/uploads/');
      const loc = post.headers.location!;
      const parts = [Buffer.from('stream-'), Buffer.from('ed-'), Buffer.from('body')];
      const r = await request(s().url, 'PATCH', loc, { chunks: parts });
      assert.equal(r.status, 202);
      assert.equal(r.headers.range, `0-${Buffer.concat(parts).length - 1}`);
      const put = await request(s().url, 'PUT', `${loc}?digest=${sha256(Buffer.concat(parts))}`);
      assert.equal(put.status, 201);
    });

    it('PUT without digest, or with the wrong one, is 400 DIGEST_INVALID', async () => {
      const post = await request(s().url, 'POST', '/v2/push/a/blobs/uploads/');
      const loc = post.headers.location!;
      const none = await request(s().url, 'PUT', loc, { body: 'abc' });
      assert.equal(none.status, 400);
      assert.equal(errorCode(none), 'DIGEST_INVALID');
      const wrong = await request(s().url, 'PUT', `${loc}?digest=${sha256('abd')}`, { body: 'abc' });
      assert.equal(wrong.status, 400);
      assert.equal(errorCode(wrong), 'DIGEST_INVALID');
      assert.equal((await request(s().url, 'HEAD', `/v2/push/a/blobs/${sha256('abd')}`)).status, 404);
    });

    it('unknown upload sessions are 404 BLOB_UPLOAD_UNKNOWN, also through another repository', async () => {
      const fake = '/v2/push/a/blobs/uploads/00000000-0000-4000-8000-000000000000';
      for (const m of ['GET', 'PATCH', 'PUT', 'DELETE']) {
        const r = await request(s().url, m, m === 'PUT' ? `${fake}?digest=${sha256('')}` : fake);
        assert.equal(r.status, 404, m);
        assert.equal(errorCode(r), 'BLOB_UPLOAD_UNKNOWN', m);
      }
      const post = await request(s().url, 'POST', '/v2/push/a/blobs/uploads/');
      const id = post.headers['docker-upload-uuid'];
      const other = await request(s().url, 'GET', `/v2/push/b/blobs/uploads/${id}`);
      assert.equal(other.status, 404);
      assert.equal(errorCode(other), 'BLOB_UPLOAD_UNKNOWN');
    });

    it('DELETE cancels an upload (204), after which it is unknown', async () => {
      const post = await request(s().url, 'POST', '/v2/push/a/blobs/uploads/');
      const loc = post.headers.location!;
      await request(s().url, 'PATCH', loc, { body: 'partial', headers: { 'Content-Range': '0-6' } });
      const del = await request(s().url, 'DELETE', loc);
      assert.equal(del.status, 204);
      assert.equal((await request(s().url, 'GET', loc)).status, 404);
      assert.equal(fs.existsSync(path.join(s().root, 'uploads', post.headers['docker-upload-uuid'] as string)), false);
    });

    it('cross-repository mount: 201 when the source has the blob, 202 upload session otherwise', async () => {
      await postBlob(s().url, 'mount/src', 'mountable');
      const d = sha256('mountable');
      const ok = await request(s().url, 'POST', `/v2/mount/dst/blobs/uploads/?mount=${d}&from=mount/src`);
      assert.equal(ok.status, 201);
      assert.equal(ok.headers.location, `/v2/mount/dst/blobs/${d}`);
      assert.equal(ok.headers['docker-content-digest'], d);
      assert.equal((await request(s().url, 'GET', `/v2/mount/dst/blobs/${d}`)).body.toString(), 'mountable');
      for (const q of [`mount=${sha256('absent')}&from=mount/src`, `mount=${d}&from=mount/nothing`, `mount=${d}&from=BAD..name`, `mount=${d}`]) {
        const r = await request(s().url, 'POST', `/v2/mount/other/blobs/uploads/?${q}`);
        assert.equal(r.status, 202, q);
        assert.match(r.headers.location!, /^\/v2\/mount\/other\/blobs\/uploads\//);
      }
      const bad = await request(s().url, 'POST', `/v2/mount/dst/blobs/uploads/?mount=${BAD_DIGEST}&from=mount/src`);
      assert.equal(bad.status, 400);
    });

    it('pushes manifests by tag and by digest (201, Location, Docker-Content-Digest) byte for byte', async () => {
      const img = await pushImageBlobs(s().url, 'push/m', 'm1');
      // Unusual formatting must survive: the digest is of the bytes as sent.
      const pretty = Buffer.from(JSON.stringify(JSON.parse(img.manifest.toString()), null, 3) + '\n');
      const d = sha256(pretty);
      const byTag = await putManifest(s().url, 'push/m', 'v1', pretty);
      assert.equal(byTag.status, 201);
      assert.equal(byTag.headers.location, `/v2/push/m/manifests/${d}`);
      assert.equal(byTag.headers['docker-content-digest'], d);
      const byDigest = await putManifest(s().url, 'push/m', d, pretty);
      assert.equal(byDigest.status, 201);
      assert.deepEqual((await request(s().url, 'GET', '/v2/push/m/manifests/v1')).body, pretty);
      const wrong = await putManifest(s().url, 'push/m', sha256('x'), pretty);
      assert.equal(wrong.status, 400);
      assert.equal(errorCode(wrong), 'DIGEST_INVALID');
    });

    it('accepts Docker schema 2 manifests and lists, OCI manifests and indexes', async () => {
      const img = await pushImageBlobs(s().url, 'push/types', 't');
      const docker = JSON.parse(img.manifest.toString());
      docker.mediaType = MT_DOCKER_MANIFEST;
      docker.config.mediaType = 'application/vnd.docker.container.image.v1+json';
      const dockerM = Buffer.from(JSON.stringify(docker));
      assert.equal((await putManifest(s().url, 'push/types', 'docker', dockerM, MT_DOCKER_MANIFEST)).status, 201);
      assert.equal((await putManifest(s().url, 'push/types', 'oci', img.manifest)).status, 201);
      const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_DOCKER_LIST, manifests: [{ mediaType: MT_DOCKER_MANIFEST, digest: sha256(dockerM), size: dockerM.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
      assert.equal((await putManifest(s().url, 'push/types', 'list', list, MT_DOCKER_LIST)).status, 201);
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_INDEX, manifests: [{ mediaType: MT_OCI_MANIFEST, digest: sha256(img.manifest), size: img.manifest.length }] }));
      assert.equal((await putManifest(s().url, 'push/types', 'index', index, MT_OCI_INDEX)).status, 201);
      for (const [tag, mt] of [['docker', MT_DOCKER_MANIFEST], ['oci', MT_OCI_MANIFEST], ['list', MT_DOCKER_LIST], ['index', MT_OCI_INDEX]]) {
        const r = await request(s().url, 'GET', `/v2/push/types/manifests/${tag}`);
        assert.equal(r.headers['content-type'], mt, tag);
      }
      // An OCI manifest without a mediaType field takes the Content-Type.
      const bare = JSON.parse(img.manifest.toString());
      delete bare.mediaType;
      const bareM = Buffer.from(JSON.stringify(bare));
      assert.equal((await putManifest(s().url, 'push/types', 'bare', bareM, `${MT_OCI_MANIFEST}; charset=utf-8`)).status, 201);
      assert.equal((await request(s().url, 'HEAD', '/v2/push/types/manifests/bare')).headers['content-type'], MT_OCI_MANIFEST);
    });

    it('refuses manifests with missing blobs or children: 400 MANIFEST_BLOB_UNKNOWN', async () => {
      const img = await pushImageBlobs(s().url, 'push/mbu', 'b');
      const doc = JSON.parse(img.manifest.toString());
      doc.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('never pushed'), size: 12 });
      const r = await putManifest(s().url, 'push/mbu', 'v1', Buffer.from(JSON.stringify(doc)));
      assert.equal(r.status, 400);
      assert.equal(errorCode(r), 'MANIFEST_BLOB_UNKNOWN');
      const noConfig = JSON.parse(img.manifest.toString());
      noConfig.config.digest = sha256('no config');
      assert.equal(errorCode(await putManifest(s().url, 'push/mbu', 'v1', Buffer.from(JSON.stringify(noConfig)))), 'MANIFEST_BLOB_UNKNOWN');
      // Blobs of another repository do not count.
      assert.equal(errorCode(await putManifest(s().url, 'push/elsewhere', 'v1', img.manifest)), 'MANIFEST_BLOB_UNKNOWN');
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_INDEX, manifests: [{ mediaType: MT_OCI_MANIFEST, digest: sha256('no such manifest'), size: 5 }] }));
      const ri = await putManifest(s().url, 'push/mbu', 'idx', index, MT_OCI_INDEX);
      assert.equal(ri.status, 400);
      assert.equal(errorCode(ri), 'MANIFEST_BLOB_UNKNOWN');
      assert.equal((await request(s().url, 'GET', '/v2/push/mbu/manifests/v1')).status, 404, 'nothing was tagged');
    });

    it('refuses invalid manifests: 400 MANIFEST_INVALID; too large: 413', async () => {
      const img = await pushImageBlobs(s().url, 'push/inv', 'i');
      const cases: [string, string][] = [
        ['not json', MT_OCI_MANIFEST],
        ['[]', MT_OCI_MANIFEST],
        [JSON.stringify({ schemaVersion: 1, name: 'x' }), 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
        [JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_MANIFEST, layers: [] }), MT_OCI_MANIFEST],
        [JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_MANIFEST, config: { mediaType: MT_OCI_CONFIG, digest: 'sha256:zz', size: 1 }, layers: [] }), MT_OCI_MANIFEST],
        [JSON.stringify({ ...JSON.parse(img.manifest.toString()), mediaType: MT_OCI_INDEX }), MT_OCI_MANIFEST],
        [JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-unknown', config: {}, layers: [] }), 'application/x-unknown'],
      ];
      for (const [body, ct] of cases) {
        const r = await putManifest(s().url, 'push/inv', 'v1', Buffer.from(body), ct);
        assert.equal(r.status, 400, body);
        assert.equal(errorCode(r), 'MANIFEST_INVALID', body);
      }
      const badTag = await putManifest(s().url, 'push/inv', '-badtag', img.manifest);
      assert.equal(badTag.status, 400);
      const huge = await putManifest(s().url, 'push/inv', 'huge', Buffer.alloc(5 << 20, 0x20));
      assert.equal(huge.status, 413);
    });

    it('answers OCI-Subject for a manifest with a subject, even when the subject is absent', async () => {
      const img = await pushImageBlobs(s().url, 'push/subj', 's');
      const doc = JSON.parse(img.manifest.toString());
      const subject = sha256('not pushed yet');
      doc.subject = { mediaType: MT_OCI_MANIFEST, digest: subject, size: 10 };
      const r = await putManifest(s().url, 'push/subj', sha256(JSON.stringify(doc)), Buffer.from(JSON.stringify(doc)));
      assert.equal(r.status, 201);
      assert.equal(r.headers['oci-subject'], subject);
    });

    it('concurrent pushes of the same blob all succeed and store it once, intact', async () => {
      const data = Buffer.alloc(3 << 20);
      for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
      const d = sha256(data);
      const pushOne = async (i: number) => {
        if (i % 2 === 0) return postBlob(s().url, `conc/r${i}`, data);
        const post = await request(s().url, 'POST', `/v2/conc/r${i}/blobs/uploads/`);
        const chunks = [data.subarray(0, 1 << 20), data.subarray(1 << 20)];
        const p = await request(s().url, 'PATCH', post.headers.location!, { chunks });
        return request(s().url, 'PUT', `${p.headers.location}?digest=${d}`);
      };
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pushOne(i)));
      for (const r of results) assert.equal(r.status, 201);
      for (let i = 0; i < 8; i++) {
        const g = await request(s().url, 'GET', `/v2/conc/r${i}/blobs/${d}`);
        assert.equal(sha256(g.body), d);
      }
      const blobDir = path.join(s().root, 'blobs', 'sha256', d.slice(7, 9));
      assert.deepEqual(fs.readdirSync(blobDir).filter((f) => f.includes(d.slice(7))), [d.slice(7)]);
      assert.equal(fs.readdirSync(blobDir).filter((f) => f.startsWith('.tmp')).length, 0);
    });
  });
});

describe('content discovery', () => {
  withServer((s) => {
    let manifest: Buffer;
    const tags = ['v10', 'v2', 'latest', 'A', 'b', 'v1', '_x'];
    before(async () => {
      manifest = (await pushImageBlobs(s().url, 'disc/img', 'd')).manifest;
      for (const t of tags) assert.equal((await putManifest(s().url, 'disc/img', t, manifest)).status, 201);
      for (const n of ['disc/a', 'disc/b', 'disc/c', 'zeta']) await postBlob(s().url, n, 'x');
    });

    it('lists tags sorted', async () => {
      const r = await request(s().url, 'GET', '/v2/disc/img/tags/list');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { name: 'disc/img', tags: [...tags].sort() });
    });

    it('paginates tags with n and last, with a Link header to the next page', async () => {
      const sorted = [...tags].sort();
      const seen: string[] = [];
      let next: string | undefined = '/v2/disc/img/tags/list?n=3';
      let pages = 0;
      while (next) {
        const r = await request(s().url, 'GET', next);
        assert.equal(r.status, 200);
        const page = r.json<{ tags: string[] }>().tags;
        assert.ok(page.length <= 3);
        seen.push(...page);
        const link = r.headers.link as string | undefined;
        next = link ? link.match(/^<([^>]+)>; rel="next"$/)![1] : undefined;
        pages++;
      }
      assert.deepEqual(seen, sorted);
      assert.equal(pages, 3);
      const after = await request(s().url, 'GET', `/v2/disc/img/tags/list?last=${sorted[2]}`);
      assert.deepEqual(after.json<{ tags: string[] }>().tags, sorted.slice(3));
      assert.equal(after.headers.link, undefined);
      const zero = await request(s().url, 'GET', '/v2/disc/img/tags/list?n=0');
      assert.deepEqual(zero.json<{ tags: string[] }>().tags, []);
      assert.equal(zero.headers.link, undefined);
      const exact = await request(s().url, 'GET', `/v2/disc/img/tags/list?n=${tags.length}`);
      assert.equal(exact.json<{ tags: string[] }>().tags.length, tags.length);
      assert.equal(exact.headers.link, undefined);
      const bad = await request(s().url, 'GET', '/v2/disc/img/tags/list?n=-1');
      assert.equal(bad.status, 400);
    });

    it('tags of an unknown repository: 404 NAME_UNKNOWN', async () => {
      const r = await request(s().url, 'GET', '/v2/disc/none/tags/list');
      assert.equal(r.status, 404);
      assert.equal(errorCode(r), 'NAME_UNKNOWN');
    });

    it('lists the catalog, paginated the same way', async () => {
      const all = await request(s().url, 'GET', '/v2/_catalog');
      assert.deepEqual(all.json(), { repositories: ['disc/a', 'disc/b', 'disc/c', 'disc/img', 'zeta'] });
      const p1 = await request(s().url, 'GET', '/v2/_catalog?n=2');
      assert.deepEqual(p1.json(), { repositories: ['disc/a', 'disc/b'] });
      assert.equal(p1.headers.link, '</v2/_catalog?last=disc%2Fb&n=2>; rel="next"');
      const p2 = await request(s().url, 'GET', '/v2/_catalog?last=disc%2Fb&n=2');
      assert.deepEqual(p2.json(), { repositories: ['disc/c', 'disc/img'] });
      const p3 = await request(s().url, 'GET', '/v2/_catalog?last=disc%2Fimg&n=2');
      assert.deepEqual(p3.json(), { repositories: ['zeta'] });
      assert.equal(p3.headers.link, undefined);
    });

    it('lists referrers as an OCI index, with artifactType filtering', async () => {
      const subject = sha256(manifest);
      const mk = async (extra: Record<string, unknown>, seed: string) => {
        const img = await pushImageBlobs(s().url, 'disc/img', seed);
        const doc = { ...JSON.parse(img.manifest.toString()), subject: { mediaType: MT_OCI_MANIFEST, digest: subject, size: manifest.length }, ...extra };
        const body = Buffer.from(JSON.stringify(doc));
        const r = await putManifest(s().url, 'disc/img', sha256(body), body);
        assert.equal(r.status, 201);
        assert.equal(r.headers['oci-subject'], subject);
        return sha256(body);
      };
      const sbom = await mk({ artifactType: 'application/vnd.example.sbom.v1', annotations: { 'org.example.kind': 'sbom' } }, 'sbom');
      const sig = await mk({ config: { mediaType: 'application/vnd.example.sig.config', digest: sha256(JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'sig' })), size: JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'sig' }).length } }, 'sig');
      const r = await request(s().url, 'GET', `/v2/disc/img/referrers/${subject}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], MT_OCI_INDEX);
      const idx = r.json<{ schemaVersion: number; mediaType: string; manifests: { digest: string; artifactType?: string; annotations?: Record<string, string>; mediaType: string; size: number }[] }>();
      assert.equal(idx.schemaVersion, 2);
      assert.equal(idx.mediaType, MT_OCI_INDEX);
      const byDigest = new Map(idx.manifests.map((m) => [m.digest, m]));
      assert.equal(byDigest.size, 2);
      assert.equal(byDigest.get(sbom)!.artifactType, 'application/vnd.example.sbom.v1');
      assert.deepEqual(byDigest.get(sbom)!.annotations, { 'org.example.kind': 'sbom' });
      assert.equal(byDigest.get(sbom)!.mediaType, MT_OCI_MANIFEST);
      assert.equal(byDigest.get(sig)!.artifactType, 'application/vnd.example.sig.config', 'falls back to the config media type');
      assert.equal(r.headers['oci-filters-applied'], undefined);
      const f = await request(s().url, 'GET', `/v2/disc/img/referrers/${subject}?artifactType=${encodeURIComponent('application/vnd.example.sbom.v1')}`);
      assert.equal(f.headers['oci-filters-applied'], 'artifactType');
      assert.deepEqual(f.json<{ manifests: { digest: string }[] }>().manifests.map((m) => m.digest), [sbom]);
      // Deleting a referrer removes it from the list.
      assert.equal((await request(s().url, 'DELETE', `/v2/disc/img/manifests/${sig}`)).status, 202);
      const after = await request(s().url, 'GET', `/v2/disc/img/referrers/${subject}`);
      assert.deepEqual(after.json<{ manifests: { digest: string }[] }>().manifests.map((m) => m.digest), [sbom]);
    });

    it('referrers of a digest nothing refers to: 200 with an empty index', async () => {
      const r = await request(s().url, 'GET', `/v2/disc/img/referrers/${sha256('lonely')}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json<{ manifests: unknown[] }>().manifests, []);
    });
  });
});

describe('content management', () => {
  withServer((s) => {
    it('deletes a tag (202); the manifest stays reachable by digest', async () => {
      const img = await pushImageBlobs(s().url, 'mgmt/a', 'a');
      const d = sha256(img.manifest);
      await putManifest(s().url, 'mgmt/a', 'v1', img.manifest);
      await putManifest(s().url, 'mgmt/a', 'v2', img.manifest);
      const del = await request(s().url, 'DELETE', '/v2/mgmt/a/manifests/v1');
      assert.equal(del.status, 202);
      assert.equal((await request(s().url, 'GET', '/v2/mgmt/a/manifests/v1')).status, 404);
      assert.equal((await request(s().url, 'GET', `/v2/mgmt/a/manifests/${d}`)).status, 200);
      assert.deepEqual((await request(s().url, 'GET', '/v2/mgmt/a/tags/list')).json(), { name: 'mgmt/a', tags: ['v2'] });
      const again = await request(s().url, 'DELETE', '/v2/mgmt/a/manifests/v1');
      assert.equal(again.status, 404);
      assert.equal(errorCode(again), 'MANIFEST_UNKNOWN');
    });

    it('deletes a manifest by digest (202); it and the tags pointing to it are gone', async () => {
      const img = await pushImageBlobs(s().url, 'mgmt/b', 'b');
      const d = sha256(img.manifest);
      await putManifest(s().url, 'mgmt/b', 'v1', img.manifest);
      const del = await request(s().url, 'DELETE', `/v2/mgmt/b/manifests/${d}`);
      assert.equal(del.status, 202);
      assert.equal((await request(s().url, 'GET', `/v2/mgmt/b/manifests/${d}`)).status, 404);
      assert.equal((await request(s().url, 'GET', '/v2/mgmt/b/manifests/v1')).status, 404);
      const again = await request(s().url, 'DELETE', `/v2/mgmt/b/manifests/${d}`);
      assert.equal(again.status, 404);
      assert.equal(errorCode(again), 'MANIFEST_UNKNOWN');
      const unknownRepo = await request(s().url, 'DELETE', `/v2/mgmt/nothing/manifests/${d}`);
      assert.equal(unknownRepo.status, 404);
      assert.equal(errorCode(unknownRepo), 'NAME_UNKNOWN');
      assert.equal((await request(s().url, 'DELETE', `/v2/mgmt/b/manifests/${BAD_DIGEST}`)).status, 400);
    });

    it('deletes a blob (202); then 404 BLOB_UNKNOWN', async () => {
      await postBlob(s().url, 'mgmt/c', 'to delete');
      const d = sha256('to delete');
      const del = await request(s().url, 'DELETE', `/v2/mgmt/c/blobs/${d}`);
      assert.equal(del.status, 202);
      assert.equal((await request(s().url, 'GET', `/v2/mgmt/c/blobs/${d}`)).status, 404);
      const again = await request(s().url, 'DELETE', `/v2/mgmt/c/blobs/${d}`);
      assert.equal(again.status, 404);
      assert.equal(errorCode(again), 'BLOB_UNKNOWN');
      assert.equal((await request(s().url, 'DELETE', `/v2/mgmt/c/blobs/${BAD_DIGEST}`)).status, 400);
    });
  });
});

describe('deletion disabled and read-only mode', () => {
  withServer((s) => {
    it('answers 405 UNSUPPORTED to deletes when deletion is disabled', async () => {
      await postBlob(s().url, 'nodel/a', 'keep');
      const r = await request(s().url, 'DELETE', `/v2/nodel/a/blobs/${sha256('keep')}`);
      assert.equal(r.status, 405);
      assert.equal(errorCode(r), 'UNSUPPORTED');
      assert.equal((await request(s().url, 'GET', `/v2/nodel/a/blobs/${sha256('keep')}`)).status, 200);
    });
  }, { deleteEnabled: false });

  withServer((s) => {
    it('answers 405 UNSUPPORTED to every write, serves reads', async () => {
      for (const [m, p] of [['POST', '/v2/ro/a/blobs/uploads/'], ['PUT', '/v2/ro/a/manifests/v1'], ['DELETE', `/v2/ro/a/blobs/${sha256('x')}`], ['PATCH', '/v2/ro/a/blobs/uploads/00000000-0000-4000-8000-000000000000']]) {
        const r = await request(s().url, m, p, { body: '{}' });
        assert.equal(r.status, 405, `${m} ${p}`);
        assert.equal(errorCode(r), 'UNSUPPORTED');
      }
      assert.equal((await request(s().url, 'GET', '/v2/')).status, 200);
      assert.equal((await request(s().url, 'GET', '/v2/_catalog')).status, 200);
    });
  }, { readOnly: true });
});

describe('names, paths and malformed requests', () => {
  withServer((s) => {
    it('refuses invalid repository names with 400 NAME_INVALID', async () => {
      for (const p of [
        '/v2/Upper/tags/list',
        '/v2/a..b/tags/list',
        '/v2/a/../b/tags/list',
        '/v2/../../etc/tags/list',
        '/v2/%2e%2e/%2e%2e/etc/tags/list',
        '/v2/%2E%2E%2Fetc/blobs/uploads/',
        '/v2/foo%2F..%2F..%2Fetc/manifests/latest',
        '/v2/-lead/tags/list',
        '/v2/trail-/tags/list',
        '/v2/a//b/tags/list',
        '/v2/a%00b/tags/list',
        `/v2/${'a'.repeat(256)}/tags/list`,
        '/v2/%zz/tags/list',
      ]) {
        const r = await request(s().url, p.includes('uploads') ? 'POST' : 'GET', p);
        assert.equal(r.status, 400, p);
        assert.equal(errorCode(r), 'NAME_INVALID', p);
      }
    });

    it('no traversal reaches outside the root', async () => {
      const outside = path.join(path.dirname(s().root), path.basename(s().root) + '-outside');
      fs.mkdirSync(outside);
      try {
        const rel = `..%2F..%2F${path.basename(outside)}`;
        const attempts: [string, string][] = [
          ['GET', `/v2/ok/blobs/${rel}`],
          ['GET', `/v2/ok/manifests/${rel}`],
          ['PUT', `/v2/ok/manifests/..%2F..%2Fx`],
          ['GET', `/v2/ok/blobs/uploads/${rel}`],
          ['PATCH', `/v2/ok/blobs/uploads/..%2F..%2F..%2Fx`],
          ['PUT', `/v2/ok/blobs/uploads/%2e%2e?digest=${sha256('')}`],
          ['DELETE', `/v2/ok/blobs/uploads/..`],
          ['GET', `/v2/ok/referrers/..%2F..`],
          ['GET', `/v2/ok/tags/list?last=..%2F..%2F..`],
          ['GET', `/v2/../../../${path.basename(outside)}/blobs/sha256:${'0'.repeat(64)}`],
          ['POST', `/v2/ok/blobs/uploads/?mount=sha256:${'0'.repeat(64)}&from=..%2F..`],
        ];
        for (const [m, p] of attempts) {
          const r = await request(s().url, m, p, { body: m === 'GET' || m === 'DELETE' ? undefined : 'data' });
          assert.ok(r.status >= 200 && r.status < 500, `${m} ${p}: ${r.status}`);
          assert.ok(![200, 201].includes(r.status) || p.includes('tags/list') || p.includes('mount'), `${m} ${p}: ${r.status}`);
        }
        assert.deepEqual(fs.readdirSync(outside), []);
        const siblings = fs.readdirSync(path.dirname(s().root)).filter((f) => f.startsWith(path.basename(s().root)));
        assert.deepEqual(siblings.sort(), [path.basename(s().root), path.basename(outside)].sort());
      } finally {
        rmrf(outside);
      }
    });

    it('refuses invalid tags', async () => {
      for (const t of ['..', '.hidden', '-x', 'a'.repeat(129), 'a%2Fb']) {
        const r = await request(s().url, 'GET', `/v2/ok/manifests/${t}`);
        assert.equal(r.status, 400, t);
      }
    });

    it('unknown endpoints are 404, wrong methods 405 with Allow', async () => {
      assert.equal((await request(s().url, 'GET', '/v3/')).status, 404);
      assert.equal((await request(s().url, 'GET', '/v2/foo/unknown/thing')).status, 404);
      const r = await request(s().url, 'POST', '/v2/foo/manifests/latest');
      assert.equal(r.status, 405);
      assert.equal(errorCode(r), 'UNSUPPORTED');
      assert.equal(r.headers.allow, 'GET, HEAD, PUT, DELETE');
    });

    it('never answers 500 to odd requests', async () => {
      const odd: [string, string, Record<string, string>?][] = [
        ['GET', '/v2/a/blobs/sha256:'],
        ['GET', '/v2/a/blobs/:'],
        ['GET', '/v2/a/manifests/:'],
        ['GET', '/v2/a/manifests/sha512:' + 'a'.repeat(64)],
        ['GET', '/v2/a/tags/list?n=abc'],
        ['GET', '/v2/a/tags/list?n=99999999999999'],
        ['GET', '/v2/_catalog?n=1e3'],
        ['GET', `/v2/a/blobs/${sha256('x')}`, { Range: 'bytes=abc' }],
        ['POST', '/v2/a/blobs/uploads/?digest='],
        ['POST', '/v2/a/blobs/uploads/?mount='],
        ['PATCH', '/v2/a/blobs/uploads/not-a-uuid'],
        ['PUT', '/v2/a/manifests/v1', { 'Content-Type': 'text/plain' }],
        ['GET', '/v2/%ff/tags/list'],
        ['GET', '/v2//tags/list'],
        ['GET', '/v2/a/blobs/'],
        ['GET', '/v2/a/manifests/'],
      ];
      for (const [m, p, h] of odd) {
        const r = await request(s().url, m, p, { headers: h, body: m === 'PUT' ? 'x' : undefined });
        assert.ok(r.status >= 400 && r.status < 500, `${m} ${p}: ${r.status}`);
        assert.ok(errorCode(r), `${m} ${p} has an error body`);
      }
    });
  });
});
