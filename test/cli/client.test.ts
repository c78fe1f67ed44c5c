// The client's transport: host resolution, query encoding, error mapping, JSON-lines progress,
// stdcopy demultiplexing, and hijacked (upgraded) connections, against a real HTTP server on a
// unix socket in a temp dir.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import {
  ApiClient, buildQuery, ConnectError, DaemonError, demuxStream, displayJSONMessages, filtersParam, parseHost, resolveHost, StdcopyDemuxer,
  stdcopyFrame, StreamError, STDERR, STDOUT, SYSTEMERR,
} from '../../src/cli/client';

let dir: string;
let server: http.Server;
let socket: string;
const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-client-'));
  socket = path.join(dir, 'api.sock');
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url!.startsWith('/v1.50/missing')) {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'No such image: nope:latest' }) + '\n');
      } else if (req.url!.startsWith('/v1.50/plain-error')) {
        res.writeHead(500);
        res.end('something broke');
      } else if (req.url!.startsWith('/v1.50/progress')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write('{"status":"Loading layer","id":"abc","progress":"[==>  ]"}\n{"stream":"Loaded image: x:latest\\n"}\n');
        res.end('{"errorDetail":{"message":"disk full"},"error":"disk full"}\n');
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ok: true, body }));
      }
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, sock) => {
    if (req.url!.includes('refuse')) {
      sock.end('HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 39\r\nConnection: close\r\n\r\n{"message":"container is not running"}\n');
      return;
    }
    assert.equal(req.headers.upgrade, 'tcp');
    sock.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    // Echo stdin back as stdout frames, and say goodbye on stderr once stdin is closed.
    sock.on('data', (d: Buffer) => sock.write(stdcopyFrame(STDOUT, d)));
    sock.on('end', () => sock.end(stdcopyFrame(STDERR, 'bye\n')));
  });
  await new Promise<void>((r) => server.listen(socket, r));
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('host resolution: flag, BERTH_HOST, DOCKER_HOST, default', () => {
  assert.equal(resolveHost('unix:///a', { BERTH_HOST: 'unix:///b' }), 'unix:///a');
  assert.equal(resolveHost(undefined, { BERTH_HOST: 'unix:///b', DOCKER_HOST: 'unix:///c' }), 'unix:///b');
  assert.equal(resolveHost(undefined, { DOCKER_HOST: 'unix:///c' }), 'unix:///c');
  assert.equal(resolveHost(undefined, {}), 'unix:///run/berth.sock');
  assert.deepEqual(parseHost('unix:///run/x.sock'), { raw: 'unix:///run/x.sock', socketPath: '/run/x.sock' });
  assert.deepEqual(parseHost('tcp://127.0.0.1:2375'), { raw: 'tcp://127.0.0.1:2375', hostname: '127.0.0.1', port: 2375 });
  assert.throws(() => parseHost('ftp://x'), /unsupported protocol/);
  assert.throws(() => parseHost('nonsense'), /unable to parse/);
});

test('query and filter encoding as docker sends them', () => {
  assert.equal(buildQuery({ a: '1', b: undefined, c: ['x', 'y'], d: true, e: 0 }), '?a=1&c=x&c=y&d=1&e=0');
  assert.equal(buildQuery({}), '');
  assert.equal(filtersParam(['dangling=true', 'label=a=b', 'label=c']), '{"dangling":{"true":true},"label":{"a=b":true,"c":true}}');
  assert.equal(filtersParam([]), undefined);
  assert.throws(() => filtersParam(['nonsense']), /bad format of filter/);
});

