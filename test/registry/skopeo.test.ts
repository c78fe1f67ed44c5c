// Interoperability with a real client: skopeo copies an OCI layout (built here: a small layer tar,
// a config and a manifest) into the registry and back out, without auth, with basic auth and with
// bearer tokens from the registry's own token endpoint.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import { request, rmrf, sha256, tmpDir } from './helpers';
import { buildServerOptions, type RegistryConfig } from '../../src/registry/config';
import { startRegistry, type RunningRegistry } from '../../src/registry/server';

const run = promisify(execFile);

interface Layout {
  dir: string;
  manifestDigest: string;
  layerDigest: string;
}

function writeBlob(dir: string, data: Buffer): string {
  const d = sha256(data);
  fs.writeFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

/** Builds oci:<dir>:v1 holding a one-file image. */
function buildLayout(base: string): Layout {
  const dir = path.join(base, 'layout');
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const content = path.join(base, 'content');
  fs.mkdirSync(content);
  fs.writeFileSync(path.join(content, 'hello.txt'), 'hello from berth\n');
  // Compressed already, so skopeo pushes the layer (and so the manifest) unchanged.
  const tar = execFileSync('tar', ['-C', content, '-cf', '-', 'hello.txt']);
  const layer = gzipSync(tar);
  const layerDigest = writeBlob(dir, layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/hello'] }, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const configDigest = writeBlob(dir, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );
  const manifestDigest = writeBlob(dir, manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
    }),
  );
  return { dir, manifestDigest, layerDigest };
}

describe('skopeo interop', () => {
  let dir: string;
  let layout: Layout;
  let policy: string;
  let env: NodeJS.ProcessEnv;
  const servers: RunningRegistry[] = [];
  let htpasswd: string;
  let tokenKey: string;

  before(() => {
    dir = tmpDir();
    layout = buildLayout(dir);
    policy = path.join(dir, 'policy.json');
    fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    // Keep skopeo away from the machine's credentials and caches.
    env = { ...process.env, REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'), HOME: dir, XDG_RUNTIME_DIR: dir };
    htpasswd = path.join(dir, 'htpasswd');
    fs.writeFileSync(htpasswd, `carol:${bcrypt.hashSync('carolpw', 4)}\n`);
    tokenKey = path.join(dir, 'token.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', tokenKey], { stdio: 'ignore' });
  });
  after(async () => {
    for (const s of servers) await s.close();
    rmrf(dir);
  });

  async function serve(cfg: Partial<RegistryConfig>, rootName: string): Promise<RunningRegistry> {
    const built = buildServerOptions({ addr: '127.0.0.1:0', root: path.join(dir, rootName), ...cfg });
    const s = await startRegistry({ ...built.registry, ...built.listen });
    servers.push(s);
    return s;
  }

  function skopeo(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run('skopeo', ['--policy', policy, ...args], { env, timeout: 60_000 });
  }

  async function roundTrip(s: RunningRegistry, name: string, creds?: string): Promise<void> {
    const host = s.url.replace(/^https?:\/\//, '');
    const ref = `docker://${host}/${name}:v1`;
    const credArgs = (flag: string): string[] => (creds ? [flag, creds] : []);
    await skopeo(['copy', '--dest-tls-verify=false', ...credArgs('--dest-creds'), `oci:${layout.dir}:v1`, ref]);
    const tags = JSON.parse((await skopeo(['list-tags', '--tls-verify=false', ...credArgs('--creds'), `docker://${host}/${name}`])).stdout);
    assert.deepEqual(tags.Tags, ['v1']);
    const raw = (await skopeo(['inspect', '--raw', '--tls-verify=false', ...credArgs('--creds'), ref])).stdout;
    assert.equal(sha256(Buffer.from(raw)), layout.manifestDigest, 'manifest stored byte for byte');
    const out = path.join(dir, `out-${name.replace(/\//g, '_')}`);
    await skopeo(['copy', '--src-tls-verify=false', ...credArgs('--src-creds'), ref, `oci:${out}:v1`]);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8'));
    assert.equal(index.manifests[0].digest, layout.manifestDigest);
    const layer = fs.readFileSync(path.join(out, 'blobs', 'sha256', layout.layerDigest.slice(7)));
    assert.equal(sha256(layer), layout.layerDigest);
  }

  it('copies an OCI layout in and out without auth', async () => {
    const s = await serve({}, 'root-open');
    await roundTrip(s, 'interop/plain');
    const manifest = await request(s.url, 'GET', '/v2/interop/plain/manifests/v1');
    assert.equal(manifest.headers['docker-content-digest'], layout.manifestDigest);
  });

  it('copies in and out with basic auth (--dest-creds)', async () => {
    const s = await serve({ htpasswd }, 'root-basic');
    await assert.rejects(skopeo(['copy', '--dest-tls-verify=false', `oci:${layout.dir}:v1`, `docker://${s.url.slice(7)}/interop/basic:v1`]));
    await roundTrip(s, 'interop/basic', 'carol:carolpw');
  });

  it('copies in and out with bearer tokens', async () => {
    const s = await serve({ htpasswd, tokenKey, tokenServer: true }, 'root-token');
    await roundTrip(s, 'interop/token', 'carol:carolpw');
  });
});
