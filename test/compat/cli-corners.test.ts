// The docker CLI 28 on the corners users' scripts hit: ps filters beyond name/status, ps -s sizes,
// legacy --link, and `logs -f x && rm x`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';

let env: CtrEnv;

before(async () => {
  env = await setupDaemon('compat-cli');
});

after(() => env?.cleanup());

test('ps --filter volume, network, publish, expose (alone and with other filters)', async () => {
  await env.ok(['network', 'create', 'cli-filter-net']);
  await env.ok(['run', '-d', '--name', 'cf-a', '-v', 'cf-vol:/data', '-p', '127.0.0.1::80', '--expose', '90', '--network', 'cli-filter-net', 'busybox', 'sleep', '60']);
  await env.ok(['run', '-d', '--name', 'cf-b', 'busybox', 'sleep', '60']);
  await env.ok(['create', '--name', 'cf-c', '-v', '/tmp:/host-tmp', 'busybox', 'true']);
  const port = (await env.ok(['port', 'cf-a', '80'])).trim().split(':').pop()!;
  const ps = async (...filters: string[]): Promise<string[]> =>
    (await env.ok(['ps', '-a', '--format', '{{.Names}}', ...filters.flatMap((f) => ['--filter', f])])).split('\n').filter(Boolean).sort();
  assert.deepEqual(await ps('volume=cf-vol'), ['cf-a']);
  assert.deepEqual(await ps('volume=/data'), ['cf-a']);
  assert.deepEqual(await ps('volume=/tmp'), ['cf-c'], 'a bind by its source');
  assert.deepEqual(await ps('volume=/host-tmp'), ['cf-c']);
  assert.deepEqual(await ps('volume=/nowhere'), []);
  assert.deepEqual(await ps('network=cli-filter-net'), ['cf-a']);
  assert.deepEqual(await ps('network=bridge'), ['cf-b', 'cf-c']);
  assert.deepEqual(await ps('network=bridge', 'status=running'), ['cf-b']);
  assert.deepEqual(await ps(`publish=${port}`), ['cf-a']);
  assert.deepEqual(await ps(`publish=${port}/udp`), []);
  assert.deepEqual(await ps('expose=80'), ['cf-a']);
  assert.deepEqual(await ps('expose=85-95/tcp'), ['cf-a'], 'a range holds the exposed 90');
  assert.deepEqual(await ps('expose=80', 'name=cf-b'), []);
  const bad = await env.docker(['ps', '--filter', 'publish=127.0.0.1:80']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /filter for 'publish' should not contain ':': 127\.0\.0\.1:80/);
  await env.ok(['rm', '-f', 'cf-a', 'cf-b', 'cf-c']);
  await env.ok(['network', 'rm', 'cli-filter-net']);
  await env.ok(['volume', 'rm', 'cf-vol']);
});