test('requests use versioned paths and JSON bodies; errors carry the daemon message', async () => {
  const c = new ApiClient(`unix://${socket}`);
  const r = await c.json<{ ok: boolean; body: string }>('POST', '/containers/create', { query: { name: 'x' }, body: { Image: 'busybox' } });
  assert.equal(r.ok, true);
  const last = seen[seen.length - 1];
  assert.equal(last.url, '/v1.50/containers/create?name=x');
  assert.equal(last.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(last.body), { Image: 'busybox' });
  await assert.rejects(c.json('GET', '/missing'), (e: Error) => e instanceof DaemonError && e.status === 404 && e.message === 'No such image: nope:latest');
  await assert.rejects(c.json('GET', '/plain-error'), (e: Error) => e instanceof DaemonError && e.status === 500 && e.message === 'something broke');
  // A streamed body (the import/load path).
  await c.json('POST', '/upload', { body: Readable.from([Buffer.from('tar'), Buffer.from('ball')]) });
  assert.equal(seen[seen.length - 1].body, 'tarball');
});

test('an absent daemon is reported as docker does', async () => {
  const c = new ApiClient(`unix://${path.join(dir, 'nobody.sock')}`);
  await assert.rejects(c.json('GET', '/version'), (e: Error) => e instanceof ConnectError && /Cannot connect to the berth daemon at unix:\/\/.*nobody.sock. Is the berth daemon running\?/.test(e.message));
});

test('JSON progress: lines rendered, stream text passed through, an error message ends it', async () => {
  const c = new ApiClient(`unix://${socket}`);
  const res = await c.request('POST', '/progress');
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  await assert.rejects(displayJSONMessages(res, out), (e: Error) => e instanceof StreamError && e.message === 'disk full');
  assert.equal(text, 'abc: Loading layer [==>  ]\nLoaded image: x:latest\n');
});

test('stdcopy: frames split anywhere, several per chunk, system errors', async () => {
  const frames = Buffer.concat([stdcopyFrame(STDOUT, 'hello '), stdcopyFrame(STDERR, 'oops\n'), stdcopyFrame(STDOUT, 'world\n'), stdcopyFrame(STDOUT, Buffer.alloc(70000, 0x61))]);
  for (const size of [1, 3, 7, 8, 9, 100, frames.length]) {
    const got: [number, string][] = [];
    const d = new StdcopyDemuxer((s, p) => got.push([s, p.toString()]));
    for (let i = 0; i < frames.length; i += size) d.push(frames.subarray(i, i + size));
    assert.equal(d.leftover, 0);
    assert.deepEqual(got.slice(0, 3), [[STDOUT, 'hello '], [STDERR, 'oops\n'], [STDOUT, 'world\n']]);
    assert.equal(got[3][1].length, 70000);
  }
  const bad = new StdcopyDemuxer(() => {});
  assert.throws(() => bad.push(Buffer.from([9, 0, 0, 0, 0, 0, 0, 1, 0])), /Unrecognized input header: 9/);

  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (x: Buffer) => (o += x));
  err.on('data', (x: Buffer) => (e += x));
  await demuxStream(Readable.from([frames.subarray(0, 5), frames.subarray(5)]), out, err);
  assert.equal(o.slice(0, 12), 'hello world\n');
  assert.equal(e, 'oops\n');
  await assert.rejects(demuxStream(Readable.from([stdcopyFrame(SYSTEMERR, 'exec failed')]), out, err), (x: Error) => x instanceof DaemonError && x.message === 'exec failed');
});

test('hijack: 101 upgrade, then a raw bidirectional stream with half-close', async () => {
  const c = new ApiClient(`unix://${socket}`);
  const h = await c.hijack('POST', '/containers/x/attach', { query: { stream: '1', stdin: '1' } });
  assert.equal(h.response.statusCode, 101);
  const got: [number, string][] = [];
  const d = new StdcopyDemuxer((s, p) => got.push([s, p.toString()]));
  if (h.head.length) d.push(h.head);
  const ended = new Promise<void>((r) => h.socket.on('end', r));
  h.socket.on('data', (b: Buffer) => d.push(b));
  h.socket.write('ping\n');
  await new Promise((r) => setTimeout(r, 50));
  h.socket.end(); // stdin closed: the server answers and closes
  await ended;
  assert.deepEqual(got, [[STDOUT, 'ping\n'], [STDERR, 'bye\n']]);
  await assert.rejects(c.hijack('POST', '/containers/refuse/attach'), (e: Error) => e instanceof DaemonError && e.status === 409 && e.message === 'container is not running');
});
