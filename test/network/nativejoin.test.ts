// berth joins a container to the default bridge itself (src/native/netns.c) where netavark would
// only check rules that exist: the result must be what netavark makes, the ruleset untouched, and
// the leave must leave the bridge and rules to the last container's netavark teardown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/common/logger';
import { MetadataDB } from '../../src/metadata/db';
import { findBinary, NETAVARK_PATHS } from '../../src/network/netavark';
import { NetworkService } from '../../src/network/service';
import { isNetnsMounted, removeNetns } from '../../src/network/netns';
import type { SandboxInfo, SandboxRequest } from '../../src/network/types';
import { removeIsolationRules } from '../helpers/cleanup';
import { bridgeName, inNetns, linkNames, rulesMentioning, testSubnet } from './helpers';

function request(id: string, name: string): SandboxRequest {
  return { containerID: id, containerName: name, hostname: id.slice(0, 12), networkMode: 'bridge', networks: {}, ports: [], dns: [], dnsSearch: [], dnsOptions: [], extraHosts: [] };
}

interface Env {
  svc: NetworkService;
  /** The netavark commands this service ran (setup, teardown), in order. */
  netavarkCalls(): string[];
  bridge: string;
  subnet: string;
  gateway: string;
}

/** A service with its own default bridge; nativeJoins as given. Cleaned up in t.after. */
async function open(t: { after(fn: () => unknown): void }, avoid: Set<number>, nativeJoins: boolean): Promise<Env> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-nativejoin-'));
  const resolv = path.join(root, 'resolv.conf');
  fs.writeFileSync(resolv, 'nameserver 192.0.2.53\n');
  const bridge = bridgeName();
  const net = testSubnet('high', avoid);
  // netavark through a wrapper that notes each command, to tell which path a join took.
  const calls = path.join(root, 'netavark-calls');
  const wrapper = path.join(root, 'netavark');
  fs.writeFileSync(wrapper, `#!/bin/sh\nfor a; do case "$a" in setup|teardown) echo "$a" >> ${calls};; esac; done\nexec ${findBinary(NETAVARK_PATHS)} "$@"\n`, { mode: 0o755 });
  const meta = new MetadataDB(path.join(root, 'data', 'metadata.db'));
  const svc = new NetworkService(meta, {
    dataRoot: path.join(root, 'data'), execRoot: path.join(root, 'exec'), log: silentLogger,
    bridge, bip: `${net.gateway}/24`, claimsDir: path.join(root, 'claims'), resolvConfPath: resolv, nativeJoins, netavarkPath: wrapper,
  });
  t.after(async () => {
    try {
      for (const id of svc.sandboxIDs()) await svc.tearDown(id).catch(() => {});
      svc.close();
      meta.close();
    } catch {}
    removeIsolationRules(path.join(root, 'data'));
    const nsDir = path.join(root, 'exec', 'netns');
    if (fs.existsSync(nsDir)) for (const f of fs.readdirSync(nsDir)) await removeNetns(path.join(nsDir, f));
    if (fs.existsSync(`/sys/class/net/${bridge}`)) execFileSync('ip', ['link', 'del', bridge]);
    fs.rmSync(root, { recursive: true, force: true });
  });
  await svc.init();
  const netavarkCalls = (): string[] => (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean) : []);
  return { svc, netavarkCalls, bridge, subnet: net.subnet, gateway: net.gateway };
}

/**
 * What a container's namespace and its host end look like, with the names and numbers that
 * differ between two networks (addresses, MACs, interface indexes and names) replaced.
 */
