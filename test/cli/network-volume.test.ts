// berth's network and volume commands against a real berthd, with the docker CLI on the same
// daemon as the reference for tables, messages and exit codes.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { berth, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { consolidateIpam, naturalLess } from '../../src/cli/commands/network';

let d: TestDaemon;
before(async () => {
  d = await startDaemon({ name: 'cli-netvol' });
});
after(async () => {
  await destroyDaemon(d);
});

async function ok(args: string[], input?: string): Promise<string> {
  const r = await berth(d, args, { input });
  assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** berth and docker give the same stdout, stderr and exit code. */
async function same(args: string[], input?: string): Promise<string> {
  const b = await berth(d, args, { input });
  const k = await docker(d, args, { input });
  assert.equal(b.stdout, k.stdout, `stdout of ${args.join(' ')}`);
  assert.equal(b.stderr.replace(/berth/g, 'docker'), k.stderr, `stderr of ${args.join(' ')}`);
  assert.equal(b.code, k.code, `exit code of ${args.join(' ')}`);
  return b.stdout;
}

test('ipam flags pair with their subnets; names sort naturally', () => {
  assert.deepEqual(consolidateIpam(['10.1.0.0/16', '10.2.0.0/16'], ['10.2.1.0/24'], ['10.1.0.254'], {}), [
    { Subnet: '10.1.0.0/16', Gateway: '10.1.0.254' },
    { Subnet: '10.2.0.0/16', IPRange: '10.2.1.0/24' },
  ]);
  assert.throws(() => consolidateIpam(['10.1.0.0/16'], [], ['10.9.0.1'], {}), /no matching subnet for gateway 10.9.0.1/);
  assert.throws(() => consolidateIpam([], ['10.1.0.0/24'], [], {}), /corresponding subnet/);
  assert.deepEqual(['n10', 'n9', 'a', 'n1'].sort(naturalLess), ['a', 'n1', 'n9', 'n10']);
});

test('network create / ls / inspect / rm / prune as docker prints them', async () => {
  const id = (await ok(['network', 'create', '--subnet', '10.77.0.0/16', '--gateway', '10.77.0.1', '--ip-range', '10.77.5.0/24', '--label', 'team=a', '-o', 'com.docker.network.bridge.name=bt77', '--internal', 'net1'])).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  await ok(['network', 'create', '--attachable', 'net2']);
  const ls = await same(['network', 'ls']);
  assert.match(ls, /^NETWORK ID +NAME +DRIVER +SCOPE\n/);
  assert.match(ls, new RegExp(`\\n${id.slice(0, 12)}   net1 +bridge +local\\n`));
  await same(['network', 'ls', '-q']);
  await same(['network', 'ls', '--no-trunc']);
  await same(['network', 'ls', '--filter', 'label=team=a', '--format', '{{.Name}} {{.Driver}} {{.Internal}} {{.Labels}} {{.Label "team"}}']);
  await same(['network', 'ls', '--format', 'json']);
  await same(['network', 'inspect', 'net1']);
  await same(['network', 'inspect', '-f', '{{json .IPAM.Config}} {{.Internal}} {{.Attachable}}', 'net1', 'net2']);
  assert.equal((await ok(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.IPRange}}{{end}}', 'net1'])).trim(), '10.77.5.0/24');
  await same(['network', 'inspect', 'nosuchnet']);
  await same(['network', 'rm', 'nosuchnet']);
  assert.equal(await ok(['network', 'rm', '-f', 'nosuchnet']), '');
  const bad = await berth(d, ['network', 'create', '--subnet', '10.78.0.0/16', '--gateway', '10.9.0.1', 'bad']);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'no matching subnet for gateway 10.9.0.1\n');
  assert.equal(await ok(['network', 'rm', 'net2']), 'net2\n');
  assert.equal(await ok(['network', 'prune', '-f']), 'Deleted Networks:\nnet1\n\n');
  assert.equal(await ok(['network', 'prune', '-f']), '');
  // Declining the prompt removes nothing.
  await ok(['network', 'create', 'net3']);
  assert.match(await ok(['network', 'prune'], 'n\n'), /WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue\? \[y\/N\] $/);
  assert.match(await ok(['network', 'ls', '-q', '-f', 'name=net3']), /^[0-9a-f]{12}\n$/);
  await ok(['network', 'rm', 'net3']);
});

test('volume create / ls / inspect / rm / prune as docker prints them', async () => {
  assert.equal(await ok(['volume', 'create', '--label', 'k=v', 'vol1']), 'vol1\n');
  assert.equal(await ok(['volume', 'create', '-d', 'local', '-o', 'type=tmpfs', '-o', 'device=tmpfs', '-o', 'o=size=1m', 'vol2']), 'vol2\n');
  const anon = (await ok(['volume', 'create'])).trim();
  assert.match(anon, /^[0-9a-f]{64}$/);
  const ls = await same(['volume', 'ls']);
  assert.match(ls, /^DRIVER +VOLUME NAME\n/);
  assert.match(ls, /\nlocal +vol1\nlocal +vol2\n$/);
  await same(['volume', 'ls', '-q']);
  await same(['volume', 'ls', '-f', 'label=k=v', '--format', '{{.Name}}|{{.Driver}}|{{.Scope}}|{{.Labels}}|{{.Label "k"}}|{{.Mountpoint}}']);
  await same(['volume', 'ls', '--format', 'json']);
  await same(['volume', 'inspect', 'vol1', 'vol2']);
  await same(['volume', 'inspect', '-f', '{{.Name}} {{.Options}}', 'vol2']);
  await same(['volume', 'inspect', 'nosuchvol']);
  await same(['volume', 'rm', 'nosuchvol']);
  // Without -a prune takes only anonymous volumes.
  assert.equal(await ok(['volume', 'prune', '-f']), `Deleted Volumes:\n${anon}\n\nTotal reclaimed space: 0B\n`);
  assert.equal(await ok(['volume', 'rm', 'vol2']), 'vol2\n');
  assert.equal(await ok(['volume', 'prune', '-f', '-a']), 'Deleted Volumes:\nvol1\n\nTotal reclaimed space: 0B\n');
  assert.equal(await ok(['volume', 'prune', '-f', '-a']), 'Total reclaimed space: 0B\n');
  assert.equal(await ok(['volume', 'ls', '-q']), '');
});
