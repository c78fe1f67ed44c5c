// Containers with real networking, through the real docker CLI: published ports reachable from
// the host, name resolution between containers on a user network, host/none/container modes,
// connect/disconnect, clean failure on a taken port, survival of a daemon restart, and no
// interface or iptables rule left after many create/start/rm cycles.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { api } from '../helpers/daemon';
import { mountsUnder, setupDaemon, testSubnet, type CtrEnv } from './fixtures';
import { eventually, httpGet as httpGetAt } from '../network/helpers';

let env: CtrEnv;
const avoid = new Set<number>();
const userNet = testSubnet(avoid);

before(async () => {
  env = await setupDaemon('network', { subnets: [userNet.subnet] });
  // The web root for busybox httpd, in a layer of its own.
  const r = await env.docker(['run', '--name', 'mkweb', 'busybox', 'sh', '-c', 'mkdir /www && echo hello-berth > /www/index.html']);
  assert.equal(r.code, 0, r.stderr);
  const c = await env.docker(['commit', 'mkweb', 'web:latest']);
  assert.equal(c.code, 0, c.stderr);
  await env.docker(['rm', 'mkweb']);
});

after(() => env?.cleanup());

async function ok(args: string[]): Promise<string> {
  const r = await env.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** GET / of a port published on the host's loopback. */
function httpGet(port: number): Promise<{ status: number; body: string }> {
  return httpGetAt('127.0.0.1', port, 3000);
}

interface Inspect {
  Id: string;
  State: { Pid: number; Running: boolean; Status: string; Error: string };
  Config: { Hostname: string };
  HostConfig: { NetworkMode: string; PortBindings: Record<string, { HostIp: string; HostPort: string }[]> };
  NetworkSettings: {
    SandboxKey: string; IPAddress: string; Gateway: string; MacAddress: string; IPPrefixLen: number;
    Ports: Record<string, { HostIp: string; HostPort: string }[] | null>;
    Networks: Record<string, { IPAddress: string; Gateway: string; NetworkID: string; Aliases: string[] | null; DNSNames: string[] | null; IPAMConfig: { IPv4Address?: string } | null }>;
  };
}

async function inspect(ref: string): Promise<Inspect> {
  return (JSON.parse(await ok(['inspect', ref])) as Inspect[])[0];
}

test('a published port on 127.0.0.1 answers from the host; inspect, ps and docker port show it', async () => {
  await ok(['run', '-d', '--name', 'web1', '-p', '127.0.0.1::80', '--expose', '81', 'web', 'httpd', '-f', '-p', '80', '-h', '/www']);
  const portLine = await ok(['port', 'web1', '80']);
  const m = /^127\.0\.0\.1:(\d+)$/.exec(portLine);
  assert.ok(m, portLine);
  const port = Number(m[1]);
  const res = await eventually(() => httpGet(port));
  assert.equal(res.status, 200);
  assert.equal(res.body, 'hello-berth\n');

  const i = await inspect('web1');
  assert.equal(i.HostConfig.NetworkMode, 'bridge');
  assert.deepEqual(i.HostConfig.PortBindings['80/tcp'], [{ HostIp: '127.0.0.1', HostPort: '' }]);
  assert.deepEqual(i.NetworkSettings.Ports['80/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(port) }]);
  assert.equal(i.NetworkSettings.Ports['81/tcp'], null);
  const prefix = env.subnet.replace(/\.0\/24$/, '.');
  assert.ok(i.NetworkSettings.IPAddress.startsWith(prefix), i.NetworkSettings.IPAddress);
  assert.equal(i.NetworkSettings.Gateway, `${prefix}1`);
  assert.equal(i.NetworkSettings.IPPrefixLen, 24);
  assert.match(i.NetworkSettings.MacAddress, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  assert.equal(i.NetworkSettings.Networks.bridge.IPAddress, i.NetworkSettings.IPAddress);
  assert.ok(fs.existsSync(i.NetworkSettings.SandboxKey), i.NetworkSettings.SandboxKey);

  // The container's own view: its address on eth0, and files that name it.
  assert.match(await ok(['exec', 'web1', 'ip', '-o', '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${i.NetworkSettings.IPAddress.replace(/\./g, '\\.')}/24`));
  const hosts = await ok(['exec', 'web1', 'cat', '/etc/hosts']);
  assert.match(hosts, /^ff02::1\tip6-allnodes$/m);
  assert.match(hosts, /^ff02::2\tip6-allrouters$/m);
  assert.match(hosts, new RegExp(`^${i.NetworkSettings.IPAddress.replace(/\./g, '\\.')}\\t${i.Config.Hostname}$`, 'm'));

  const ps = await ok(['ps', '--filter', 'name=web1', '--format', '{{.Ports}}']);
  assert.match(ps, new RegExp(`127\\.0\\.0\\.1:${port}->80/tcp`));
  const list = (await api(env.d.socket, 'GET', '/containers/json')).json<{ Names: string[]; Ports: object[]; NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }[]>();
  const summary = list.find((c) => c.Names[0] === '/web1')!;
  assert.deepEqual(summary.Ports.find((p) => (p as { PrivatePort: number }).PrivatePort === 80), { IP: '127.0.0.1', PrivatePort: 80, PublicPort: port, Type: 'tcp' });
  assert.equal(summary.NetworkSettings.Networks.bridge.IPAddress, i.NetworkSettings.IPAddress);

  // Stop releases the port and the sandbox; inspect then shows the network without an address.
  await ok(['stop', '-t', '1', 'web1']);
  await assert.rejects(httpGet(port));
  const stopped = await inspect('web1');
  assert.equal(stopped.NetworkSettings.IPAddress, '');
  assert.equal(stopped.NetworkSettings.Networks.bridge.IPAddress, '');
  assert.ok(!fs.existsSync(i.NetworkSettings.SandboxKey));
  await ok(['rm', 'web1']);
});

const DNS_WAIT = 60_000;

test('two containers on a user network reach each other by name and alias; connect and disconnect', async () => {
  await ok(['network', 'create', '--subnet', userNet.subnet, 'appnet']);
  await ok(['run', '-d', '--name', 'na', '--network', 'appnet', 'web', 'sleep', '1000']);
  await ok(['run', '-d', '--name', 'nb', '--network', 'appnet', '--network-alias', 'bee', 'web', 'httpd', '-f', '-p', '80', '-h', '/www']);
  assert.equal(await eventually(() => ok(['exec', 'na', 'wget', '-qO-', 'http://nb/']), DNS_WAIT), 'hello-berth');
  // aardvark-dns picks up a new record on its reload signal, a moment after the start. On hosts
  // whose upstream resolver does not answer (these test machines), aardvark-dns 1.4 was seen to
  // stop answering for tens of seconds at a time (its forwarded queries time out first), so name
  // lookups get a minute here: DNS_WAIT.
  assert.match(await eventually(() => ok(['exec', 'na', 'ping', '-c1', '-W2', 'bee']), DNS_WAIT), /1 packets received/);
  const nb = await inspect('nb');
  assert.deepEqual(nb.NetworkSettings.Networks.appnet.Aliases, ['bee']);
  assert.equal(nb.NetworkSettings.IPAddress, '', 'top-level fields are the default bridge\'s only');
  const netInfo = JSON.parse(await ok(['network', 'inspect', 'appnet'])) as { Containers: Record<string, { Name: string }> }[];
  assert.deepEqual(Object.values(netInfo[0].Containers).map((c) => c.Name).sort(), ['na', 'nb']);

  // A third container on the default bridge joins appnet with a fixed address and an alias.
  const fixed = userNet.subnet.replace(/\.0\/24$/, '.77');
  await ok(['run', '-d', '--name', 'nc', 'web', 'sleep', '1000']);
  await ok(['network', 'connect', '--ip', fixed, '--alias', 'sea', 'appnet', 'nc']);
  assert.match(await ok(['exec', 'nc', 'ip', '-o', '-4', 'addr']), new RegExp(`inet ${fixed.replace(/\./g, '\\.')}/24`));
  assert.match(await eventually(() => ok(['exec', 'na', 'ping', '-c1', '-W2', 'sea']), DNS_WAIT), new RegExp(`\\(${fixed.replace(/\./g, '\\.')}\\)`));
  assert.equal(await eventually(() => ok(['exec', 'nc', 'wget', '-qO-', 'http://nb/']), DNS_WAIT), 'hello-berth');
  const nc = await inspect('nc');
  assert.deepEqual(Object.keys(nc.NetworkSettings.Networks).sort(), ['appnet', 'bridge']);
  assert.deepEqual(nc.NetworkSettings.Networks.appnet.IPAMConfig, { IPv4Address: fixed });
  const again = await env.docker(['network', 'connect', 'appnet', 'nc']);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /already exists in network appnet/);

  await ok(['network', 'disconnect', 'appnet', 'nc']);
  assert.doesNotMatch(await ok(['exec', 'nc', 'ip', '-o', '-4', 'addr']), new RegExp(fixed.replace(/\./g, '\\.')));
  assert.deepEqual(Object.keys((await inspect('nc')).NetworkSettings.Networks), ['bridge']);

  // Connecting a stopped container takes effect at its next start.
  await ok(['stop', '-t', '0', 'nc']);
  await ok(['network', 'connect', '--alias', 'later', 'appnet', 'nc']);
  await ok(['start', 'nc']);
  assert.deepEqual((await inspect('nc')).NetworkSettings.Networks.appnet.Aliases, ['later']);
  assert.match(await eventually(() => ok(['exec', 'na', 'ping', '-c1', '-W2', 'later']), DNS_WAIT), /1 packets received/);
  await ok(['rm', '-f', 'na', 'nb', 'nc']);
  await ok(['network', 'rm', 'appnet']);
});

test('host mode sees the host\'s interfaces, none only lo, container:<name> its peer\'s', async () => {
  const hostLinks = fs.readdirSync('/sys/class/net').sort();
  const inHost = (await ok(['run', '--rm', '--network', 'host', 'web', 'ls', '/sys/class/net'])).split(/\s+/).sort();
  // Links come and go while other tests run; most of the host's must be there, and no netns of ours is this crowded.
  assert.ok(inHost.includes('lo') && hostLinks.filter((l) => inHost.includes(l)).length >= Math.min(hostLinks.length, 2), inHost.join(' '));
  assert.ok(inHost.length > 2);
  const hostsOfHost = await ok(['run', '--rm', '--network', 'host', '--add-host', 'extra.test:192.0.2.9', 'web', 'cat', '/etc/hosts']);
  assert.match(hostsOfHost, /^192\.0\.2\.9\textra\.test$/m);

  const links = await ok(['run', '--rm', '--network', 'none', 'web', 'ip', '-o', 'link']);
  assert.equal(links.split('\n').length, 1, links);
  assert.match(links, /^1: lo: <LOOPBACK,UP/);
  const none = await ok(['create', '--network', 'none', 'web', 'true']);
  assert.deepEqual(Object.keys((await inspect(none)).NetworkSettings.Networks), ['none']);
  await ok(['rm', none]);

  await ok(['run', '-d', '--name', 'peer', 'web', 'sleep', '1000']);
  const peerIP = (await inspect('peer')).NetworkSettings.IPAddress;
  const joined = await ok(['run', '--rm', '--network', 'container:peer', 'web', 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
  assert.match(joined, new RegExp(`inet ${peerIP.replace(/\./g, '\\.')}/24`));
  await ok(['rm', '-f', 'peer']);
});

test('a taken host port fails the start with docker\'s error and leaves nothing behind', async () => {
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  const port = (holder.address() as net.AddressInfo).port;
  try {
    const linksBefore = fs.readdirSync('/sys/class/net').filter((l) => l === env.bridge);
    const r = await env.docker(['run', '-d', '--name', 'clash', '-p', `127.0.0.1:${port}:80`, 'web', 'sleep', '100']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`Bind for 127\\.0\\.0\\.1:${port} failed: port is already allocated`));
    const i = await inspect('clash');
    assert.equal(i.State.Running, false);
    assert.match(i.State.Error, /port is already allocated/);
    assert.equal(i.NetworkSettings.IPAddress, '');
    assert.equal(i.NetworkSettings.SandboxKey, '');
    assert.ok(!fs.existsSync(path.join(env.d.execRoot, 'netns', i.Id)), 'no netns left');
    assert.deepEqual(mountsUnder(path.join(env.d.execRoot, i.Id)), []);
    assert.deepEqual(fs.readdirSync('/sys/class/net').filter((l) => l === env.bridge), linksBefore);
    // The address it got is free again: the next container on the bridge gets the first one.
    await ok(['rm', 'clash']);
  } finally {
    holder.close();
  }
});

test('a running container keeps its networking across a daemon restart; a dead one\'s is torn down', async () => {
  await ok(['run', '-d', '--name', 'keep', '-p', '127.0.0.1::80', 'web', 'httpd', '-f', '-p', '80', '-h', '/www']);
  await ok(['run', '-d', '--name', 'gone', 'web', 'sleep', '1000']);
  const port = Number((await ok(['port', 'keep', '80'])).split(':')[1]);
  await eventually(() => httpGet(port));
  const gone = await inspect('gone');
  await env.d.stop('SIGKILL');
  process.kill(gone.State.Pid, 'SIGKILL');
  await env.d.restart();
  assert.equal((await eventually(() => httpGet(port))).body, 'hello-berth\n');
  assert.equal(await ok(['port', 'keep', '80']), `127.0.0.1:${port}`);
  const g = await inspect('gone');
  assert.equal(g.State.Running, false);
  assert.ok(!fs.existsSync(gone.NetworkSettings.SandboxKey), 'the dead container\'s netns is gone');
  await ok(['rm', '-f', 'keep', 'gone']);
  await assert.rejects(httpGet(port));
});

function linkLines(): string[] {
  return execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => l.replace(/^\d+: /, ''));
}

function ruleLines(): string[] {
  return execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, ''));
}

test('100 create/start/rm cycles with a published port leak no interface and no iptables rule', async (t) => {
  const bridgeID = (JSON.parse(await ok(['network', 'inspect', 'bridge'])) as { Id: string }[])[0].Id;
  // netavark names a network's chains after a hash of its name (berth gives it the network ID).
  const chainHash = createHash('sha512').update(bridgeID).digest('hex').toUpperCase().slice(0, 13);
  const linksBefore = linkLines();
  const rulesBefore = ruleLines();
  const ids: string[] = [];
  for (let i = 0; i < 100; i++) {
    const id = await ok(['create', '-p', '127.0.0.1::80', 'web', 'sleep', '100']);
    ids.push(id);
    await ok(['start', id]);
    await ok(['rm', '-f', id]);
  }
  const linksAfter = linkLines();
  const rulesAfter = ruleLines();
  t.diagnostic(`ip -o link: ${linksBefore.length} before, ${linksAfter.length} after; iptables-save: ${rulesBefore.length} before, ${rulesAfter.length} after`);
  // Other tests on the machine add and remove their own links and rules meanwhile: what must not
  // appear is anything of this daemon's (its bridge, veths on it, rules naming its subnet,
  // chains or containers).
  const ours = (l: string) => l.includes(env.bridge) || l.includes(env.subnet) || l.includes(chainHash) || ids.some((id) => l.includes(id));
  assert.deepEqual(linksAfter.filter((l) => !linksBefore.includes(l) && ours(l)), []);
  assert.deepEqual(rulesAfter.filter((l) => !rulesBefore.includes(l) && ours(l)), []);
  assert.deepEqual(fs.readdirSync(path.join(env.d.execRoot, 'netns')).filter((f) => ids.includes(f)), []);
  if (linksBefore.length !== linksAfter.length || rulesBefore.length !== rulesAfter.length) {
    t.diagnostic(`counts differ; added links: ${linksAfter.filter((l) => !linksBefore.includes(l)).join(' | ')}; added rules: ${rulesAfter.filter((l) => !rulesBefore.includes(l)).join(' | ')}`);
  }
});

test('start latency: default bridge vs none', async (t) => {
  const measure = async (mode: string): Promise<number[]> => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await ok(['create', '--network', mode, 'web', 'sleep', '100']);
      const t0 = process.hrtime.bigint();
      const r = await api(env.d.socket, 'POST', `/containers/${id}/start`);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      assert.equal(r.status, 204, r.body.toString());
      await ok(['rm', '-f', id]);
    }
    return times.sort((a, b) => a - b);
  };
  const none = await measure('none');
  const bridge = await measure('bridge');
  const median = (xs: number[]) => xs[Math.floor(xs.length / 2)];
  t.diagnostic(`start latency median: none ${median(none).toFixed(1)} ms, bridge ${median(bridge).toFixed(1)} ms (+${(median(bridge) - median(none)).toFixed(1)} ms)`);
  assert.ok(median(bridge) < median(none) + 2000, 'bridge networking adds less than 2 s per start');
});
