// The networking library against the real kernel: netavark builds bridges, veths, NAT and port
// forwarding for "containers" that are plain network namespaces running busybox, aardvark-dns
// answers for them, and teardown leaves no link, rule, process or namespace behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/common/logger';
import { MetadataDB } from '../../src/metadata/db';
import { NetworkService } from '../../src/network/service';
import { isNetnsMounted, removeNetns } from '../../src/network/netns';
import type { SandboxRequest } from '../../src/network/types';
import { isolationChains } from '../../src/network/isolation';
import { removeIsolationRules } from '../helpers/cleanup';
import { aardvarkPids, bridgeName, eventually, httpGet, inNetns, iptablesRules, killByPid, linkNames, rulesMentioning, spawnInNetns, testSubnet } from './helpers';

interface Env {
  root: string;
  meta: MetadataDB;
  svc: NetworkService;
  defaultBridge: string;
  defaultSubnet: string;
  open(): NetworkService;
}

function containerID(): string {
  return randomBytes(32).toString('hex');
}

function request(id: string, name: string, over: Partial<SandboxRequest> = {}): SandboxRequest {
  return { containerID: id, containerName: name, hostname: id.slice(0, 12), networkMode: 'bridge', networks: {}, ports: [], dns: [], dnsSearch: [], dnsOptions: [], extraHosts: [], ...over };
}

/** A service on a fresh data root with its own default bridge and claims dir; cleaned up in t.after. */
function setup(t: { after(fn: () => unknown): void }, avoid: Set<number>): Env {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-nettest-'));
  const resolv = path.join(root, 'resolv.conf');
  fs.writeFileSync(resolv, 'nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.test\noptions edns0\n');
  const defaultBridge = bridgeName();
  const def = testSubnet('high', avoid);
  const env: Env = {
    root, defaultBridge, defaultSubnet: def.subnet,
    meta: undefined as unknown as MetadataDB,
    svc: undefined as unknown as NetworkService,
    open() {
      env.meta = new MetadataDB(path.join(root, 'data', 'metadata.db'));
      env.svc = new NetworkService(env.meta, {
        dataRoot: path.join(root, 'data'), execRoot: path.join(root, 'exec'), log: silentLogger,
        bridge: defaultBridge, bip: `${def.gateway}/24`, claimsDir: path.join(root, 'claims'), resolvConfPath: resolv,
      });
      return env.svc;
    },
  };
  env.open();
  t.after(async () => {
    // Whatever the test left: sandboxes through the service, then anything the kernel still has.
    try {
      for (const id of env.svc.sandboxIDs()) await env.svc.tearDown(id).catch(() => {});
      env.svc.close();
      env.meta.close();
    } catch {}
    for (const pid of aardvarkPids(root)) {
      try { process.kill(pid, 'SIGKILL'); } catch {}
    }
    removeIsolationRules(path.join(root, 'data'));
    const nsDir = path.join(root, 'exec', 'netns');
    if (fs.existsSync(nsDir)) for (const f of fs.readdirSync(nsDir)) await removeNetns(path.join(nsDir, f));
    fs.rmSync(root, { recursive: true, force: true });
  });
  return env;
}

function removeBridgeAfter(t: { after(fn: () => unknown): void }, name: string): void {
  t.after(() => {
    if (fs.existsSync(`/sys/class/net/${name}`)) execFileSync('ip', ['link', 'del', name]);
  });
}

