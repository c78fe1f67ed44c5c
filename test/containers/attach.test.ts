// Interactive streams: a TTY session through a real pty (script(1) driving the docker CLI), the
// hijacked attach API with the detach sequence, and start -a.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { api, run } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from './fixtures';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('attach');
});
after(async () => {
  await e?.cleanup();
});

/** Opens a hijacked attach connection; returns the socket once the 101 header is read. */
function hijackAttach(socket: string, id: string, query: string): Promise<{ sock: net.Socket; output: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socket);
    let buf = '';
    let headerDone = false;
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.on('error', reject);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!headerDone && buf.includes('\r\n\r\n')) {
        headerDone = true;
        const [head, rest] = [buf.slice(0, buf.indexOf('\r\n\r\n')), buf.slice(buf.indexOf('\r\n\r\n') + 4)];
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${head}`));
        assert.match(head, /Content-Type: application\/vnd\.docker\.raw-stream/);
        buf = rest;
        resolve({ sock, output: () => buf, closed });
      }
    });
    sock.write(`POST /v1.50/containers/${id}/attach?${query} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`);
  });
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('docker run -it through a pty: the shell answers and exits', async () => {
  const r = await run('script', ['-qfec', 'docker run -it --rm --name ttyrun busybox sh', '/dev/null'], {
    env: { DOCKER_HOST: e.d.host, DOCKER_CONFIG: `${e.d.dir}/docker-config` },
    input: 'echo hello-$((6*7))\nstty size\nexit 3\n',
    timeoutMs: 30_000,
  });
  assert.match(r.stdout, /hello-42/);
  assert.equal(r.code, 3, r.stdout + r.stderr);
});

test('hijacked attach with a TTY: input, output, detach with ctrl-p ctrl-q keeps it running', async () => {
  const c = await api(e.d.socket, 'POST', '/containers/create?name=ttyc', { Image: 'busybox', Cmd: ['sh'], Tty: true, OpenStdin: true });
  assert.equal(c.status, 201);
  assert.equal((await api(e.d.socket, 'POST', '/containers/ttyc/start')).status, 204);
  const a = await hijackAttach(e.d.socket, 'ttyc', 'stream=1&stdin=1&stdout=1&stderr=1');
  a.sock.write('echo pong-$((1+2))\n');
  await until('shell output', () => a.output().includes('pong-3'));
  assert.equal((await api(e.d.socket, 'POST', '/containers/ttyc/resize?h=40&w=100')).status, 200);
  a.sock.write('stty size\n');
  await until('resized terminal', () => a.output().includes('40 100'));
  a.sock.write(Buffer.from([0x10, 0x11]));
  await a.closed;
  const s = (await api(e.d.socket, 'GET', '/containers/ttyc/json')).json<{ State: { Status: string } }>();
  assert.equal(s.State.Status, 'running');
  // Custom detach keys, and a second attach sees the same shell.
  const b = await hijackAttach(e.d.socket, 'ttyc', 'stream=1&stdin=1&stdout=1&detachKeys=ctrl-x');
  b.sock.write('echo again\n');
  await until('second attach output', () => b.output().includes('again'));
  b.sock.write(Buffer.from([0x18]));
  await b.closed;
  assert.equal((await api(e.d.socket, 'GET', '/containers/ttyc/json')).json<{ State: { Status: string } }>().State.Status, 'running');
  const bad = await api(e.d.socket, 'POST', '/containers/ttyc/attach?stream=1&detachKeys=ctrl-long', undefined, { Connection: 'Upgrade', Upgrade: 'tcp' });
  assert.equal(bad.status, 400);
  assert.equal((await e.docker(['rm', '-f', 'ttyc'])).code, 0);
});

test('start -a replays a stopped container run; attach with logs=1', async () => {
  assert.equal((await e.docker(['create', '--name', 'again', 'busybox', 'sh', '-c', 'echo once; echo err >&2; exit 2'])).code, 0);
  const first = await e.docker(['start', '-a', 'again']);
  assert.equal(first.stdout, 'once\n');
  assert.equal(first.stderr, 'err\n');
  assert.equal(first.code, 2);
  const second = await e.docker(['start', '-a', 'again']);
  assert.equal(second.stdout, 'once\n');
  // logs=1&stream=0: the log so far, multiplexed.
  const r = await api(e.d.socket, 'POST', '/containers/again/attach?logs=1&stream=0&stdout=1&stderr=1');
  assert.equal(r.status, 200);
  assert.equal(r.body[0], 1);
  assert.equal(r.body.readUInt32BE(4), 5);
  assert.equal(r.body.subarray(8, 13).toString(), 'once\n');
  assert.equal((await e.docker(['rm', 'again'])).code, 0);
});

test('a start sent the moment the attach is upgraded still finds the attach: no output lost', async () => {
  // docker start -a (and compose run, through it) sends the start as soon as the 101 arrives.
  for (let i = 0; i < 8; i++) {
    const id = (await e.ok(['create', ...(i % 2 ? ['-t'] : []), 'busybox', 'echo', `hello-${i}`])).trim();
    try {
      const raw = net.connect(e.d.socket);
      let out = '';
      const closed = new Promise<void>((r) => raw.on('close', () => r()));
      raw.on('data', (d: Buffer) => {
        const first = out === '';
        out += d.toString('latin1');
        if (first) raw.emit('upgraded');
      });
      const started = new Promise<void>((resolve, reject) => {
        raw.once('upgraded', () => {
          api(e.d.socket, 'POST', `/containers/${id}/start`).then((r) => (r.status === 204 ? resolve() : reject(new Error(`start: ${r.status}`))), reject);
        });
      });
      raw.write(`POST /v1.50/containers/${id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`);
      await started;
      await closed;
      assert.match(out, /^HTTP\/1.1 101/);
      assert.match(out, new RegExp(`hello-${i}`), `run ${i}: the attach got ${JSON.stringify(out)}`);
    } finally {
      await e.ok(['rm', '-f', id]);
    }
  }
});
