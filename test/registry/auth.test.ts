// Authentication end to end over real sockets: htpasswd basic auth, Docker-style bearer tokens
// issued by the registry's own token endpoint (ES256 and RS256), scopes, ACLs, and TLS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import bcrypt from 'bcryptjs';
import { errorCode, postBlob, pushImageBlobs, putManifest, request, rmrf, sha256, tmpDir } from './helpers';
import { buildServerOptions, type RegistryConfig } from '../../src/registry/config';
import { startRegistry, type RunningRegistry } from '../../src/registry/server';
import { loadTokenKeys, signToken } from '../../src/registry/auth';

const basic = (user: string, pass: string): string => 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');

function writeHtpasswd(dir: string): string {
  const file = path.join(dir, 'htpasswd');
  // htpasswd -B writes $2y$; both spellings must work.
  const alice = bcrypt.hashSync('alicepw', 4).replace(/^\$2b\$/, '$2y$');
  const bob = bcrypt.hashSync('bobpw', 4);
  fs.writeFileSync(file, `# users\nalice:${alice}\nbob:${bob}\nmd5user:$apr1$abc$def\n`);
  return file;
}

async function serve(dir: string, cfg: Partial<RegistryConfig>): Promise<RunningRegistry> {
  const built = buildServerOptions({ addr: '127.0.0.1:0', root: path.join(dir, 'root'), ...cfg });
  return startRegistry({ ...built.registry, ...built.listen });
}

describe('basic auth', () => {
  let dir: string;
  let s: RunningRegistry;
  let anon: RunningRegistry;
  before(async () => {
    dir = tmpDir();
    const htpasswd = writeHtpasswd(dir);
    s = await serve(dir, { htpasswd, realm: 'test realm' });
    anon = await serve(dir, { htpasswd, anonymousPull: true, root: path.join(dir, 'root2') });
  });
  after(async () => {
    await s.close();
    await anon.close();
    rmrf(dir);
  });

  it('challenges without credentials and refuses wrong ones (401 UNAUTHORIZED)', async () => {
    const r = await request(s.url, 'GET', '/v2/');
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Basic realm="test realm"');
    assert.equal(errorCode(r), 'UNAUTHORIZED');
    for (const h of [basic('alice', 'wrong'), basic('nobody', 'x'), basic('md5user', 'x'), 'Basic !!!', 'Bearer abc']) {
      const w = await request(s.url, 'GET', '/v2/', { headers: { Authorization: h } });
      assert.equal(w.status, 401, h);
    }
    const push = await postBlob(s.url, 'priv/a', 'data');
    assert.equal(push.status, 401);
  });

  it('lets users with valid credentials push and pull', async () => {
    const h = { Authorization: basic('alice', 'alicepw') };
    assert.equal((await request(s.url, 'GET', '/v2/', { headers: h })).status, 200);
    const img = await pushImageBlobs(s.url, 'priv/a', 'x', h);
    assert.equal((await putManifest(s.url, 'priv/a', 'v1', img.manifest, undefined, h)).status, 201);
    const bob = { Authorization: basic('bob', 'bobpw') };
    assert.equal((await request(s.url, 'GET', '/v2/priv/a/manifests/v1', { headers: bob })).status, 200);
    assert.equal((await request(s.url, 'GET', '/v2/priv/a/manifests/v1')).status, 401);
  });

  it('with anonymous pull, reads need no credentials but writes do', async () => {
    const h = { Authorization: basic('bob', 'bobpw') };
    assert.equal((await postBlob(anon.url, 'pub/a', 'public', h)).status, 201);
    assert.equal((await request(anon.url, 'GET', `/v2/pub/a/blobs/${sha256('public')}`)).status, 200);
    const w = await postBlob(anon.url, 'pub/a', 'anon write');
    assert.equal(w.status, 401);
    assert.match(w.headers['www-authenticate'] as string, /^Basic /);
    // The ping still challenges, so clients learn to send credentials for pushes.
    assert.equal((await request(anon.url, 'GET', '/v2/')).status, 401);
  });
});

