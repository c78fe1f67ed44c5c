// GET /events against a real berthd, read with the real docker CLI: image events from import,
// tag, untag, delete, save and load; since/until windows; filters; live streaming.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs } from '../images/fixtures';

let d: TestDaemon;
let t0 = '';
let t1 = '';
let importedId = '';

interface CliEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: string;
  time: number;
  timeNano: number;
  status?: string;
  id?: string;
}

/** "seconds.nanoseconds", as the docker CLI sends since/until. */
function nowStamp(): string {
  const ms = Date.now();
  return `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}000000`;
}

async function cliEvents(args: string[]): Promise<CliEvent[]> {
  const r = await docker(d, ['events', '--format', '{{json .}}', ...args], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as CliEvent);
}

before(async () => {
  d = await startDaemon({ name: 'events' });
  const rootfs = path.join(d.dir, 'rootfs.tar');
  fs.writeFileSync(rootfs, await busyboxRootfs());
  t0 = nowStamp();
  await new Promise((r) => setTimeout(r, 20));
  const steps: string[][] = [
    ['import', '-c', 'LABEL team=core', rootfs, 'evt:one'],
    ['tag', 'evt:one', 'evt:two'],
    ['rmi', 'evt:two'],
    ['save', '-o', path.join(d.dir, 'saved.tar'), 'evt:one'],
    ['rmi', 'evt:one'],
    ['load', '-i', path.join(d.dir, 'saved.tar')],
  ];
  for (const s of steps) {
    const r = await docker(d, s);
    assert.equal(r.code, 0, `docker ${s.join(' ')}: ${r.stderr}`);
    if (s[0] === 'import') importedId = r.stdout.trim();
  }
  await new Promise((r) => setTimeout(r, 20));
  t1 = nowStamp();
});

after(async () => {
  await destroyDaemon(d);
});

test('a past window returns the buffered image events in order, in docker shape, and ends', async () => {
  const evs = await cliEvents(['--since', t0, '--until', t1]);
  assert.deepEqual(evs.map((e) => `${e.Action} ${e.Actor.Attributes.name}`), [
    'tag evt:one',
    `import ${importedId}`,
    'tag evt:two',
    'untag evt:two',
    `save ${importedId}`,
    'untag evt:one',
    `delete ${importedId}`,
    'tag evt:one',
    `load ${importedId}`,
  ]);
  for (const e of evs) {
    assert.equal(e.Type, 'image');
    assert.equal(e.scope, 'local');
    assert.equal(e.Actor.ID, importedId);
    assert.equal(e.status, e.Action, 'legacy status field');
    assert.equal(e.id, importedId, 'legacy id field');
    assert.equal(e.time, Math.floor(e.timeNano / 1e9));
  }
  // Times are increasing and inside the window.
  for (let i = 1; i < evs.length; i++) assert.ok(evs[i].timeNano >= evs[i - 1].timeNano);
  assert.ok(evs[0].time >= Math.floor(Number(t0)) && evs[evs.length - 1].time <= Math.ceil(Number(t1)));
});

test('since/until bound the window', async () => {
  const all = await cliEvents(['--since', t0, '--until', t1]);
  // A window that starts right after the 4th event holds the rest.
  const mid = all[3].timeNano;
  const since = `${Math.floor(mid / 1e9)}.${String(mid % 1e9).padStart(9, '0')}`;
  const rest = await cliEvents(['--since', since, '--until', t1]);
  assert.ok(rest.length >= all.length - 4 && rest.length <= all.length - 2, `got ${rest.length} of ${all.length}`);
  assert.equal(rest[rest.length - 1].Action, 'load');
  // A window before anything happened is empty.
  const empty = await cliEvents(['--since', String(Number(t0.split('.')[0]) - 100), '--until', String(Number(t0.split('.')[0]) - 50)]);
  assert.deepEqual(empty, []);
});

