// `berth image seed debian`: debootstrap from the apt mirror, cached tar, import, tags, and a
// container from the result. debootstrap takes minutes, so this runs only when asked:
// BERTH_TEST_SEED_DEBIAN=1 (the tar is cached under the test's own XDG_CACHE_HOME).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { destroyDaemon, run, startDaemon, BERTH, type TestDaemon } from '../helpers/daemon';

const enabled = process.env.BERTH_TEST_SEED_DEBIAN === '1';
let d: TestDaemon | undefined;
before(async () => { if (enabled) d = await startDaemon({ name: 'cli-seed-debian' }); });
after(async () => { await destroyDaemon(d); });

test('seed debian builds debian:bookworm and debian:latest, then reuses its cache', { skip: !enabled && 'set BERTH_TEST_SEED_DEBIAN=1 (runs debootstrap, minutes)', timeout: 900_000 }, async () => {
  const env = { BERTH_HOST: d!.host, XDG_CACHE_HOME: path.join(d!.dir, 'cache') };
  const first = await run(process.execPath, [BERTH, 'image', 'seed', 'debian'], { env, timeoutMs: 850_000 });
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /Running debootstrap --variant=minbase bookworm from http/);
  assert.match(first.stdout, /Tagged debian:bookworm\nTagged debian:latest\n$/);
  assert.ok(fs.statSync(path.join(d!.dir, 'cache', 'berth', 'seed', 'debian-bookworm.tar')).size > 50_000_000);
  const again = await run(process.execPath, [BERTH, 'image', 'seed', 'debian'], { env, timeoutMs: 120_000 });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^Using cached /);
  const ids = await run(process.execPath, [BERTH, 'images', '--format', '{{.Repository}}:{{.Tag}}', 'debian'], { env });
  assert.deepEqual(ids.stdout.trim().split('\n').sort(), ['debian:bookworm', 'debian:latest']);
  const cmd = await run(process.execPath, [BERTH, 'inspect', '-f', '{{json .Config.Cmd}}', 'debian:latest'], { env });
  assert.equal(cmd.stdout, '["bash"]\n');
  const inside = await run(process.execPath, [BERTH, 'run', '--rm', 'debian', 'bash', '-c', 'cat /etc/debian_version; stat -c %a /tmp'], { env, timeoutMs: 60_000 });
  assert.equal(inside.code, 0, inside.stderr);
  assert.match(inside.stdout, /^12\.\d+\n1777\n$/);
});
