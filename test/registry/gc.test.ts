// Garbage collection: blobs no manifest references go, referenced ones stay; --dry-run deletes
// nothing; --delete-untagged also drops manifests no tag reaches (keeping referrers of kept ones).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { postBlob, pushImageBlobs, putManifest, request, rmrf, sha256, startTestRegistry } from './helpers';
import { collectGarbage } from '../../src/registry/gc';

function blobFile(root: string, digest: string): string {
  return path.join(root, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
}

it('collects unreferenced blobs, honours --dry-run and --delete-untagged', async (t) => {
  const s = await startTestRegistry();
  t.after(async () => {
    await s.close();
    rmrf(s.root);
  });
  const kept = await pushImageBlobs(s.url, 'gc/app', 'kept');
  assert.equal((await putManifest(s.url, 'gc/app', 'v1', kept.manifest)).status, 201);
  const untagged = await pushImageBlobs(s.url, 'gc/app', 'untagged');
  assert.equal((await putManifest(s.url, 'gc/app', 'old', untagged.manifest)).status, 201);
  assert.equal((await request(s.url, 'DELETE', '/v2/gc/app/manifests/old')).status, 202);
  // A signature-like referrer of the tagged image: untagged itself, but reachable through its subject.
  const sigImg = await pushImageBlobs(s.url, 'gc/app', 'sig');
  const sigDoc = { ...JSON.parse(sigImg.manifest.toString()), subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(kept.manifest), size: kept.manifest.length } };
  const sig = Buffer.from(JSON.stringify(sigDoc));
  assert.equal((await putManifest(s.url, 'gc/app', sha256(sig), sig)).status, 201);
  assert.equal((await postBlob(s.url, 'gc/app', 'orphan')).status, 201);
  const orphan = sha256('orphan');

  const dry: string[] = [];
  const dryRun = await collectGarbage({ root: s.root, dryRun: true, log: (l) => dry.push(l) });
  assert.deepEqual(dryRun.deletedBlobs, [orphan]);
  assert.equal(dryRun.removedLinks, 1);
  assert.ok(dry.includes(`blob eligible for deletion: ${orphan}`));
  assert.ok(fs.existsSync(blobFile(s.root, orphan)), 'dry run deletes nothing');
  assert.equal((await request(s.url, 'HEAD', `/v2/gc/app/blobs/${orphan}`)).status, 200);

  const real = await collectGarbage({ root: s.root });
  assert.deepEqual(real.deletedBlobs, [orphan]);
  assert.ok(!fs.existsSync(blobFile(s.root, orphan)));
  assert.equal((await request(s.url, 'HEAD', `/v2/gc/app/blobs/${orphan}`)).status, 404);
  for (const d of [kept.config, kept.layer, sha256(kept.manifest), untagged.layer, sha256(untagged.manifest)]) assert.ok(fs.existsSync(blobFile(s.root, d)), d);
  assert.equal((await request(s.url, 'GET', '/v2/gc/app/manifests/v1')).status, 200);

  const untaggedDryRun = await collectGarbage({ root: s.root, deleteUntagged: true, dryRun: true });
  assert.deepEqual(untaggedDryRun.deletedManifests, [`gc/app@${sha256(untagged.manifest)}`]);
  assert.equal((await request(s.url, 'GET', `/v2/gc/app/manifests/${sha256(untagged.manifest)}`)).status, 200);

  const pruned = await collectGarbage({ root: s.root, deleteUntagged: true });
  assert.deepEqual(pruned.deletedManifests, [`gc/app@${sha256(untagged.manifest)}`]);
  assert.deepEqual(pruned.deletedBlobs.sort(), [untagged.config, untagged.layer, sha256(untagged.manifest)].sort());
  assert.equal((await request(s.url, 'GET', `/v2/gc/app/manifests/${sha256(untagged.manifest)}`)).status, 404);
  assert.equal((await request(s.url, 'GET', `/v2/gc/app/manifests/${sha256(sig)}`)).status, 200, 'the referrer of a tagged image stays');
  const refs = await request(s.url, 'GET', `/v2/gc/app/referrers/${sha256(kept.manifest)}`);
  assert.deepEqual(refs.json<{ manifests: { digest: string }[] }>().manifests.map((m) => m.digest), [sha256(sig)]);
  // The kept image still pulls completely.
  for (const d of [kept.config, kept.layer]) assert.equal((await request(s.url, 'GET', `/v2/gc/app/blobs/${d}`)).status, 200);
});

it('removes abandoned upload sessions, keeps recent ones', async (t) => {
  const s = await startTestRegistry();
  t.after(async () => {
    await s.close();
    rmrf(s.root);
  });
  const old = (await request(s.url, 'POST', '/v2/gc/up/blobs/uploads/')).headers['docker-upload-uuid'] as string;
  await new Promise((r) => setTimeout(r, 20));
  const fresh = (await request(s.url, 'POST', '/v2/gc/up/blobs/uploads/')).headers['docker-upload-uuid'] as string;
  const now = new Date();
  const ageMs = now.getTime() - (await s.registry.uploads.startedAt(fresh))!.getTime() + 10;
  const dry = await collectGarbage({ root: s.root, dryRun: true, uploadMaxAgeMs: ageMs, now });
  assert.deepEqual(dry.purgedUploads, [old]);
  assert.equal((await request(s.url, 'GET', `/v2/gc/up/blobs/uploads/${old}`)).status, 204);
  await collectGarbage({ root: s.root, uploadMaxAgeMs: ageMs, now });
  assert.equal((await request(s.url, 'GET', `/v2/gc/up/blobs/uploads/${old}`)).status, 404);
  assert.equal((await request(s.url, 'GET', `/v2/gc/up/blobs/uploads/${fresh}`)).status, 204);
});
