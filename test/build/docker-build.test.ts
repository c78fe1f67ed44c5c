// `docker build` end to end: the real docker CLI (classic builder, with DOCKER_BUILDKIT=0 and with
// its fallback when buildx is missing) against a real berthd, whose RUN steps run in real
// containers (crun over overlayfs) from a busybox image. Also the raw POST /build API: gzip
// contexts, errors before and after the stream starts, build args, labels, /build/prune.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { gzipSync } from 'node:zlib';
import { makeTar } from '../archive/fixtures';
import { api, run } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';

let env: CtrEnv;
let work: string;

before(async () => {
  env = await setupDaemon('build');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-ctx-'));
});

after(async () => {
  await env?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A fresh context directory with these files. */
function context(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, body] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), body);
  }
  return dir;
}

/** The docker CLI; classic: DOCKER_BUILDKIT=0, otherwise the CLI's own choice (no buildx here). */
function dockerCli(args: string[], opts: { classic?: boolean; input?: string; cwd?: string } = {}) {
  return run('docker', args, {
    input: opts.input,
    env: { DOCKER_HOST: env.d.host, DOCKER_CONFIG: path.join(env.d.dir, 'docker-config'), ...(opts.classic ? { DOCKER_BUILDKIT: '0' } : { DOCKER_BUILDKIT: '' }) },
  });
}

