// The attach stream under a lot of output: conmon forwards what it reads from the container in
// packets of up to 8 KiB (plus a stream byte); the client's receive buffer must take them whole.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { makeEnv, CRUN } from './helpers';

test('attach: 8 MB of output in full packets arrives whole and in order', async (t) => {
  const env = makeEnv(t);
  // seq's lines make the content position-dependent: a cut or reordered packet changes the hash.
  const b = env.bundle({ args: ['sh', '-c', 'seq 1 1100000; echo end >&2'] });
  await env.runtime.create(b.id, b.bundleDir, { runtimePath: CRUN, tty: false, openStdin: false, logPath: b.logPath, cgroupsPath: b.cgroupsPath });
  const s = await env.runtime.attach(b.id);
  t.after(() => s.close());
  const hash = createHash('sha256');
  let bytes = 0;
  let err = '';
  s.on('stdout', (d) => {
    hash.update(d);
    bytes += d.length;
  });
  s.on('stderr', (d) => (err += d.toString()));
  const ended = new Promise<void>((r) => s.once('end', () => r()));
  const exited = env.runtime.onExit(b.id);
  await env.runtime.start(b.id);
  assert.equal((await exited).exitCode, 0);
  await Promise.race([ended, new Promise((_r, rej) => setTimeout(() => rej(new Error('attach did not end')), 20_000))]);
  let want = '';
  for (let i = 1; i <= 1_100_000; i++) want += `${i}\n`;
  assert.equal(bytes, Buffer.byteLength(want));
  assert.equal(hash.digest('hex'), createHash('sha256').update(want).digest('hex'));
  assert.equal(err, 'end\n');
});
