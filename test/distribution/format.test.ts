// The pure parts of the registry client, checked against docker's own renderings: size and bar
// text of progress messages, WWW-Authenticate parsing, X-Registry-Auth decoding, login server
// addresses, the fromImage/tag combination, platform choice and the pushed manifest's format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAuthHeader, serverAddressDomain } from '../../src/distribution/authconfig';
import { parseChallenges } from '../../src/distribution/http';
import { humanSize, progressText, ProgressWriter } from '../../src/distribution/progress';
import { choosePlatform, parsePlatform } from '../../src/distribution/pull';
import { buildManifest } from '../../src/distribution/push';
import { pullReference } from '../../src/distribution/service';
import { RegistryClient, isLoopbackHost } from '../../src/distribution/client';
import { silentLogger } from '../../src/common/logger';

test('humanSize and the progress bar match docker\'s text', () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(500), '500B');
  assert.equal(humanSize(22924), '22.92kB');
  assert.equal(humanSize(2217334), '2.217MB');
  assert.equal(humanSize(100_000), '100kB');
  assert.equal(humanSize(1_500_000_000), '1.5GB');
  assert.equal(progressText(22924, 2217334), `[>${' '.repeat(50)}]  22.92kB/2.217MB`);
  assert.equal(progressText(2217334, 2217334), `[${'='.repeat(50)}>]  2.217MB/2.217MB`);
  assert.equal(progressText(1108667, 2217334), `[${'='.repeat(25)}>${' '.repeat(25)}]  1.109MB/2.217MB`);
  assert.equal(progressText(0, 0), '');
  const sent: object[] = [];
  const w = new ProgressWriter((m) => sent.push(m));
  assert.equal(w.started, false);
  w.progress('abc', 'Downloading', 0, 10);
  w.update('abc', 'Pull complete');
  w.message(undefined, 'Digest: x');
  assert.equal(w.started, true);
  assert.deepEqual(sent, [
    { status: 'Downloading', progressDetail: { total: 10 }, progress: `[>${' '.repeat(50)}]       0B/10B`, id: 'abc' },
    { status: 'Pull complete', progressDetail: {}, id: 'abc' },
    { status: 'Digest: x' },
  ]);
});

test('WWW-Authenticate challenges parse as the registry client reads them', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm", Bearer realm="x",error="insufficient_scope"'), [
    { scheme: 'basic', params: { realm: 'Registry Realm' } },
    { scheme: 'bearer', params: { realm: 'x', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseChallenges('Basic'), [{ scheme: 'basic', params: {} }]);
});

