// The /networks API through the real docker CLI against a test berthd with its own default bridge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { bridgeName, testSubnet } from './helpers';

async function daemon(t: { after(fn: () => unknown): void }, avoid: Set<number>): Promise<{ d: TestDaemon; bridge: string; subnet: string }> {
  const bridge = bridgeName();
  const s = testSubnet('low', avoid);
  const d = await startDaemon({ name: 'network', config: { bridge, bip: `${s.gateway}/24` } });
  t.after(() => destroyDaemon(d));
  return { d, bridge, subnet: s.subnet };
}

async function ok(d: TestDaemon, args: string[]): Promise<string> {
  const r = await docker(d, args);
  assert.equal(r.code, 0, `docker ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function fails(d: TestDaemon, args: string[], message: RegExp): Promise<void> {
  const r = await docker(d, args);
  assert.notEqual(r.code, 0, `docker ${args.join(' ')} should fail`);
  assert.match(r.stderr, message);
}

test('docker network ls/inspect show the predefined networks; they cannot be removed', async (t) => {
  const { d, bridge, subnet } = await daemon(t, new Set());
  const ls = await ok(d, ['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']);
  assert.deepEqual(ls.trim().split('\n').sort(), ['bridge bridge local', 'host host local', 'none null local']);
  const [br] = JSON.parse(await ok(d, ['network', 'inspect', 'bridge']));
  assert.equal(br.Driver, 'bridge');
  assert.equal(br.Scope, 'local');
  assert.match(br.Id, /^[0-9a-f]{64}$/);
  assert.deepEqual(br.IPAM.Config, [{ Subnet: subnet, Gateway: subnet.replace('.0/24', '.1') }]);
  assert.equal(br.Options['com.docker.network.bridge.name'], bridge);
  assert.equal(br.Options['com.docker.network.bridge.default_bridge'], 'true');
  assert.deepEqual(br.Containers, {});
  const [host] = JSON.parse(await ok(d, ['network', 'inspect', 'host']));
  assert.deepEqual(host.IPAM.Config, []);
  for (const n of ['bridge', 'host', 'none']) await fails(d, ['network', 'rm', n], new RegExp(`${n} is a pre-defined network and cannot be removed`));
  const r = await api(d.socket, 'DELETE', '/networks/bridge');
  assert.equal(r.status, 403);
  await fails(d, ['network', 'inspect', 'nosuchnet'], /network nosuchnet not found/);
  assert.equal((await api(d.socket, 'GET', '/networks/nosuchnet')).status, 404);
  // Nothing was created on the host yet: netavark makes the bridge when a container joins.
  assert.equal(fs.existsSync(`/sys/class/net/${bridge}`), false);
});

test('docker network create with subnet, gateway, ip-range, labels, options; duplicates and bad input refused', async (t) => {
  const avoid = new Set<number>();
  const { d } = await daemon(t, avoid);
  const s1 = testSubnet('low', avoid);
  const brName = bridgeName();
  const id = (await ok(d, ['network', 'create', '--subnet', s1.subnet, '--gateway', `10.213.${s1.octet}.254`, '--ip-range', `10.213.${s1.octet}.128/25`,
    '--label', 'team=net', '--label', 'tier=back', '-o', `com.docker.network.bridge.name=${brName}`, '--internal', '--attachable', 'backend'])).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const [n] = JSON.parse(await ok(d, ['network', 'inspect', 'backend']));
  assert.equal(n.Id, id);
  assert.equal(n.Name, 'backend');
  assert.equal(n.Driver, 'bridge');
  assert.equal(n.Internal, true);
  assert.equal(n.Attachable, true);
  assert.equal(n.EnableIPv6, false);
  assert.deepEqual(n.IPAM.Config, [{ Subnet: s1.subnet, Gateway: `10.213.${s1.octet}.254`, IPRange: `10.213.${s1.octet}.128/25` }]);
  assert.deepEqual(n.Labels, { team: 'net', tier: 'back' });
  assert.deepEqual(n.Options, { 'com.docker.network.bridge.name': brName });
  // By ID prefix, and with a Go template as people use it.
  assert.equal((await ok(d, ['network', 'inspect', '-f', '{{.Name}} {{.Internal}}', id.slice(0, 6)])).trim(), 'backend true');

  // An automatic subnet comes from the default pools and does not overlap anything.
  await ok(d, ['network', 'create', 'auto1']);
  const [auto] = JSON.parse(await ok(d, ['network', 'inspect', 'auto1']));
  assert.match(auto.IPAM.Config[0].Subnet, /^(172|192\.168)\./);
  assert.match(auto.Options['com.docker.network.bridge.name'] ?? `br-${auto.Id.slice(0, 12)}`, /^br-|^bt/);

  await fails(d, ['network', 'create', 'backend'], /network with name backend already exists/);
  assert.equal((await api(d.socket, 'POST', '/networks/create', { Name: 'backend', CheckDuplicate: true })).status, 409);
  await fails(d, ['network', 'create', '--subnet', s1.subnet, 'overlap'], /Pool overlaps with other one on this address space/);
  await fails(d, ['network', 'create', '--subnet', `10.213.${s1.octet}.64/26`, 'overlap2'], /Pool overlaps/);
  await fails(d, ['network', 'create', '--subnet', '10.213.300.0/24', 'badnet'], /invalid subnet/);
  const s2 = testSubnet('low', avoid);
  // The CLI checks these itself; the daemon checks them again for other clients.
  await fails(d, ['network', 'create', '--subnet', s2.subnet, '--gateway', '10.99.0.1', 'badgw'], /no matching subnet for gateway 10\.99\.0\.1/);
  const badGw = await api(d.socket, 'POST', '/networks/create', { Name: 'badgw', IPAM: { Config: [{ Subnet: s2.subnet, Gateway: '10.99.0.1' }] } });
  assert.equal(badGw.status, 400);
  assert.match(badGw.json<{ message: string }>().message, /gateway 10\.99\.0\.1 is not in subnet/);
  const badRange = await api(d.socket, 'POST', '/networks/create', { Name: 'badrange', IPAM: { Config: [{ Subnet: s2.subnet, IPRange: '10.99.0.0/28' }] } });
  assert.equal(badRange.status, 400);
  assert.match(badRange.json<{ message: string }>().message, /ip-range 10\.99\.0\.0\/28 is not within subnet/);
  await fails(d, ['network', 'create', '-d', 'overlay', 'ov'], /plugin "overlay" not found/);
  await fails(d, ['network', 'create', '-d', 'host', 'h2'], /only one instance of "host" network is allowed/);
  await fails(d, ['network', 'create', '-o', `com.docker.network.bridge.name=${brName}`, 'samebridge'], /bridge name .* already used/);
  // None of the refused networks exists.
  const names = (await ok(d, ['network', 'ls', '--format', '{{.Name}}'])).trim().split('\n').sort();
  assert.deepEqual(names, ['auto1', 'backend', 'bridge', 'host', 'none']);

  await ok(d, ['network', 'rm', 'backend', 'auto1']);
  await fails(d, ['network', 'inspect', 'backend'], /not found/);
  // The freed subnet can be used again.
  await ok(d, ['network', 'create', '--subnet', s1.subnet, 'again']);
});

test('docker network ls filters and network prune', async (t) => {
  const avoid = new Set<number>();
  const { d } = await daemon(t, avoid);
  const mk = async (name: string, labels: string[]) => {
    const s = testSubnet('low', avoid);
    return (await ok(d, ['network', 'create', '--subnet', s.subnet, ...labels.flatMap((l) => ['--label', l]), name])).trim();
  };
  const idA = await mk('alpha', ['env=prod', 'keep']);
  await mk('beta', ['env=dev']);
  await mk('gamma', []);
  const ls = async (...filters: string[]) => (await ok(d, ['network', 'ls', '--format', '{{.Name}}', ...filters.flatMap((f) => ['--filter', f])])).trim().split('\n').filter(Boolean).sort();

  assert.deepEqual(await ls('label=env'), ['alpha', 'beta']);
  assert.deepEqual(await ls('label=env=prod'), ['alpha']);
  assert.deepEqual(await ls('name=a'), ['alpha', 'beta', 'gamma']);
  assert.deepEqual(await ls('name=^be'), ['beta']);
  assert.deepEqual(await ls(`id=${idA.slice(0, 10)}`), ['alpha']);
  assert.deepEqual(await ls('driver=null'), ['none']);
  assert.deepEqual(await ls('type=builtin'), ['bridge', 'host', 'none']);
  assert.deepEqual(await ls('type=custom'), ['alpha', 'beta', 'gamma']);
  assert.deepEqual(await ls('dangling=true'), ['alpha', 'beta', 'gamma']);
  assert.deepEqual(await ls('scope=local', 'label=keep'), ['alpha']);
  assert.deepEqual(await ls('scope=swarm'), []);
  await fails(d, ['network', 'ls', '--filter', 'type=weird'], /invalid filter/);
  await fails(d, ['network', 'ls', '--filter', 'color=red'], /invalid filter 'color'/);

  const pruneKeep = await ok(d, ['network', 'prune', '-f', '--filter', 'label!=keep']);
  assert.match(pruneKeep, /Deleted Networks:\nbeta\ngamma\n/);
  assert.deepEqual(await ls('type=custom'), ['alpha']);
  const r = await api(d.socket, 'POST', '/networks/prune');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json(), { NetworksDeleted: ['alpha'] });
  assert.deepEqual(await ls('type=custom'), []);

  // Bodies and parameters the API refuses.
  assert.equal((await api(d.socket, 'POST', '/networks/create', '{not json', { 'Content-Type': 'application/json' })).status, 400);
  assert.equal((await api(d.socket, 'POST', '/networks/create', { Name: 'bad name!' })).status, 400);
  assert.equal((await api(d.socket, 'POST', '/networks/create', { Name: 'v6', EnableIPv6: true })).status, 400);
  assert.equal((await api(d.socket, 'POST', '/networks/bridge/connect', {})).status, 400);
});
