// docker-compose 1.29 with a compose file format 2.4 project, the way CI scripts use it: a service
// built from a Dockerfile (build args), a healthcheck that another service waits for
// (depends_on: condition: service_healthy), legacy links with an alias, env_file, network
// aliases on a custom network, a named volume; then `up --exit-code-from`, `run --rm`,
// `up --scale`, `logs --tail`, `restart` and `down --rmi local -v`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { api, run } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';

let env: CtrEnv;
let workdir: string;
const project = `cv2${randomBytes(4).toString('hex')}`;

const COMPOSE_FILE = `version: "2.4"
services:
  web:
    build:
      context: ./web
      args:
        GREETING: built-with-arg
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      timeout: 2s
      retries: 5
    networks:
      backend:
        aliases: [frontpage]
    volumes:
      - data:/data
  tests:
    image: busybox
    depends_on:
      web:
        condition: service_healthy
    links: ["web:legacyweb"]
    env_file: tests.env
    environment:
      - INLINE=inline-value
    networks: [backend]
    command: ["sh", "-c", "echo env $$FROM_FILE $$INLINE; wget -q -O - http://frontpage/; wget -q -O - http://legacyweb/; wget -q -O - http://web/; exit 3"]
networks:
  backend: {}
volumes:
  data: {}
`;

before(async () => {
  env = await setupDaemon('compat-compose2');
  workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-compat-compose2-'));
  fs.writeFileSync(path.join(workdir, 'docker-compose.yml'), COMPOSE_FILE);
  fs.mkdirSync(path.join(workdir, 'web'));
  fs.writeFileSync(path.join(workdir, 'web', 'Dockerfile'), 'FROM busybox\nARG GREETING=default\nRUN mkdir /www && echo "$GREETING" > /www/index.html\nCMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n');
  fs.writeFileSync(path.join(workdir, 'tests.env'), '# a comment\nFROM_FILE=from-env-file\n');
});

after(async () => {
  if (env && workdir) await compose(['down', '-v', '--rmi', 'local', '--timeout', '1']).catch(() => {});
  await env?.cleanup();
  if (workdir) fs.rmSync(workdir, { recursive: true, force: true });
});

function compose(args: string[], timeoutMs = 90_000) {
  return run('docker-compose', ['--project-directory', workdir, '-f', path.join(workdir, 'docker-compose.yml'), ...args], {
    env: { DOCKER_HOST: env.d.host, COMPOSE_PROJECT_NAME: project, DOCKER_CONFIG: path.join(env.d.dir, 'docker-config'), COMPOSE_INTERACTIVE_NO_CLI: '1' },
    timeoutMs,
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await compose(args);
  assert.equal(r.code, 0, `docker-compose ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}\n--- daemon log tail ---\n${env.d.logs().slice(-3000)}`);
  return r.stdout;
}

async function projectContainers(): Promise<{ Names: string[]; State: string; Labels: Record<string, string> }[]> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`com.docker.compose.project=${project}`] }));
  return (await api(env.d.socket, 'GET', `/containers/json?all=1&filters=${filters}`)).json();
}

test('compose 2.4: build, service_healthy, links, env_file, aliases, exit-code-from, run, scale, down --rmi local', async (t) => {
  await t.test('up --build --exit-code-from: tests starts once web is healthy and reaches it by alias, link and name', async () => {
    const r = await compose(['up', '--build', '--no-color', '--exit-code-from', 'tests']);
    assert.equal(r.code, 3, `exit code of tests:\n${r.stdout}\n${r.stderr}\n${env.d.logs().slice(-3000)}`);
    assert.match(r.stdout, /tests_1\s+\| env from-env-file inline-value/);
    const served = r.stdout.split('\n').filter((l) => /tests_1\s+\| built-with-arg$/.test(l));
    assert.equal(served.length, 3, `three fetches (alias, link, service name):\n${r.stdout}`);
  });

  await t.test('the built image is tagged <project>_web; web was healthy', async () => {
    const img = await api(env.d.socket, 'GET', `/images/${project}_web/json`);
    assert.equal(img.status, 200);
    const web = (await projectContainers()).find((c) => c.Labels['com.docker.compose.service'] === 'web')!;
    const insp = (await api(env.d.socket, 'GET', `/containers/${web.Names[0].slice(1)}/json`)).json<{ State: { Health?: { Status: string; Log: unknown[] } } }>();
    assert.ok((insp.State.Health?.Log.length ?? 0) > 0, 'the health check ran');
  });

  await t.test('run --rm, up -d --scale, logs --tail, restart', async () => {
    // compose 1.29 (COMPOSE_INTERACTIVE_NO_CLI) makes its attach requests only after the start
    // (dockerpty's sockets() is a lazy map, unpacked after start_container), so output written
    // before they arrive is not theirs, with dockerd too: the command waits a moment first.
    const out = await ok(['run', '--rm', '-T', '--no-deps', 'tests', 'sh', '-c', 'sleep 1; echo run-$$INLINE-$$FROM_FILE'.replace(/\$\$/g, '$')]);
    assert.match(out, /run-inline-value-from-env-file/);
    await ok(['up', '-d', '--scale', 'web=2', 'web']);
    const webs = (await projectContainers()).filter((c) => c.Labels['com.docker.compose.service'] === 'web' && c.State === 'running');
    assert.equal(webs.length, 2);
    const logs = await ok(['logs', '--no-color', '--tail', '1', 'tests']);
    assert.match(logs, /tests_1\s+\| built-with-arg\n$/);
    await ok(['restart', '-t', '1', 'web']);
    assert.equal((await projectContainers()).filter((c) => c.State === 'running').length, 2);
  });

  await t.test('down --rmi local -v removes containers, network, volume and the built image', async () => {
    await ok(['down', '--rmi', 'local', '-v', '--timeout', '1']);
    assert.deepEqual(await projectContainers(), []);
    assert.equal((await api(env.d.socket, 'GET', `/images/${project}_web/json`)).status, 404);
    const vols = ((await api(env.d.socket, 'GET', '/volumes')).json<{ Volumes: { Name: string }[] | null }>().Volumes ?? []).map((v) => v.Name);
    assert.ok(!vols.includes(`${project}_data`));
    const nets = (await api(env.d.socket, 'GET', '/networks')).json<{ Name: string }[]>().map((n) => n.Name);
    assert.ok(!nets.includes(`${project}_backend`));
    assert.equal((await api(env.d.socket, 'GET', '/images/busybox/json')).status, 200, 'busybox (not built locally) stays');
  });
});