test('two containers on a user network: addresses, ping, HTTP by IP and by name, published port on 127.0.0.1, clean teardown', async (t) => {
  const avoid = new Set<number>();
  const env = setup(t, avoid);
  await env.svc.init();
  const svc = env.svc;
  const br = bridgeName();
  removeBridgeAfter(t, br);
  removeBridgeAfter(t, env.defaultBridge);
  const sub = testSubnet('high', avoid);
  const linksBefore = linkNames();
  const rulesBefore = iptablesRules();

  const net = svc.create({ Name: 'app', IPAM: { Config: [{ Subnet: sub.subnet, IPRange: `10.213.${sub.octet}.16/28` }] }, Options: { 'com.docker.network.bridge.name': br }, Labels: { tier: 'test' } });
  assert.equal(net.bridge, br);
  assert.deepEqual(net.pools, [{ subnet: sub.subnet, gateway: sub.gateway, ipRange: `10.213.${sub.octet}.16/28` }]);

  const id1 = containerID();
  const id2 = containerID();
  const www = path.join(env.root, 'www');
  fs.mkdirSync(www);
  fs.writeFileSync(path.join(www, 'index.html'), 'hello from web1\n');
  const procs: ChildProcess[] = [];
  t.after(() => procs.forEach(killByPid));

  const t0 = process.hrtime.bigint();
  const sb1 = await svc.setUp(request(id1, 'web1', {
    networkMode: 'app', networks: { app: { aliases: ['www'] } },
    ports: [{ containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1', hostPort: 0 }],
    extraHosts: ['db.example:192.0.2.10'],
  }));
  const setupMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const sb2 = await svc.setUp(request(id2, 'client', { networkMode: 'app', networks: { app: { ipv4Address: `10.213.${sub.octet}.200` } } }));

  // IPAM: the first address of the ip-range, the static one as asked.
  const e1 = sb1.networks.app;
  const e2 = sb2.networks.app;
  assert.equal(e1.IPAddress, `10.213.${sub.octet}.17`);
  assert.equal(e1.IPPrefixLen, 24);
  assert.equal(e1.Gateway, sub.gateway);
  assert.equal(e1.NetworkID, net.id);
  assert.match(e1.EndpointID, /^[0-9a-f]{64}$/);
  assert.match(e1.MacAddress, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  assert.deepEqual(e1.Aliases, ['www']);
  assert.deepEqual(e1.DNSNames, ['web1', 'www', id1.slice(0, 12)]);
  assert.equal(e2.IPAddress, `10.213.${sub.octet}.200`);
  assert.deepEqual(e2.IPAMConfig, { IPv4Address: `10.213.${sub.octet}.200` });

  // The interface really has that address and MAC inside the namespace.
  const addr = inNetns(sb1.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'eth0']);
  assert.match(addr, new RegExp(`inet 10\\.213\\.${sub.octet}\\.17/24`));
  assert.match(inNetns(sb1.netnsPath!, ['ip', 'link', 'show', 'eth0']), new RegExp(e1.MacAddress));

  // hosts and resolv.conf as docker writes them on a user network.
  assert.equal(sb1.hosts.split('\n').slice(-3).join('\n'), `192.0.2.10\tdb.example\n10.213.${sub.octet}.17\t${id1.slice(0, 12)}\n`);
  assert.match(sb1.hosts, /^127\.0\.0\.1\tlocalhost\n/);
  assert.equal(sb1.resolvConf, `search example.test\nnameserver ${sub.gateway}\noptions edns0 ndots:0\n`);
  assert.deepEqual(sb1.ports, { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(svc.store.getSandbox(id1)!.ports[0].hostPort) }] });

  // A static address already taken is refused and changes nothing.
  await assert.rejects(svc.setUp(request(containerID(), 'dup', { networkMode: 'app', networks: { app: { ipv4Address: `10.213.${sub.octet}.200` } } })), /Address already in use/);
  assert.equal(svc.endpoints(net.id).length, 2);

  // Traffic between the two namespaces: ping, HTTP by IP, and by name through aardvark-dns.
  procs.push(spawnInNetns(sb1.netnsPath!, ['busybox', 'httpd', '-f', '-p', '80', '-h', www]));
  inNetns(sb2.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '3', e1.IPAddress]);
  const byIP = await eventually(() => inNetns(sb2.netnsPath!, ['busybox', 'wget', '-q', '-O', '-', `http://${e1.IPAddress}/`]));
  assert.equal(byIP, 'hello from web1\n');
  for (const name of ['web1', 'www']) {
    const ns = await eventually(() => {
      const out = inNetns(sb2.netnsPath!, ['busybox', 'nslookup', name, sub.gateway]);
      if (!out.includes(e1.IPAddress)) throw new Error(out);
      return out;
    });
    assert.match(ns, new RegExp(`Address:? *${e1.IPAddress.replace(/\./g, '\\.')}`));
  }

  // The published port, from the host's loopback.
  const hostPort = svc.store.getSandbox(id1)!.ports[0].hostPort;
  assert.ok(hostPort >= 32768 && hostPort <= 60999, `random port ${hostPort} from the ephemeral range`);
  const res = await eventually(() => httpGet('127.0.0.1', hostPort));
  assert.equal(res.body, 'hello from web1\n');
  // berth holds the port, so nobody else can take it while it is published.
  await assert.rejects(svc.setUp(request(containerID(), 'clash', { networkMode: 'app', ports: [{ containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1', hostPort }] })), /port is already allocated/);

  // Teardown: nothing of ours is left in the kernel.
  const t1 = process.hrtime.bigint();
  await svc.tearDown(id1);
  const teardownMs = Number(process.hrtime.bigint() - t1) / 1e6;
  await svc.tearDown(id2);
  await svc.tearDown(id2); // idempotent
  t.diagnostic(`netavark set-up ${setupMs.toFixed(0)} ms, teardown ${teardownMs.toFixed(0)} ms for one container (with DNS and a published port)`);
  assert.equal(fs.existsSync(sb1.netnsPath!), false);
  assert.deepEqual(linkNames(), linksBefore);
  // The network's isolation rules (it and the default bridge) live as long as the network.
  const { stage1, stage2 } = isolationChains(path.join(env.root, 'data'));
  const notIsolation = (rules: string[]): string[] => rules.filter((l) => !l.includes(stage1) && !l.includes(stage2));
  assert.deepEqual(notIsolation(rulesMentioning([sub.subnet, br, id1, id2])), []);
  assert.deepEqual(notIsolation(iptablesRules()), rulesBefore);
  await eventually(() => assert.deepEqual(aardvarkPids(env.root), []));
  assert.equal(svc.endpoints(net.id).length, 0);
  await assert.rejects(httpGet('127.0.0.1', hostPort, 1000));
  svc.remove('app');
  assert.throws(() => svc.get('app'), /network app not found/);
  await svc.isolationSettled();
  assert.deepEqual(rulesMentioning([sub.subnet, br, id1, id2]), []);
  assert.deepEqual(iptablesRules(), rulesBefore);
});

test('default bridge, live connect/disconnect, none and host modes', async (t) => {
  const avoid = new Set<number>();
  const env = setup(t, avoid);
  await env.svc.init();
  const svc = env.svc;
  removeBridgeAfter(t, env.defaultBridge);
  const br = bridgeName();
  removeBridgeAfter(t, br);
  const sub = testSubnet('high', avoid);
  const linksBefore = linkNames();
  const rulesBefore = iptablesRules();
  svc.create({ Name: 'side', Internal: true, IPAM: { Config: [{ Subnet: sub.subnet, Gateway: `10.213.${sub.octet}.254` }] }, Options: { 'com.docker.network.bridge.name': br } });

  const id = containerID();
  const sb = await svc.setUp(request(id, 'solo', { dns: ['192.0.2.1'], dnsSearch: ['corp.test'] }));
  const e = sb.networks.bridge;
  const def = svc.get('bridge');
  assert.equal(def.bridge, env.defaultBridge);
  assert.equal(e.IPAddress, env.defaultSubnet.replace('.0/24', '.2'));
  assert.equal(e.DNSNames, null, 'no embedded DNS on the default bridge');
  assert.equal(sb.resolvConf, 'search corp.test\nnameserver 192.0.2.1\noptions edns0\n');
  // The default bridge really is up with the --bip address.
  assert.match(execFileSync('ip', ['-o', '-4', 'addr', 'show', env.defaultBridge], { encoding: 'utf8' }), new RegExp(`inet ${def.pools[0].gateway}/24`));
  await assert.rejects(svc.setUp(request(containerID(), 'x', { networks: { bridge: { ipv4Address: env.defaultSubnet.replace('.0/24', '.9') } } })), /user specified IP address is supported on user defined networks only/);

  // Live connect to an internal network: a second interface, no default route through it.
  const side = await svc.connectSandbox(id, 'side', { aliases: ['s'] });
  assert.equal(side.IPAddress, `10.213.${sub.octet}.1`);
  assert.equal(side.Gateway, `10.213.${sub.octet}.254`);
  assert.match(inNetns(sb.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'eth1']), new RegExp(`10\\.213\\.${sub.octet}\\.1/24`));
  assert.doesNotMatch(inNetns(sb.netnsPath!, ['ip', 'route']), new RegExp(`default via 10\\.213\\.${sub.octet}`));
  assert.ok(svc.sandbox(id)!.networks.side);
  assert.throws(() => svc.remove('side'), /has active endpoints/);
  await svc.disconnectSandbox(id, 'side');
  assert.equal(svc.sandbox(id)!.networks.side, undefined);
  assert.throws(() => inNetns(sb.netnsPath!, ['ip', 'link', 'show', 'eth1']));
  assert.equal(fs.existsSync(`/sys/class/net/${br}`), false, 'the emptied bridge is removed');
  svc.remove('side');

  await svc.tearDown(id);

  // none: a namespace with only loopback; host: no namespace, the host's files.
  const idNone = containerID();
  const none = await svc.setUp(request(idNone, 'quiet', { networkMode: 'none' }));
  assert.ok(none.netnsPath && isNetnsMounted(none.netnsPath));
  assert.deepEqual(Object.keys(none.networks), ['none']);
  assert.equal(none.resolvConf, 'search example.test\nnameserver 192.0.2.53\noptions edns0\n', 'loopback nameservers dropped');
  await svc.tearDown(idNone);
  assert.equal(fs.existsSync(none.netnsPath), false);
  const idHost = containerID();
  const host = await svc.setUp(request(idHost, 'hosty', { networkMode: 'host', extraHosts: ['extra:192.0.2.7'] }));
  assert.equal(host.netnsPath, null);
  assert.match(host.resolvConf, /nameserver 127\.0\.0\.53/, 'host mode keeps the host resolver');
  assert.match(host.hosts, /192\.0\.2\.7\textra\n$/);
  await svc.tearDown(idHost);

  await svc.isolationSettled();
  assert.deepEqual(linkNames(), linksBefore);
  assert.deepEqual(iptablesRules(), rulesBefore);
});

test('a daemon restart keeps a running container reachable; reconcile tears down dead ones', async (t) => {
  const avoid = new Set<number>();
  const env = setup(t, avoid);
  await env.svc.init();
  removeBridgeAfter(t, env.defaultBridge);
  const linksBefore = linkNames();
  const rulesBefore = iptablesRules();
  const www = path.join(env.root, 'www');
  fs.mkdirSync(www);
  fs.writeFileSync(path.join(www, 'index.html'), 'still here\n');
  const procs: ChildProcess[] = [];
  t.after(() => procs.forEach(killByPid));

  const live = containerID();
  const dead = containerID();
  const sb = await env.svc.setUp(request(live, 'live', { ports: [{ containerPort: 8080, protocol: 'tcp', hostIP: '', hostPort: 0 }, { containerPort: 53, protocol: 'udp', hostIP: '', hostPort: 0 }] }));
  await env.svc.setUp(request(dead, 'dead'));
  procs.push(spawnInNetns(sb.netnsPath!, ['busybox', 'httpd', '-f', '-p', '8080', '-h', www]));
  const port = Number(sb.ports['8080/tcp']![0].HostPort);
  assert.ok(sb.ports['53/udp']![0].HostPort);
  assert.equal((await eventually(() => httpGet('127.0.0.1', port))).body, 'still here\n');

  // "Restart": close the service and database, open a new one on the same roots.
  env.svc.close();
  env.meta.close();
  assert.equal((await httpGet('127.0.0.1', port)).body, 'still here\n', 'reachable while no daemon runs');
  const svc2 = env.open();
  await svc2.init();
  assert.deepEqual(svc2.get('bridge').bridge, env.defaultBridge);
  assert.equal(svc2.sandbox(live)!.networks.bridge.IPAddress, sb.networks.bridge.IPAddress);
  assert.equal((await httpGet('127.0.0.1', port)).body, 'still here\n');
  // The restarted service holds the port again.
  await assert.rejects(svc2.setUp(request(containerID(), 'clash', { ports: [{ containerPort: 80, protocol: 'tcp', hostIP: '', hostPort: port }] })), /port is already allocated/);

  await svc2.reconcile(new Set([live]));
  assert.deepEqual(svc2.sandboxIDs(), [live]);
  await svc2.tearDown(live);
  assert.deepEqual(linkNames(), linksBefore);
  assert.deepEqual(iptablesRules(), rulesBefore);
});