test('X-Registry-Auth and login addresses', () => {
  const enc = (o: object, alphabet: BufferEncoding = 'base64url') => Buffer.from(JSON.stringify(o)).toString(alphabet);
  assert.equal(decodeAuthHeader(undefined), undefined);
  assert.equal(decodeAuthHeader(enc({})), undefined);
  assert.deepEqual(decodeAuthHeader(enc({ username: 'a', password: 'p?>~', serveraddress: 'h:5000' })), { username: 'a', password: 'p?>~', serveraddress: 'h:5000' });
  assert.deepEqual(decodeAuthHeader(enc({ Username: 'a', Password: 'b' }, 'base64')), { username: 'a', password: 'b' });
  assert.deepEqual(decodeAuthHeader(enc({ auth: Buffer.from('u:p:q').toString('base64') })), { auth: Buffer.from('u:p:q').toString('base64'), username: 'u', password: 'p:q' });
  assert.throws(() => decodeAuthHeader('not json at all'), /invalid X-Registry-Auth header/);
  assert.equal(serverAddressDomain(''), 'docker.io');
  assert.equal(serverAddressDomain('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(serverAddressDomain('http://127.0.0.1:5000/'), '127.0.0.1:5000');
  assert.equal(serverAddressDomain('registry.example.com'), 'registry.example.com');
});

test('fromImage and tag combine as dockerd combines them', () => {
  assert.deepEqual(pullReference('busybox', 'latest'), { domain: 'docker.io', path: 'library/busybox', tag: 'latest' });
  assert.deepEqual(pullReference('busybox', ''), { domain: 'docker.io', path: 'library/busybox' });
  assert.deepEqual(pullReference('busybox:1.36', ''), { domain: 'docker.io', path: 'library/busybox', tag: '1.36' });
  const digest = 'sha256:' + 'a'.repeat(64);
  assert.deepEqual(pullReference('localhost:5000/x/y', digest), { domain: 'localhost:5000', path: 'x/y', digest });
  assert.throws(() => pullReference('busybox', 'sha256:abc'), /unsupported digest/);
  assert.throws(() => pullReference('Busybox', 'latest'), /must be lowercase/);
  assert.throws(() => pullReference('', 'latest'), /fromImage/);
});

test('platform parsing and choice from an index', () => {
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(parsePlatform('amd64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.throws(() => parsePlatform('linux//'), /unknown operating system/);
  const d = (architecture: string, variant?: string, os = 'linux') => ({ mediaType: 'm', size: 1, digest: `${os}-${architecture}-${variant ?? ''}`, platform: { os, architecture, ...(variant ? { variant } : {}) } });
  const entries = [d('amd64', undefined, 'windows'), d('arm', 'v6'), d('arm', 'v7'), d('arm64', 'v8'), d('amd64'), d('unknown', undefined, 'unknown')];
  assert.equal(choosePlatform(entries, { os: 'linux', architecture: 'amd64' })?.digest, 'linux-amd64-');
  assert.equal(choosePlatform(entries, { os: 'linux', architecture: 'arm' })?.digest, 'linux-arm-v7');
  assert.equal(choosePlatform(entries, { os: 'linux', architecture: 'arm', variant: 'v6' })?.digest, 'linux-arm-v6');
  assert.equal(choosePlatform(entries, { os: 'linux', architecture: 'arm64' })?.digest, 'linux-arm64-v8');
  assert.equal(choosePlatform(entries, { os: 'linux', architecture: 's390x' }), undefined);
});

test('pushed manifests: Docker schema 2 for docker layers, OCI otherwise', () => {
  const layer = (mediaType: string) => ({ diffID: 'sha256:' + '1'.repeat(64), chainID: 'c', blobDigest: 'sha256:' + '2'.repeat(64), mediaType, blobSize: 10, size: 20 });
  const rec = (mts: string[]) => ({ id: 'sha256:' + '3'.repeat(64), created: '', parent: '', size: 0, lastTagTime: '', layers: mts.map(layer) });
  const docker = buildManifest(rec(['application/vnd.docker.image.rootfs.diff.tar.gzip']), 99);
  assert.equal(docker.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  const dm = JSON.parse(docker.bytes.toString());
  assert.equal(dm.config.mediaType, 'application/vnd.docker.container.image.v1+json');
  assert.equal(dm.config.size, 99);
  const oci = buildManifest(rec(['application/vnd.oci.image.layer.v1.tar', 'application/vnd.docker.image.rootfs.diff.tar.gzip']), 5);
  assert.equal(oci.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(JSON.parse(oci.bytes.toString()).layers.map((l: { mediaType: string }) => l.mediaType), ['application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar+gzip']);
  // Deterministic: the same image always gives the same manifest bytes.
  assert.deepEqual(buildManifest(rec(['application/vnd.oci.image.layer.v1.tar']), 5).bytes, buildManifest(rec(['application/vnd.oci.image.layer.v1.tar']), 5).bytes);
});

test('endpoints: loopback over http first, insecure registries, mirrors for docker.io only', () => {
  const c = new RegistryClient({ log: silentLogger, insecureRegistries: ['10.0.0.0/8', 'reg.internal:5000'], registryMirrors: ['https://mirror.example.com'] });
  try {
    assert.ok(isLoopbackHost('localhost') && isLoopbackHost('127.3.4.5') && isLoopbackHost('[::1]') && !isLoopbackHost('10.0.0.1'));
    const hub = c.endpoints('docker.io');
    assert.deepEqual(hub.map((e) => [e.url.href, e.mirror]), [['https://mirror.example.com/', true], ['https://registry-1.docker.io/', false]]);
    assert.deepEqual(c.endpoints('docker.io', { push: true }).map((e) => e.url.href), ['https://registry-1.docker.io/']);
    const local = c.endpoints('localhost:5000')[0];
    assert.deepEqual([local.url.href, local.fallback?.href], ['http://localhost:5000/', 'https://localhost:5000/']);
    const cidr = c.endpoints('10.1.2.3:5000')[0];
    assert.deepEqual([cidr.url.href, cidr.insecureTLS, cidr.fallback?.href], ['https://10.1.2.3:5000/', true, 'http://10.1.2.3:5000/']);
    assert.equal(c.endpoints('reg.internal:5000')[0].insecureTLS, true);
    const secure = c.endpoints('registry.example.com')[0];
    assert.deepEqual([secure.url.href, secure.insecureTLS, secure.fallback], ['https://registry.example.com/', false, undefined]);
  } finally {
    c.close();
  }
});
