// berthd's --bip and --bridge flags set the default bridge network, as dockerd's do.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';

let d: TestDaemon | undefined;
after(async () => { await destroyDaemon(d); });

test('--bip and --bridge configure the default bridge network', async () => {
  const bridge = `bf${randomBytes(3).toString('hex')}`;
  const third = 100 + (randomBytes(1)[0] % 100);
  d = await startDaemon({ name: 'net-flags', args: ['--bip', `10.233.${third}.1/24`, '--bridge', bridge] });
  const r = await docker(d, ['network', 'inspect', 'bridge', '--format', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{index .Options "com.docker.network.bridge.name"}}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `10.233.${third}.0/24 10.233.${third}.1 ${bridge}`);
});
