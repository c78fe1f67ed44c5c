// An idle berthd keeps only what an idle daemon uses in memory: the code for image import and
// load, docker cp, logs, stats, builds, registry access, TLS and worker threads is loaded on
// first use (src/common/lazy.ts). A static import added in the wrong place would quietly bring it
// back at start-up and cost idle RSS (a bench/ target); this test names what must stay unloaded,
// then uses each piece once to show that loading it on demand works.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api, destroyDaemon, startDaemon, type TestDaemon } from '../helpers/daemon';
import { makeTar } from '../images/fixtures';

interface Loaded {
  /** Files in require.cache. */
  files: string[];
  /** Node's own modules and bindings, as process.moduleLoadList names them. */
  builtins: string[];
}

let d: TestDaemon;
let dumpFile: string;
let preload: string;

before(async () => {
  const dir = fs.mkdtempSync('/tmp/berth-idle-footprint-');
  dumpFile = path.join(dir, 'loaded.json');
  preload = path.join(dir, 'dump-modules.js');
  // Loaded into berthd with --require: on SIGUSR2 it writes what the process has loaded.
  fs.writeFileSync(preload, [
    "process.on('SIGUSR2', () => {",
    "  const out = JSON.stringify({ files: Object.keys(require.cache), builtins: process.moduleLoadList });",
    `  require('fs').writeFileSync(${JSON.stringify(dumpFile + '.tmp')}, out);`,
    `  require('fs').renameSync(${JSON.stringify(dumpFile + '.tmp')}, ${JSON.stringify(dumpFile)});`,
    '});',
  ].join('\n'));
  d = await startDaemon({ name: 'idle', nodeArgs: ['--require', preload] });
});

after(async () => {
  await destroyDaemon(d);
  fs.rmSync(path.dirname(dumpFile), { recursive: true, force: true });
});

async function loaded(): Promise<Loaded> {
  fs.rmSync(dumpFile, { force: true });
  d.proc.kill('SIGUSR2');
  for (let i = 0; i < 100 && !fs.existsSync(dumpFile); i++) await new Promise((r) => setTimeout(r, 50));
  return JSON.parse(fs.readFileSync(dumpFile, 'utf8')) as Loaded;
}

/** What an idle daemon must not have loaded: [label, test on a require.cache file or builtin]. */
const ON_DEMAND: [string, (l: Loaded) => boolean][] = [
  ['node:https / node:tls', (l) => l.builtins.includes('NativeModule tls') || l.builtins.includes('NativeModule https')],
  ['node:zlib', (l) => l.builtins.includes('NativeModule zlib')],
  ['node:worker_threads', (l) => l.builtins.includes('NativeModule worker_threads')],
  ['tar-stream', (l) => l.files.some((f) => f.includes('/node_modules/tar-stream/'))],
  ['node-unix-socket', (l) => l.files.some((f) => f.includes('/node_modules/node-unix-socket/'))],
  ['the builder', (l) => l.files.some((f) => f.includes('/dist/src/build/'))],
  ['the registry client', (l) => l.files.some((f) => f.includes('/dist/src/distribution/'))],
  ['layer extraction', (l) => l.files.some((f) => /\/dist\/src\/archive\/(apply|tee|extract-thread)\.js$/.test(f))],
  ['docker cp', (l) => l.files.some((f) => /\/dist\/src\/archive\/copy-(in|out|stream)\.js$/.test(f))],
  ['the log reader', (l) => l.files.some((f) => f.endsWith('/dist/src/logs/reader.js'))],
  ['the stats stream', (l) => l.files.some((f) => f.endsWith('/dist/src/stats/stream.js'))],
];

test('an idle daemon has not loaded the code that only some requests need', async () => {
  const l = await loaded();
  // The dump works: the daemon's own core is there.
  assert.ok(l.files.some((f) => f.endsWith('/dist/src/daemon/daemon.js')), 'the module dump lists the daemon itself');
  const present = ON_DEMAND.filter(([, isLoaded]) => isLoaded(l)).map(([label]) => label);
  assert.deepEqual(present, [], `loaded at start-up: ${present.join(', ')}`);
});

test('import, save and login load their code on first use, and work', async () => {
  const imp = await api(d.socket, 'POST', '/images/create?fromSrc=-&repo=idle/imported&tag=v1', await makeTar([{ name: 'etc/hostname', data: 'idle\n' }]), { 'Content-Type': 'application/x-tar' });
  assert.equal(imp.status, 200, imp.body.toString());
  assert.doesNotMatch(imp.body.toString(), /"error/);
  const saved = await api(d.socket, 'GET', '/images/idle/imported:v1/get');
  assert.equal(saved.status, 200);
  assert.ok(saved.body.includes(Buffer.from('manifest.json')), 'the saved archive has a manifest.json');
  const login = await api(d.socket, 'POST', '/auth', '{not json', { 'Content-Type': 'application/json' });
  assert.equal(login.status, 400);
  assert.match(login.json<{ message: string }>().message, /invalid JSON/);

  const l = await loaded();
  for (const label of ['layer extraction', 'tar-stream', 'the registry client', 'node:worker_threads']) {
    assert.ok(ON_DEMAND.find(([name]) => name === label)![1](l), `${label} is loaded once used`);
  }
});
