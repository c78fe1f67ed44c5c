// docker-compose 1.29 (the Python v1 compose) driving berthd unchanged: a two-service project on
// its own compose network (busybox httpd with a published port, and a client reaching it by
// service name), then ps, logs, exec and down -v removing containers, network and volumes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { api, run } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';
import { eventually, httpGet as httpGetAt } from '../network/helpers';

let env: CtrEnv;
let workdir: string;
const project = `compat${randomBytes(4).toString('hex')}`;

const COMPOSE_FILE = `version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && echo web-ready && exec httpd -f -v -p 80 -h /www"]
    ports:
      - "127.0.0.1::80"
    volumes:
      - data:/data
  client:
    image: busybox
    depends_on: [web]
    command: ["sh", "-c", "until wget -q -O /tmp/got http://web/; do sleep 0.3; done; echo fetched: $$(cat /tmp/got); exec sleep 600"]
volumes:
  data: {}
`;

before(async () => {
  env = await setupDaemon('compat-compose');
  workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-compat-compose-'));
  fs.writeFileSync(path.join(workdir, 'docker-compose.yml'), COMPOSE_FILE);
});

after(async () => {
  // A failed test may leave the project up; down it through compose before the daemon goes.
  if (env && workdir) await compose(['down', '-v', '--timeout', '1']).catch(() => {});
  await env?.cleanup();
  if (workdir) fs.rmSync(workdir, { recursive: true, force: true });
});

function compose(args: string[], timeoutMs = 60_000) {
  return run('docker-compose', ['--project-directory', workdir, '-f', path.join(workdir, 'docker-compose.yml'), ...args], {
    env: { DOCKER_HOST: env.d.host, COMPOSE_PROJECT_NAME: project, DOCKER_CONFIG: path.join(env.d.dir, 'docker-config'), COMPOSE_INTERACTIVE_NO_CLI: '1' },
    timeoutMs,
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await compose(args);
  assert.equal(r.code, 0, `docker-compose ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n--- daemon log tail ---\n${env.d.logs().slice(-3000)}`);
  return r.stdout;
}

/** GET / of a port published on the host's loopback. */
function httpGet(port: number): Promise<{ status: number; body: string }> {
  return httpGetAt('127.0.0.1', port, 3000);
}

test('up -d, ps, port reachable from the host, service-name resolution, logs, exec, down -v', async (t) => {
  await t.test('up -d starts both services on the project network', async () => {
    await ok(['up', '-d']);
    const list = await api(env.d.socket, 'GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ label: [`com.docker.compose.project=${project}`] }))}`);
    assert.equal(list.status, 200);
    const services = list.json<{ Labels: Record<string, string>; State: string }[]>().map((c) => `${c.Labels['com.docker.compose.service']}:${c.State}`).sort();
    assert.deepEqual(services, ['client:running', 'web:running']);
  });

  await t.test('ps lists both containers as Up', async () => {
    const out = await ok(['ps']);
    assert.match(out, new RegExp(`${project}_web_1\\s.*\\bUp\\b`), out);
    assert.match(out, new RegExp(`${project}_client_1\\s.*\\bUp\\b`), out);
    const ids = (await ok(['ps', '-q'])).trim().split('\n');
    assert.equal(ids.length, 2);
  });

  await t.test('the published port answers on 127.0.0.1', async () => {
    const out = (await ok(['port', 'web', '80'])).trim();
    const m = /^127\.0\.0\.1:(\d+)$/.exec(out);
    assert.ok(m, `port output: ${out}`);
    const res = await eventually(() => httpGet(Number(m[1])));
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hello-compose\n');
  });

  await t.test('the client reached web by service name (logs)', async () => {
    const logs = await eventually(async () => {
      const out = await ok(['logs', '--no-color', 'client']);
      assert.match(out, /fetched: hello-compose/);
      return out;
    });
    assert.match(logs, /client_1\s+\| fetched: hello-compose/);
    const web = await ok(['logs', '--no-color', 'web']);
    assert.match(web, /web_1\s+\| web-ready/);
  });

  await t.test('exec runs in the service container', async () => {
    const out = await ok(['exec', '-T', 'web', 'cat', '/www/index.html']);
    assert.equal(out, 'hello-compose\n');
    const r = await compose(['exec', '-T', 'client', 'sh', '-c', 'exit 4']);
    assert.equal(r.code, 4, r.stderr);
  });

  await t.test('down -v removes containers, network and volumes', async () => {
    await ok(['down', '-v', '--timeout', '1']);
    const ctrs = await api(env.d.socket, 'GET', '/containers/json?all=1');
    assert.deepEqual(ctrs.json<unknown[]>(), []);
    const nets = (await api(env.d.socket, 'GET', '/networks')).json<{ Name: string }[]>().map((n) => n.Name);
    assert.ok(!nets.includes(`${project}_default`), `networks: ${nets.join(', ')}`);
    const vols = ((await api(env.d.socket, 'GET', '/volumes')).json<{ Volumes: { Name: string }[] | null }>().Volumes ?? []).map((v) => v.Name);
    assert.ok(!vols.includes(`${project}_data`), `volumes: ${vols.join(', ')}`);
  });
});