test('filters: event, image (with and without tag), type, container, label', async () => {
  const w = ['--since', t0, '--until', t1];
  assert.deepEqual((await cliEvents([...w, '--filter', 'event=untag'])).map((e) => e.Actor.Attributes.name), ['evt:two', 'evt:one']);
  assert.deepEqual((await cliEvents([...w, '--filter', 'event=tag', '--filter', 'event=delete'])).map((e) => e.Action), ['tag', 'tag', 'delete', 'tag']);
  assert.deepEqual((await cliEvents([...w, '--filter', 'image=evt:two'])).map((e) => e.Action), ['tag', 'untag']);
  // "evt" without a tag matches every event named evt:<tag>.
  assert.deepEqual((await cliEvents([...w, '--filter', 'image=evt'])).map((e) => e.Action), ['tag', 'tag', 'untag', 'untag', 'tag']);
  assert.equal((await cliEvents([...w, '--filter', `image=${importedId}`])).length, 9);
  assert.equal((await cliEvents([...w, '--filter', 'type=image', '--filter', 'event=save'])).length, 1);
  assert.deepEqual(await cliEvents([...w, '--filter', 'type=container']), []);
  assert.deepEqual(await cliEvents([...w, '--filter', 'container=evt']), []);
  assert.deepEqual(await cliEvents([...w, '--filter', 'label=team=core']), []);
});

test('bad filters and windows are 400s', async () => {
  let r = await api(d.socket, 'GET', `/events?filters=${encodeURIComponent('{"bogus":["x"]}')}&until=1`);
  assert.equal(r.status, 400);
  assert.match(r.json<{ message: string }>().message, /invalid filter 'bogus'/);
  r = await api(d.socket, 'GET', '/events?since=200&until=100');
  assert.equal(r.status, 400);
  assert.match(r.json<{ message: string }>().message, /cannot be after `until` time/);
  r = await api(d.socket, 'GET', '/events?since=yesterday');
  assert.equal(r.status, 400);
  const cli = await docker(d, ['events', '--filter', 'type=nonsense', '--until', '1']);
  assert.notEqual(cli.code, 0);
});

test('RFC 3339 since/until are accepted by the API', async () => {
  const since = new Date(Number(t0.split('.')[0]) * 1000).toISOString();
  const until = new Date((Number(t1.split('.')[0]) + 1) * 1000).toISOString();
  const r = await api(d.socket, 'GET', `/events?since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`);
  assert.equal(r.status, 200);
  const lines = r.body.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as CliEvent);
  assert.ok(lines.length >= 9);
  // timeNano is written as an exact integer, not a rounded float.
  assert.match(r.body.toString(), /"timeNano":\d{19}\}/);
});

test('live stream: docker events shows a new event as it happens; --until in the future ends it', async (t) => {
  const child = spawn('docker', ['events', '--format', '{{json .}}', '--filter', 'type=image'], {
    env: { ...process.env, DOCKER_HOST: d.host, DOCKER_CONFIG: path.join(d.dir, 'docker-config') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  });
  let out = '';
  const got = new Promise<CliEvent>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no live event; got ${JSON.stringify(out)}`)), 15_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.includes('"live:x"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as CliEvent);
      }
    });
  });
  // Wait until the CLI is subscribed (the daemon counts it as a listener).
  for (let i = 0; i < 100; i++) {
    const info = (await api(d.socket, 'GET', '/info')).json<{ NEventsListener: number }>();
    if (info.NEventsListener > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const r = await docker(d, ['tag', 'evt:one', 'live:x']);
  assert.equal(r.code, 0, r.stderr);
  const ev = await got;
  assert.equal(ev.Action, 'tag');
  assert.equal(ev.Actor.ID, importedId);
  // Nothing older than the subscription was replayed (no since).
  assert.ok(!out.includes('"evt:two"'));
  process.kill(child.pid!, 'SIGTERM');

  // --until 2 s ahead: the stream carries the live event and then the CLI exits by itself.
  const started = Date.now();
  const until = String(Math.floor(Date.now() / 1000) + 2);
  const streaming = docker(d, ['events', '--format', '{{json .}}', '--until', until], { timeoutMs: 15_000 });
  for (let i = 0; i < 100; i++) {
    if ((await api(d.socket, 'GET', '/info')).json<{ NEventsListener: number }>().NEventsListener > 0) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal((await docker(d, ['tag', 'evt:one', 'live:y'])).code, 0);
  const res = await streaming;
  assert.equal(res.code, 0, res.stderr);
  assert.ok(Date.now() - started < 6000);
  const names = res.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as CliEvent).Actor.Attributes.name);
  // With until and no since, dockerd replays the whole buffer first, then streams.
  assert.equal(names[names.length - 1], 'live:y');
  assert.ok(names.includes('live:x') && names.includes('evt:two'));
});