function shape(env: Env, sb: SandboxInfo): Record<string, string> {
  const ns = sb.netnsPath!;
  const e = sb.networks.bridge;
  const prefix = env.subnet.replace(/\.0\/24$/, '.');
  const norm = (s: string): string => s
    .replaceAll(e.MacAddress, 'MAC').replaceAll(prefix, 'NET.').replaceAll(env.bridge, 'BRIDGE')
    .replace(/\bveth[0-9a-f]+\b/g, 'VETH').replace(/link\/ether [0-9a-f:]{17}/g, 'link/ether X').replace(/brd [0-9a-f:]{17}/g, 'brd X')
    .replace(/^\d+: /gm, 'N: ').replace(/@if\d+/g, '@ifN').replace(/link-netnsid \d+/g, 'link-netnsid N').replace(/valid_lft .*$/gm, '')
    .replace(/altname \S+/g, '').replace(/fe80::[0-9a-f:]+\/64 scope link/g, 'fe80::EUI64/64 scope link').replace(/\s+/g, ' ').trim();
  const peerIndex = /@if(\d+)/.exec(inNetns(ns, ['ip', '-o', 'link', 'show', 'eth0']))![1];
  const hostEnd = execFileSync('ip', ['-o', '-d', 'link', 'show'], { encoding: 'utf8' }).split('\n').find((l) => l.startsWith(`${peerIndex}: `)) ?? '';
  return {
    links: norm(inNetns(ns, ['ip', '-o', '-d', 'link', 'show'])),
    addrs: norm(inNetns(ns, ['ip', '-o', 'addr', 'show'])),
    routes: norm(inNetns(ns, ['ip', 'route', 'show', 'table', 'all'])),
    autoconf: inNetns(ns, ['cat', '/proc/sys/net/ipv6/conf/eth0/autoconf']).trim(),
    hostEnd: norm(hostEnd.replace(/ (addrgenmode|numtxqueues|numrxqueues|gso_max_size|gso_max_segs|tso_max_size|tso_max_segs|gro_max_size|gso_ipv4_max_size|gro_ipv4_max_size|parentbus|parentdev)\s+\S+/g, '')
      .replace(/bridge_slave .*$/, (m) => m.replace(/ (port_id|port_no|designated_port|designated_cost|designated_bridge|designated_root|hold_timer|message_age_timer|forward_delay_timer|topology_change_ack|config_pending)\s+\S+/g, ''))),
  };
}

test('a shared join of the default bridge made by berth is the one netavark makes, and touches no rule', async (t) => {
  const avoid = new Set<number>();
  const native = await open(t, avoid, true);
  const viaNetavark = await open(t, avoid, false);

  const shapes: Record<string, string>[] = [];
  for (const env of [native, viaNetavark]) {
    // The first container makes the bridge and the network's rules (netavark, exclusive).
    const first = await env.svc.setUp(request(randomBytes(32).toString('hex'), 'first'));
    const rules = rulesMentioning([env.subnet]);
    assert.ok(rules.length >= 3, `the network's NAT and forward rules: ${rules.join('\n')}`);
    const links = linkNames().filter((l) => l.startsWith('veth')).length;
    // The second joins a bridge that stays up: the shared path.
    const second = await env.svc.setUp(request(randomBytes(32).toString('hex'), 'second'));
    assert.deepEqual(rulesMentioning([env.subnet]), rules, 'a shared join adds and removes no rule');
    assert.ok(linkNames().filter((l) => l.startsWith('veth')).length >= links + 1, 'a host end for the second container');
    shapes.push(shape(env, second));
    // It works: the gateway, and the first container across the bridge.
    const other = first.networks.bridge.IPAddress;
    inNetns(second.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', env.gateway]);
    inNetns(second.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', other]);
    assert.equal(/link\/ether (\S+)/.exec(inNetns(second.netnsPath!, ['ip', '-o', 'link', 'show', 'eth0']))?.[1], second.networks.bridge.MacAddress);

    // The second leaves (shared: the bridge and rules stay), then the first (netavark removes both).
    const peer = /@if(\d+)/.exec(inNetns(second.netnsPath!, ['ip', '-o', 'link', 'show', 'eth0']))![1];
    await env.svc.tearDown(second.containerID);
    assert.equal(isNetnsMounted(second.netnsPath!), false);
    assert.ok(!execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').some((l) => l.startsWith(`${peer}: `)), 'the host end is gone');
    assert.ok(fs.existsSync(`/sys/class/net/${env.bridge}`), 'the bridge stays for the first container');
    assert.deepEqual(rulesMentioning([env.subnet]), rules);
    await env.svc.tearDown(first.containerID);
    assert.equal(fs.existsSync(`/sys/class/net/${env.bridge}`), false, 'the last leave removes the bridge');
    assert.deepEqual(rulesMentioning([env.subnet]), [], 'and the network\'s rules');
    // Natively: netavark only for the join that made the bridge and the leave that removed it.
    assert.deepEqual(env.netavarkCalls(), env === native ? ['setup', 'teardown'] : ['setup', 'setup', 'teardown', 'teardown']);
  }
  assert.deepEqual(shapes[0], shapes[1]);
});