test('ps -s shows 0B for an untouched container and the bytes written', async () => {
  await env.ok(['run', '-d', '--name', 'sz', 'busybox', 'sleep', '60']);
  assert.match(await env.ok(['ps', '-s', '--filter', 'name=sz', '--format', '{{.Size}}']), /^0B \(virtual [\d.]+[kM]B\)\n$/);
  await env.ok(['exec', 'sz', 'sh', '-c', 'mkdir -p /d1/d2 && printf 0123456789 > /d1/d2/ten']);
  assert.match(await env.ok(['ps', '-s', '--filter', 'name=sz', '--format', '{{.Size}}']), /^10B \(virtual /);
  assert.equal((await env.ok(['inspect', '-s', '-f', '{{.SizeRw}}', 'sz'])).trim(), '10');
  await env.ok(['rm', '-f', 'sz']);
});

test('run --link name:alias resolves the alias, the name and the short ID', async () => {
  const id = (await env.ok(['run', '-d', '--name', 'linked', 'busybox', 'sleep', '60'])).trim();
  const out = await env.ok(['run', '--rm', '--link', 'linked:db', 'busybox', 'sh', '-c', `for h in db linked ${id.slice(0, 12)}; do ping -c1 -W2 $h >/dev/null && echo ok-$h; done`]);
  assert.equal(out, `ok-db\nok-linked\nok-${id.slice(0, 12)}\n`);
  await env.ok(['rm', '-f', 'linked']);
});

test('logs -f returns once the container has exited: rm right after succeeds', async () => {
  for (let i = 0; i < 3; i++) {
    const id = (await env.ok(['run', '-d', 'busybox', 'sh', '-c', 'echo a; sleep 0.3; echo b'])).trim();
    assert.equal(await env.ok(['logs', '-f', id]), 'a\nb\n');
    await env.ok(['rm', id]);
  }
});

test('--add-host name:host-gateway maps to the default bridge gateway', async () => {
  const gw = (await env.ok(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', 'bridge'])).trim();
  assert.match(gw, /^10\.214\.\d+\.1$/);
  const out = await env.ok(['run', '--rm', '--add-host', 'host.docker.internal:host-gateway', 'busybox', 'grep', 'host.docker.internal', '/etc/hosts']);
  assert.equal(out, `${gw}\thost.docker.internal\n`);
});

test('events: network create, connect, disconnect, destroy, prune; one volume unmount per run', async () => {
  const since = String(Math.floor(Date.now() / 1000) - 1);
  await env.ok(['network', 'create', 'ev-net']);
  await env.ok(['run', '--rm', '--network', 'ev-net', '-v', 'ev-vol:/v', 'busybox', 'true']);
  const id = (await env.ok(['run', '-d', 'busybox', 'sleep', '60'])).trim();
  await env.ok(['network', 'connect', 'ev-net', id]);
  await env.ok(['network', 'disconnect', 'ev-net', id]);
  await env.ok(['rm', '-f', id]);
  await env.ok(['network', 'rm', 'ev-net']);
  await env.ok(['volume', 'rm', 'ev-vol']);
  await env.ok(['network', 'create', 'ev-pruned']);
  await env.ok(['network', 'prune', '-f']);
  const until = String(Math.floor(Date.now() / 1000) + 1);
  const lines = (await env.ok(['events', '--since', since, '--until', until, '--filter', 'type=network', '--filter', 'type=volume', '--format', '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}']))
    .split('\n').filter(Boolean).map((l) => l.trim());
  const net = lines.filter((l) => l.startsWith('network ') && !l.endsWith(' bridge'));
  assert.deepEqual(net, [
    'network create ev-net', 'network connect ev-net', 'network disconnect ev-net', 'network connect ev-net', 'network disconnect ev-net',
    'network destroy ev-net', 'network create ev-pruned', 'network destroy ev-pruned', 'network prune <no value>',
  ]);
  assert.equal(lines.filter((l) => l.startsWith('volume unmount')).length, 1, lines.join('\n'));
  assert.equal(lines.filter((l) => l.startsWith('volume mount')).length, 1);
});

test('stdin without a TTY is copied as is: ctrl-p ctrl-q bytes do not detach run -i or exec -i', async () => {
  // Binary input (an archive, a dump) holds any byte pair; dockerd honours detach keys with a TTY only.
  const payload = Buffer.concat([Buffer.from('start'), Buffer.from([0x10, 0x11]), Buffer.alloc(300_000, 7), Buffer.from([0x10, 0x11]), Buffer.from('end')]);
  const { createHash } = await import('node:crypto');
  const want = createHash('md5').update(payload).digest('hex');
  const r = await env.docker(['run', '--rm', '-i', 'busybox', 'md5sum'], { input: payload });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${want}  -\n`);
  await env.ok(['run', '-d', '--name', 'stdin-x', 'busybox', 'sleep', '60']);
  const e = await env.docker(['exec', '-i', 'stdin-x', 'md5sum'], { input: payload });
  assert.equal(e.stdout, `${want}  -\n`);
  await env.ok(['rm', '-f', 'stdin-x']);
});
