// dockerode (the npm client) driving berthd unchanged: image listing, the create/start/wait/logs
// cycle with demultiplexed streams, streaming exec, a build from a tar context, a bounded event
// read, networks and volumes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, type Readable } from 'node:stream';
import Docker from 'dockerode';
import * as tar from 'tar-stream';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';

let env: CtrEnv;
let client: Docker;

before(async () => {
  env = await setupDaemon('compat-node');
  client = new Docker({ socketPath: env.d.socket });
});

after(() => env?.cleanup());

/** Splits a multiplexed stream with dockerode's own demuxer and collects both halves. */
function demux(stream: NodeJS.ReadableStream): Promise<{ stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  client.modem.demuxStream(stream, out, err);
  return new Promise((resolve, reject) => {
    stream.on('end', () => resolve({ stdout, stderr }));
    stream.on('close', () => resolve({ stdout, stderr }));
    stream.on('error', reject);
  });
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    stream.on('data', (c: Buffer) => (s += c.toString()));
    stream.on('end', () => resolve(s));
    stream.on('error', reject);
  });
}

test('listImages shows busybox', async () => {
  const images = await client.listImages();
  const tags = images.flatMap((i) => i.RepoTags ?? []);
  assert.ok(tags.includes('busybox:latest'), `tags: ${tags.join(', ')}`);
  assert.match(images[0].Id, /^sha256:[0-9a-f]{64}$/);
});

test('createContainer, start, wait, logs demultiplexed', async () => {
  const c = await client.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 7'], name: 'compat-node-wait' });
  try {
    await c.start();
    const waited = (await c.wait()) as { StatusCode: number };
    assert.equal(waited.StatusCode, 7);
    const logs = await c.logs({ stdout: true, stderr: true, follow: true });
    const { stdout, stderr } = await demux(logs);
    assert.equal(stdout, 'to-out\n');
    assert.equal(stderr, 'to-err\n');
    const info = await c.inspect();
    assert.equal(info.State.ExitCode, 7);
  } finally {
    await c.remove({ force: true });
  }
});

test('exec with a hijacked stream: output and exit code', async () => {
  const c = await client.createContainer({ Image: 'busybox', Cmd: ['sleep', '300'], name: 'compat-node-exec' });
  try {
    await c.start();
    const exec = await c.exec({ Cmd: ['sh', '-c', 'echo exec-out; echo exec-err >&2; exit 5'], AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const { stdout, stderr } = await demux(stream);
    assert.equal(stdout, 'exec-out\n');
    assert.equal(stderr, 'exec-err\n');
    const info = await exec.inspect();
    assert.equal(info.Running, false);
    assert.equal(info.ExitCode, 5);
  } finally {
    await c.remove({ force: true });
  }
});

test('buildImage from a tar context, then run it', async () => {
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile' }, 'FROM busybox\nCOPY msg.txt /msg.txt\nRUN echo built >> /msg.txt\nCMD ["cat", "/msg.txt"]\n');
  pack.entry({ name: 'msg.txt' }, 'from-tar\n');
  pack.finalize();
  const stream = await client.buildImage(pack as unknown as Readable, { t: 'compat/node-build:latest' });
  const progress = await new Promise<{ stream?: string; error?: string; aux?: { ID: string } }[]>((resolve, reject) => {
    client.modem.followProgress(stream, (err: Error | null, res: { stream?: string; error?: string; aux?: { ID: string } }[]) => (err ? reject(err) : resolve(res)));
  });
  const errors = progress.filter((p) => p.error);
  assert.deepEqual(errors, []);
  assert.ok(progress.some((p) => p.aux?.ID?.startsWith('sha256:') || /Successfully built/.test(p.stream ?? '')), JSON.stringify(progress));
  const img = await client.getImage('compat/node-build:latest').inspect();
  assert.deepEqual(img.Config.Cmd, ['cat', '/msg.txt']);

  const c = await client.createContainer({ Image: 'compat/node-build:latest' });
  try {
    await c.start();
    await c.wait();
    const { stdout } = await demux(await c.logs({ stdout: true, stderr: true, follow: true }));
    assert.equal(stdout, 'from-tar\nbuilt\n');
  } finally {
    await c.remove({ force: true });
  }
});

test('getEvents with since/until ends by itself and holds the lifecycle', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const c = await client.createContainer({ Image: 'busybox', Cmd: ['true'], name: 'compat-node-events' });
  await c.start();
  await c.wait();
  await c.remove();
  const until = Math.floor(Date.now() / 1000) + 1;
  const started = Date.now();
  const stream = await client.getEvents({ since, until, filters: { type: ['container'], container: ['compat-node-events'] } });
  const text = await readAll(stream);
  assert.ok(Date.now() - started < 10_000, 'the stream ended at until');
  const actions = text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { Action: string }).Action);
  for (const a of ['create', 'start', 'die', 'destroy']) assert.ok(actions.includes(a), `saw ${a} in ${actions.join(', ')}`);
});