async function dockerOk(args: string[], opts: { classic?: boolean; input?: string } = {}): Promise<string> {
  const r = await dockerCli(args, opts);
  assert.equal(r.code, 0, `docker ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const MULTI_STAGE = `FROM busybox AS builder
ARG MSG=hello
ENV STAGE=one
WORKDIR /src
COPY greet.txt .
RUN echo "built: $MSG $STAGE $(cat greet.txt) in $(pwd)" > out.txt && echo step-output && echo step-stderr >&2
RUN rm /etc/group && mkdir -p /gone && echo x > /gone/y && rm -r /gone

FROM busybox
ENV WHO=world
COPY --from=builder /src/out.txt /app/out.txt
WORKDIR /app
USER daemon
RUN id -u > /tmp/uid && echo "user $(id -u) in $(pwd)"
CMD ["sh", "-c", "cat /app/out.txt; echo hi $WHO; cat /tmp/uid"]
`;

/** Steps of a Dockerfile's output that used the cache, and all steps that are not FROM. */
function cacheUse(out: string): { steps: string[]; cached: string[] } {
  const blocks = out.split(/^Step \d+\/\d+ : /m).slice(1);
  const steps = blocks.filter((b) => !b.startsWith('FROM')).map((b) => b.split('\n')[0]);
  const cached = blocks.filter((b) => !b.startsWith('FROM') && b.includes(' ---> Using cache')).map((b) => b.split('\n')[0]);
  return { steps, cached };
}

test('a multi-stage build with RUN, COPY --from, ENV, WORKDIR, ARG, USER, CMD runs; rebuilds use the cache', async () => {
  const dir = context('multi', { Dockerfile: MULTI_STAGE, 'greet.txt': 'greetings\n' });
  const out = await dockerOk(['build', '-t', 'multi:1', dir], { classic: true });
  assert.match(out, /Step 6\/14 : RUN echo "built/);
  assert.match(out, / ---> Running in [0-9a-f]{12}\n(step-output\nstep-stderr\n|step-stderr\nstep-output\n)Removing intermediate container [0-9a-f]{12}\n ---> [0-9a-f]{12}\n/);
  assert.match(out, /user 1 in \/app\n/);
  assert.match(out, /Successfully built [0-9a-f]{12}\nSuccessfully tagged multi:1\n/);
  // The RUN containers are gone (rm=1 by default).
  assert.equal((await dockerOk(['ps', '-aq'])).trim(), '');

  assert.equal(await dockerOk(['run', '--rm', 'multi:1']), 'built: hello one greetings in /src\nhi world\n1\n');
  // The builder stage's RUN layer holds its changes only, deletions as whiteouts.
  const stage = await dockerOk(['build', '-q', '--target', 'builder', dir], { classic: true });
  const id = stage.trim();
  const ls = await dockerOk(['run', '--rm', id, 'sh', '-c', 'ls /etc; ls / | grep -c gone || true']);
  assert.doesNotMatch(ls, /\bgroup\b/);
  assert.match(ls, /passwd/);
  assert.match(ls, /^0$/m);

  // A full rebuild, through the CLI's own builder choice (it falls back to the classic API).
  const again = await dockerCli(['build', '-t', 'multi:1', dir]);
  assert.equal(again.code, 0, again.stderr);
  const use = cacheUse(again.stdout);
  assert.equal(use.steps.length, 12);
  assert.deepEqual(use.cached, use.steps, again.stdout);
  assert.doesNotMatch(again.stdout, /Running in/);

  // --no-cache runs everything again.
  const fresh = await dockerOk(['build', '--no-cache', '-t', 'multi:2', dir], { classic: true });
  assert.deepEqual(cacheUse(fresh).cached, []);
  assert.match(fresh, /step-output/);
});

test('changing a copied file invalidates the cache from that step on', async () => {
  const df = `FROM busybox
ENV A=1
COPY a.txt /a.txt
COPY b.txt /b.txt
RUN cat /a.txt /b.txt > /both
CMD ["cat", "/both"]
`;
  const dir = context('invalidate', { Dockerfile: df, 'a.txt': 'a1\n', 'b.txt': 'b1\n' });
  await dockerOk(['build', '-t', 'inv', dir], { classic: true });
  assert.equal(await dockerOk(['run', '--rm', 'inv']), 'a1\nb1\n');
  fs.writeFileSync(path.join(dir, 'b.txt'), 'b2\n');
  const out = await dockerOk(['build', '-t', 'inv', dir], { classic: true });
  const use = cacheUse(out);
  assert.deepEqual(use.cached, ['ENV A=1', 'COPY a.txt /a.txt']);
  assert.equal(await dockerOk(['run', '--rm', 'inv']), 'a1\nb2\n');
});

test('-f names another Dockerfile; .dockerignore is honoured; build args and labels apply', async () => {
  const dir = context('dockerfile-f', {
    'build/Alt.dockerfile': 'FROM busybox\nARG V=default\nCOPY . /ctx/\nRUN echo "v=$V" > /v && ls -a /ctx | sort > /listing\nCMD ["sh", "-c", "cat /v /listing"]\n',
    '.dockerignore': 'secret*\n*.log\n!keep.log\n',
    'keep.log': 'k',
    'drop.log': 'd',
    'secret.txt': 's',
    'data.txt': 'x',
  });
  const out = await dockerOk(['build', '-f', path.join(dir, 'build/Alt.dockerfile'), '--build-arg', 'V=given', '--label', 'team=berth', '-t', 'alt', dir], { classic: true });
  assert.match(out, /Step 2\/6 : ARG V=default/);
  const shown = await dockerOk(['run', '--rm', 'alt']);
  assert.equal(shown, 'v=given\n.\n..\n.dockerignore\nbuild\ndata.txt\nkeep.log\n');
  const labels = JSON.parse(await dockerOk(['image', 'inspect', '--format', '{{json .Config.Labels}}', 'alt'])) as Record<string, string>;
  assert.equal(labels.team, 'berth');
});

test('a failing RUN fails the build with docker\'s message and a non-zero exit', async () => {
  const dir = context('failing', { Dockerfile: 'FROM busybox\nRUN echo before && false\nRUN echo never\n' });
  for (const classic of [true, false]) {
    const r = await dockerCli(['build', '-t', 'failing', dir], { classic });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /before\n/);
    assert.match(r.stderr, /The command '\/bin\/sh -c echo before && false' returned a non-zero code: 1/);
    assert.doesNotMatch(r.stdout, /never/);
  }
  // Without --force-rm the failed step's container stays, as with docker; with it, it goes.
  const left = (await dockerOk(['ps', '-aq'])).trim().split('\n').filter(Boolean);
  assert.equal(left.length, 2);
  for (const id of left) await dockerOk(['rm', id]);
  const r = await dockerCli(['build', '--force-rm', dir], { classic: true });
  assert.notEqual(r.code, 0);
  assert.equal((await dockerOk(['ps', '-aq'])).trim(), '');
  const missing = await dockerCli(['build', '-f', 'nope.dockerfile', dir], { classic: true });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /Cannot locate specified Dockerfile: nope.dockerfile|nope.dockerfile/);
});

test('a Dockerfile from stdin, and -q printing only the ID', async () => {
  const df = 'FROM busybox\nRUN echo from-stdin > /f\nCMD ["cat", "/f"]\n';
  const out = await dockerOk(['build', '-t', 'stdin', '-'], { classic: true, input: df });
  assert.match(out, /Step 2\/3 : RUN echo from-stdin > \/f/);
  assert.equal(await dockerOk(['run', '--rm', 'stdin']), 'from-stdin\n');
  // --pull is accepted (berth's builder uses the local image); --platform names this machine's.
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const quiet = await dockerOk(['build', '-q', '--pull', '--platform', `linux/${arch}`, '-'], { classic: true, input: df });
  assert.match(quiet, /^sha256:[0-9a-f]{64}\n$/);
  const inspected = (await dockerOk(['image', 'inspect', '--format', '{{.Id}}', 'stdin'])).trim();
  assert.equal(quiet.trim(), inspected);
});

test('a fully cached rebuild of a 10-step Dockerfile through the docker CLI is fast', async (t) => {
  const steps = ['FROM busybox', 'ENV A=1', 'WORKDIR /w', 'COPY f1 .', 'RUN echo one > one', 'ARG X=2', 'LABEL l=1', 'COPY f2 .', 'RUN cat f1 f2 > both', 'CMD ["cat", "/w/both"]'];
  const dir = context('timing', { Dockerfile: steps.join('\n') + '\n', f1: '1\n', f2: '2\n' });
  await dockerOk(['build', '-t', 'timing', dir]);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    const out = await dockerOk(['build', '-t', 'timing', dir]);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    assert.equal(cacheUse(out).cached.length, 9);
  }
  times.sort((a, b) => a - b);
  t.diagnostic(`cached 10-step rebuild through the docker CLI: median ${times[2].toFixed(0)} ms, best ${times[0].toFixed(0)} ms`);
});

/** A raw POST /build; the response's JSON messages. */
async function postBuild(query: string, body: Buffer, headers: Record<string, string> = {}) {
  const r = await api(env.d.socket, 'POST', `/v1.41/build?${query}`, body, { 'Content-Type': 'application/x-tar', ...headers });
  const msgs = r.status === 200 ? r.body.toString().split('\r\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  return { status: r.status, msgs, body: r.body.toString(), stream: msgs.map((m) => (m.stream as string | undefined) ?? '').join('') };
}

test('POST /build: gzip contexts, errors before and after the stream starts, build args, /build/prune', async () => {
  const tar = await makeTar([{ name: 'Dockerfile', body: 'FROM busybox\nARG WHO\nRUN echo "hi $WHO"\n', mode: 0o644 }]);
  const gz = await postBuild(`buildargs=${encodeURIComponent(JSON.stringify({ WHO: 'api' }))}&t=api:a&t=api:b&networkmode=default&shmsize=67108864&memory=67108864`, gzipSync(tar), { 'X-Registry-Config': Buffer.from('{}').toString('base64') });
  assert.equal(gz.status, 200, gz.body);
  assert.match(gz.stream, /hi api\n/);
  assert.match(gz.stream, /Successfully tagged api:a\nSuccessfully tagged api:b\n/);
  const aux = gz.msgs.find((m) => m.aux) as { aux: { ID: string } };
  assert.match(aux.aux.ID, /^sha256:/);
  // An RUN whose filesystem is unchanged adds no layer.
  const history = JSON.parse(await dockerOk(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'api:a'])) as string[];
  const base = JSON.parse(await dockerOk(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'busybox'])) as string[];
  assert.deepEqual(history, base);

  // A bad Dockerfile is a plain 4xx before any output.
  const bad = await postBuild('', await makeTar([{ name: 'Dockerfile', body: 'FROM busybox\nNOPE x\n', mode: 0o644 }]));
  assert.equal(bad.status, 400, bad.body);
  assert.match(JSON.parse(bad.body).message, /unknown instruction: NOPE/i);
  const noDf = await postBuild('dockerfile=Other', tar);
  assert.equal(noDf.status, 400);
  assert.match(JSON.parse(noDf.body).message, /Cannot locate specified Dockerfile: Other/);

  // After output, an error is an errorDetail message in a 200 stream, with the exit code.
  const failing = await postBuild('', await makeTar([{ name: 'Dockerfile', body: 'FROM busybox\nRUN exit 3\n', mode: 0o644 }]));
  assert.equal(failing.status, 200);
  const last = failing.msgs[failing.msgs.length - 1] as { errorDetail: { code: number; message: string } };
  assert.deepEqual(last.errorDetail, { code: 3, message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3" });
  for (const id of (await dockerOk(['ps', '-aq'])).trim().split('\n').filter(Boolean)) await dockerOk(['rm', id]);

  // /build/prune forgets the step cache: the next build runs its RUN again.
  assert.match(await dockerOk(['builder', 'prune', '-f']), /Total reclaimed space: 0B/);
  const rebuilt = await postBuild(`buildargs=${encodeURIComponent(JSON.stringify({ WHO: 'api' }))}`, tar);
  assert.match(rebuilt.stream, /Running in/);
  const cancel = await api(env.d.socket, 'POST', '/v1.41/build/cancel?id=nope');
  assert.equal(cancel.status, 404);
});

test('a client that goes away cancels the build: the RUN container is killed and removed', async () => {
  const tar = await makeTar([{ name: 'Dockerfile', body: 'FROM busybox\nRUN echo started && sleep 60\n', mode: 0o644 }]);
  const t0 = Date.now();
  await new Promise<void>((resolve, reject) => {
    const req = http.request({ socketPath: env.d.socket, path: '/v1.41/build?buildid=b1', method: 'POST', headers: { 'Content-Type': 'application/x-tar' } }, (res) => {
      let seen = '';
      res.on('data', (c: Buffer) => {
        seen += c.toString();
        // Gone once the step's process runs.
        if (seen.includes('started')) {
          req.destroy();
          resolve();
        }
      });
      res.on('error', () => {});
    });
    req.on('error', (err) => (err.message.includes('socket hang up') || (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err)));
    req.end(tar);
  });
  let left = ['?'];
  for (let i = 0; i < 100 && left.length; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = (await dockerOk(['ps', '-aq'])).trim().split('\n').filter(Boolean);
  }
  assert.deepEqual(left, []);
  assert.ok(Date.now() - t0 < 30_000);

  // POST /build/cancel?id= stops a build by the buildid it was given; its stream ends with the error.
  const done = new Promise<string>((resolve, reject) => {
    const req = http.request({ socketPath: env.d.socket, path: '/v1.41/build?buildid=b2', method: 'POST', headers: { 'Content-Type': 'application/x-tar' } }, (res) => {
      let seen = '';
      let cancelled = false;
      res.on('data', (c: Buffer) => {
        seen += c.toString();
        if (seen.includes('started') && !cancelled) {
          cancelled = true;
          api(env.d.socket, 'POST', '/v1.41/build/cancel?id=b2').then((r) => assert.equal(r.status, 200), reject);
        }
      });
      res.on('end', () => resolve(seen));
    });
    req.on('error', reject);
    req.end(tar);
  });
  const seen = await done;
  assert.match(seen, /"errorDetail":\{"message":"the build was cancelled"\}/);
  assert.equal((await dockerOk(['ps', '-aq'])).trim(), '');
});