describe('bearer tokens from the built-in token server', () => {
  let dir: string;
  let s: RunningRegistry;
  let rsa: RunningRegistry;
  let keyFile: string;
  before(async () => {
    dir = tmpDir();
    const htpasswd = writeHtpasswd(dir);
    keyFile = path.join(dir, 'token-ec.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], { stdio: 'ignore' });
    const rsaKey = path.join(dir, 'token-rsa.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', rsaKey], { stdio: 'ignore' });
    const acl = [
      { account: 'alice', name: '*', actions: ['pull', 'push', 'delete'] },
      { account: 'alice', type: 'registry', name: 'catalog', actions: ['*'] },
      { account: 'bob', name: 'shared/*', actions: ['pull'] },
    ];
    s = await serve(dir, { htpasswd, tokenKey: keyFile, tokenServer: true, tokenService: 'test-registry', tokenIssuer: 'test-issuer', acl });
    rsa = await serve(dir, { htpasswd, tokenKey: rsaKey, tokenServer: true, root: path.join(dir, 'root-rsa') });
  });
  after(async () => {
    await s.close();
    await rsa.close();
    rmrf(dir);
  });

  async function token(base: string, scopes: string[], creds?: string): Promise<string> {
    const q = new URLSearchParams({ service: 'test-registry' });
    for (const sc of scopes) q.append('scope', sc);
    const r = await request(base, 'GET', `/token?${q}`, { headers: creds ? { Authorization: creds } : {} });
    assert.equal(r.status, 200, r.body.toString());
    const body = r.json<{ token: string; access_token: string; expires_in: number; issued_at: string }>();
    assert.equal(body.token, body.access_token);
    assert.ok(body.expires_in > 0);
    assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
    return body.token;
  }

  it('challenges with Bearer realm, service and scope', async () => {
    const ping = await request(s.url, 'GET', '/v2/');
    assert.equal(ping.status, 401);
    assert.equal(ping.headers['www-authenticate'], `Bearer realm="${s.url}/token",service="test-registry"`);
    const r = await postBlob(s.url, 'tok/a', 'x');
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], `Bearer realm="${s.url}/token",service="test-registry",scope="repository:tok/a:pull,push"`);
  });

  it('issues scoped tokens that allow exactly what they grant', async () => {
    const t = await token(s.url, ['repository:tok/a:pull,push'], basic('alice', 'alicepw'));
    const h = { Authorization: `Bearer ${t}` };
    assert.equal((await request(s.url, 'GET', '/v2/', { headers: h })).status, 200);
    const img = await pushImageBlobs(s.url, 'tok/a', 'tk', h);
    assert.equal((await putManifest(s.url, 'tok/a', 'v1', img.manifest, undefined, h)).status, 201);
    assert.equal((await request(s.url, 'GET', '/v2/tok/a/manifests/v1', { headers: h })).status, 200);
    // Another repository, and an action not granted (delete), are refused with insufficient_scope.
    const other = await request(s.url, 'GET', '/v2/tok/b/tags/list', { headers: h });
    assert.equal(other.status, 401);
    assert.match(other.headers['www-authenticate'] as string, /error="insufficient_scope"/);
    assert.match(other.headers['www-authenticate'] as string, /scope="repository:tok\/b:pull"/);
    const del = await request(s.url, 'DELETE', `/v2/tok/a/manifests/${sha256(img.manifest)}`, { headers: h });
    assert.equal(del.status, 401);
    assert.match(del.headers['www-authenticate'] as string, /scope="repository:tok\/a:delete"/);
    const catalog = await request(s.url, 'GET', '/v2/_catalog', { headers: h });
    assert.equal(catalog.status, 401);
    const ct = await token(s.url, ['registry:catalog:*'], basic('alice', 'alicepw'));
    const cat = await request(s.url, 'GET', '/v2/_catalog', { headers: { Authorization: `Bearer ${ct}` } });
    assert.equal(cat.status, 200);
    assert.deepEqual(cat.json(), { repositories: ['tok/a'] });
  });

  it('grants per the ACL: bob may only pull shared/*', async () => {
    const t = await token(s.url, ['repository:shared/x:pull,push', 'repository:tok/a:pull'], basic('bob', 'bobpw'));
    const claims = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'shared/x', actions: ['pull'] }]);
    assert.equal(claims.sub, 'bob');
    assert.equal(claims.iss, 'test-issuer');
    assert.equal(claims.aud, 'test-registry');
    const r = await postBlob(s.url, 'shared/x', 'nope', { Authorization: `Bearer ${t}` });
    assert.equal(r.status, 401);
    assert.match(r.headers['www-authenticate'] as string, /insufficient_scope/);
  });

  it('anonymous tokens carry no access without anonymous pull; bad passwords get no token', async () => {
    const t = await token(s.url, ['repository:tok/a:pull']);
    const claims = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.access, []);
    assert.equal((await request(s.url, 'GET', '/v2/tok/a/tags/list', { headers: { Authorization: `Bearer ${t}` } })).status, 401);
    const bad = await request(s.url, 'GET', '/token?scope=repository:tok/a:pull', { headers: { Authorization: basic('alice', 'nope') } });
    assert.equal(bad.status, 401);
    const badScope = await request(s.url, 'GET', '/token?scope=garbage', { headers: { Authorization: basic('alice', 'alicepw') } });
    assert.equal(badScope.status, 400);
  });

  it('refuses tampered, foreign-key, expired and alg-none tokens (invalid_token)', async () => {
    const t = await token(s.url, ['repository:tok/a:pull'], basic('alice', 'alicepw'));
    const [h, p, sig] = t.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    claims.access = [{ type: 'repository', name: 'tok/a', actions: ['pull', 'push', 'delete'] }];
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
    const otherKey = path.join(dir, 'other.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', otherKey], { stdio: 'ignore' });
    const now = Math.floor(Date.now() / 1000);
    const base = { iss: 'test-issuer', sub: 'alice', aud: 'test-registry', nbf: now - 10, iat: now - 10, jti: 'x', access: [{ type: 'repository', name: 'tok/a', actions: ['pull'] }] };
    const foreign = signToken(loadTokenKeys(otherKey), { ...base, exp: now + 300 });
    const expired = signToken(loadTokenKeys(keyFile), { ...base, exp: now - 3600 });
    const wrongAud = signToken(loadTokenKeys(keyFile), { ...base, aud: 'elsewhere', exp: now + 300 });
    const good = signToken(loadTokenKeys(keyFile), { ...base, exp: now + 300 });
    for (const bad of [tampered, none, foreign, expired, wrongAud, 'a.b', 'x.y.z']) {
      const r = await request(s.url, 'GET', '/v2/tok/a/tags/list', { headers: { Authorization: `Bearer ${bad}` } });
      assert.equal(r.status, 401, bad);
      assert.match(r.headers['www-authenticate'] as string, /error="invalid_token"/);
    }
    assert.equal((await request(s.url, 'GET', '/v2/tok/a/tags/list', { headers: { Authorization: `Bearer ${good}` } })).status, 200);
  });

  it('supports the OAuth2 password grant (POST) and RS256 keys', async () => {
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'alicepw', service: 'berth-registry', scope: 'repository:r/s:pull,push' });
    const r = await request(rsa.url, 'POST', '/token', { body: form.toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 200);
    const t = r.json<{ access_token: string }>().access_token;
    assert.equal(JSON.parse(Buffer.from(t.split('.')[0], 'base64url').toString()).alg, 'RS256');
    assert.equal((await postBlob(rsa.url, 'r/s', 'rsa', { Authorization: `Bearer ${t}` })).status, 201);
    const bad = await request(rsa.url, 'POST', '/token', { body: 'grant_type=password&username=alice&password=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.equal(bad.status, 401);
  });
});

describe('TLS', () => {
  let dir: string;
  let s: RunningRegistry;
  before(async () => {
    dir = tmpDir();
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    s = await serve(dir, { tlsCert: cert, tlsKey: key, htpasswd: writeHtpasswd(dir) });
  });
  after(async () => {
    await s.close();
    rmrf(dir);
  });

  it('serves the API over https with basic auth', async () => {
    assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const h = { Authorization: basic('alice', 'alicepw') };
    assert.equal((await request(s.url, 'GET', '/v2/', { headers: h })).status, 200);
    assert.equal((await postBlob(s.url, 'tls/a', 'secure', h)).status, 201);
    assert.equal((await request(s.url, 'GET', `/v2/tls/a/blobs/${sha256('secure')}`, { headers: h })).body.toString(), 'secure');
  });

  it('refuses a certificate without its key', () => {
    assert.throws(() => buildServerOptions({ addr: ':0', root: dir, tlsCert: path.join(dir, 'cert.pem') }), /together/);
  });
});