test('listNetworks, createVolume, listVolumes, remove', async () => {
  const nets = await client.listNetworks();
  const names = nets.map((n) => n.Name);
  for (const n of ['bridge', 'host', 'none']) assert.ok(names.includes(n), `networks: ${names.join(', ')}`);

  // dockerode resolves createVolume to a Volume handle named from the response's Name.
  const handle = (await client.createVolume({ Name: 'compat-node-vol', Labels: { from: 'dockerode' } })) as unknown as Docker.Volume;
  assert.equal(handle.name, 'compat-node-vol');
  const created = await handle.inspect();
  assert.equal(created.Driver, 'local');
  assert.deepEqual(created.Labels, { from: 'dockerode' });
  const listed = await client.listVolumes();
  assert.ok(listed.Volumes.some((v) => v.Name === 'compat-node-vol'));
  await client.getVolume('compat-node-vol').remove();
  const after = await client.listVolumes();
  assert.ok(!(after.Volumes ?? []).some((v) => v.Name === 'compat-node-vol'));
});

test('attach with hijack and stdin: the request options never reach the container', async () => {
  // dockerode sends its attach options as a JSON body before hijacking; dockerd drops that body.
  const c = await client.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'read x; echo "got [$x]"'], OpenStdin: true, StdinOnce: true });
  try {
    const stream = (await c.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
    const out = demux(stream);
    await c.start();
    stream.write('abc\n');
    const waited = (await c.wait()) as { StatusCode: number };
    assert.equal(waited.StatusCode, 0);
    stream.end();
    assert.equal((await out).stdout, 'got [abc]\n');
  } finally {
    await c.remove({ force: true });
  }
});

test('logs follow ends only once the exit is recorded: remove right after does not conflict', async () => {
  for (let i = 0; i < 3; i++) {
    const c = await client.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'echo 1; sleep 0.2; echo 2'] });
    await c.start();
    const { stdout } = await demux(await c.logs({ follow: true, stdout: true, stderr: true }));
    assert.equal(stdout, '1\n2\n');
    // `docker logs -f x && docker rm x`: with dockerd the container is already exited here.
    await c.remove();
  }
});

test('stats stream, getArchive/putArchive round trip', async () => {
  const c = await client.createContainer({ Image: 'busybox', Cmd: ['sleep', '60'] });
  try {
    await c.start();
    const stats = (await c.stats({ stream: true })) as unknown as Readable;
    const samples = await new Promise<{ read: string; precpu_stats: { system_cpu_usage?: number }; memory_stats: { usage?: number } }[]>((resolve, reject) => {
      const got: { read: string; precpu_stats: { system_cpu_usage?: number }; memory_stats: { usage?: number } }[] = [];
      let buf = '';
      stats.on('error', reject);
      stats.on('data', (b: Buffer) => {
        buf += b.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          got.push(JSON.parse(buf.slice(0, i)) as (typeof got)[number]);
          buf = buf.slice(i + 1);
        }
        if (got.length >= 2) {
          stats.destroy();
          resolve(got);
        }
      });
    });
    assert.ok((samples[1].precpu_stats.system_cpu_usage ?? 0) > 0, 'the second sample carries the first as precpu');
    assert.ok((samples[1].memory_stats.usage ?? 0) > 0);

    const pack = tar.pack();
    pack.entry({ name: 'dir/file.txt' }, 'payload');
    pack.finalize();
    await c.putArchive(pack as unknown as NodeJS.ReadableStream, { path: '/tmp' });
    const archive = (await c.getArchive({ path: '/tmp/dir' })) as unknown as Readable;
    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (h, s, next) => {
      names.push(h.name);
      s.on('end', next);
      s.resume();
    });
    await new Promise((resolve, reject) => {
      extract.on('finish', () => resolve(undefined));
      extract.on('error', reject);
      archive.pipe(extract);
    });
    assert.deepEqual(names.sort(), ['dir/', 'dir/file.txt']);
    await assert.rejects(c.getArchive({ path: '/nope' }), (err: { statusCode?: number }) => err.statusCode === 404);
  } finally {
    await c.remove({ force: true });
  }
});

test('exec with a TTY resized right after start (dockerd waits for the exec to be ready)', async () => {
  const c = await client.createContainer({ Image: 'busybox', Cmd: ['sleep', '30'] });
  try {
    await c.start();
    const e = await c.exec({ Cmd: ['sh', '-c', 'sleep 0.5; stty size'], AttachStdout: true, Tty: true });
    const s = (await e.start({ hijack: true, stdin: false, Tty: true })) as NodeJS.ReadableStream;
    await e.resize({ h: 33, w: 101 });
    const out = await readAll(s);
    assert.equal(out.trim(), '33 101');
    assert.equal((await e.inspect()).ExitCode, 0);
    const pruned = (await client.pruneNetworks()) as { NetworksDeleted: unknown };
    assert.equal(pruned.NetworksDeleted, null, 'nothing pruned is null, as dockerd');
  } finally {
    await c.remove({ force: true });
  }
});
