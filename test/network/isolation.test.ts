// Isolation between bridge networks (src/network/isolation.ts), with real containers through the
// docker CLI: containers on two user networks and the default bridge cannot reach each other by
// IP, containers on one network can, a container on both reaches both, traffic leaving through a
// non-bridge interface and published ports reached via the host still pass. The rules sit first
// in mangle FORWARD, go when a daemon is down to one bridge network, are reconciled at start, are
// never touched by a second daemon, and are not made at all with `iptables: false`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/daemon/config';
import { isolationChains } from '../../src/network/isolation';
import { optionsFromDaemonConfig } from '../../src/network/service';
import { setupDaemon, testSubnet, type CtrEnv } from '../containers/fixtures';
import { eventually, killByPid, spawnInNetns } from './helpers';

let env: CtrEnv;
const avoid = new Set<number>();
const subA = testSubnet(avoid);
const subB = testSubnet(avoid);
const subOut = testSubnet(avoid);
const brA = `bi${randomBytes(4).toString('hex')}`;
const brB = `bi${randomBytes(4).toString('hex')}`;

before(async () => {
  env = await setupDaemon('isolation', { subnets: [subA.subnet, subB.subnet] });
});

after(() => env?.cleanup());

function mangle(): string[] {
  return execFileSync('iptables', ['-w', '-t', 'mangle', '-S'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

/** The mangle rules of one data root's isolation chains (and the jump into them). */
function isolationRulesOf(dataRoot: string): string[] {
  const { stage1, stage2 } = isolationChains(dataRoot);
  return mangle().filter((l) => l.includes(stage1) || l.includes(stage2));
}

const WEB = 'mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www';

async function ip(name: string, network: string): Promise<string> {
  return (await env.ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name])).trim();
}

/**
 * Whether `from` gets the HTTP answer of one of our servers from addr:port (busybox nc; its wget
 * crashes here). The body is checked: this host's egress may answer for addresses it forwards.
 */
async function reaches(from: string, addr: string, port = 80, want = 'hello-'): Promise<boolean> {
  const r = await env.docker(['exec', from, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${addr} ${port}`]);
  return r.stdout.includes(`\r\n\r\n${want}`);
}

async function pings(from: string, addr: string): Promise<boolean> {
  return (await env.docker(['exec', from, 'ping', '-c', '1', '-W', '1', addr])).code === 0;
}

test('containers on different bridge networks cannot reach each other; same network, both networks, outbound and published ports can', async (t) => {
  await env.ok(['network', 'create', '--subnet', subA.subnet, '-o', `com.docker.network.bridge.name=${brA}`, 'isoA']);
  await env.ok(['network', 'create', '--subnet', subB.subnet, '-o', `com.docker.network.bridge.name=${brB}`, 'isoB']);
  const { stage1, stage2, comment } = isolationChains(env.d.dataRoot);
  const rules = isolationRulesOf(env.d.dataRoot);
  for (const br of [brA, brB, env.bridge]) {
    assert.ok(rules.includes(`-A ${stage1} -i ${br} ! -o ${br} -j ${stage2}`), rules.join('\n'));
    assert.ok(rules.includes(`-A ${stage2} -o ${br} -j DROP`), rules.join('\n'));
  }
  // The jump precedes any other rule in mangle FORWARD.
  assert.equal(mangle().find((l) => l.startsWith('-A FORWARD ')), `-A FORWARD -m comment --comment "${comment}" -j ${stage1}`);
  assert.ok(comment.endsWith(env.d.dataRoot), comment);

  await env.ok(['run', '-d', '--name', 'a1', '--network', 'isoA', 'busybox', 'sh', '-c', WEB]);
  await env.ok(['run', '-d', '--name', 'a2', '--network', 'isoA', 'busybox', 'sleep', '300']);
  await env.ok(['run', '-d', '--name', 'b1', '--network', 'isoB', '-p', '80', 'busybox', 'sh', '-c', WEB]);
  await env.ok(['run', '-d', '--name', 'd1', 'busybox', 'sh', '-c', WEB]);
  await env.ok(['run', '-d', '--name', 'ab', '--network', 'isoA', 'busybox', 'sleep', '300']);
  await env.ok(['network', 'connect', 'isoB', 'ab']);
  const a1 = await ip('a1', 'isoA');
  const b1 = await ip('b1', 'isoB');
  const d1 = await ip('d1', 'bridge');

  // Same network: reachable (once httpd is up).
  assert.ok(await eventually(async () => { if (!(await reaches('a2', a1))) throw new Error('a1 not up'); return true; }));
  assert.ok(await pings('a2', a1));
  assert.ok(await eventually(async () => { if (!(await reaches('b1', b1))) throw new Error('b1 not up'); return true; }));

  // Across networks, both ways, user networks and the default bridge: dropped.
  assert.equal(await reaches('a2', b1), false, 'isoA -> isoB');
  assert.equal(await pings('a2', b1), false, 'ping isoA -> isoB');
  assert.equal(await reaches('b1', a1), false, 'isoB -> isoA');
  assert.equal(await pings('b1', a1), false, 'ping isoB -> isoA');
  assert.equal(await reaches('a2', d1), false, 'isoA -> bridge');
  assert.equal(await reaches('d1', a1), false, 'bridge -> isoA');
  assert.equal(await reaches('d1', b1), false, 'bridge -> isoB');

  // A container on both networks reaches both.
  assert.ok(await reaches('ab', a1), 'ab -> isoA');
  assert.ok(await reaches('ab', b1), 'ab -> isoB');

  // A published port reached via the host (isoA's gateway is a host address): DNAT'd, so it passes.
  const port = Number(/:(\d+)$/.exec((await env.ok(['port', 'b1', '80'])).trim().split('\n')[0])![1]);
  assert.ok(await reaches('a2', subA.gateway, port), 'isoA -> host published port of isoB');

  // Outbound: a "remote" host behind a veth (not a bridge) is reached through forwarding + NAT.
  const ns = `bi-out-${randomBytes(3).toString('hex')}`;
  const veth = `bo${randomBytes(4).toString('hex')}`;
  const outIP = subOut.gateway.replace(/\.1$/, '.2');
  t.after(() => {
    try { execFileSync('ip', ['link', 'del', veth], { stdio: 'ignore' }); } catch {}
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch {}
  });
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  execFileSync('ip', ['addr', 'add', `${subOut.gateway}/24`, 'dev', veth]);
  execFileSync('ip', ['link', 'set', veth, 'up']);
  execFileSync('ip', ['-n', ns, 'addr', 'add', `${outIP}/24`, 'dev', 'eth0']);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const body = 'hello-outside';
  const server = spawnInNetns(`/run/netns/${ns}`, [process.execPath, '-e', `require('http').createServer((q, s) => s.end(${JSON.stringify(body)})).listen(8080, ${JSON.stringify(outIP)})`]);
  t.after(() => killByPid(server));
  assert.ok(await eventually(async () => { if (!(await reaches('a2', outIP, 8080, body))) throw new Error('outside not up'); return true; }), 'isoA -> outside');
  assert.ok(await reaches('d1', outIP, 8080, body), 'bridge -> outside');
});

test('removing the networks removes their rules; the last bridge network alone leaves no chain', async () => {
  await env.ok(['rm', '-f', 'a1', 'a2', 'b1', 'd1', 'ab']);
  await env.ok(['network', 'rm', 'isoB']);
  let rules = isolationRulesOf(env.d.dataRoot);
  assert.ok(!rules.some((l) => l.includes(brB)), rules.join('\n'));
  assert.ok(rules.some((l) => l.includes(brA)), rules.join('\n'));
  await env.ok(['network', 'rm', 'isoA']);
  rules = isolationRulesOf(env.d.dataRoot);
  assert.deepEqual(rules, [], 'only the default bridge is left: nothing to isolate');
  await env.d.stop();
  assert.deepEqual(mangle().filter((l) => l.includes(brA) || l.includes(brB) || l.includes(env.bridge)), []);
  await env.d.restart();
  assert.deepEqual(isolationRulesOf(env.d.dataRoot), []);
});

test('daemon start reconciles: a missing jump is restored and a stale bridge rule removed', async () => {
  const sub = testSubnet(avoid);
  await env.ok(['network', 'create', '--subnet', sub.subnet, 'isoC']);
  const { stage1, stage2, comment } = isolationChains(env.d.dataRoot);
  const good = isolationRulesOf(env.d.dataRoot);
  assert.equal(good.filter((l) => l.startsWith('-A FORWARD ')).length, 1);
  await env.d.stop();
  // As if a daemon died between steps: a rule for a bridge that no longer exists; and the jump
  // replaced by two of another comment (an older berthd's), one of them last in the chain.
  execFileSync('iptables', ['-w', '-t', 'mangle', '-A', stage2, '-o', 'bistale0', '-j', 'DROP']);
  execFileSync('iptables', ['-w', '-t', 'mangle', '-D', 'FORWARD', '-m', 'comment', '--comment', comment, '-j', stage1]);
  for (const where of [['-I', 'FORWARD', '1'], ['-A', 'FORWARD']]) {
    execFileSync('iptables', ['-w', '-t', 'mangle', ...where, '-m', 'comment', '--comment', 'berth bridge isolation', '-j', stage1]);
  }
  await env.d.restart();
  assert.deepEqual(isolationRulesOf(env.d.dataRoot), good);
  await env.ok(['network', 'rm', 'isoC']);
  assert.deepEqual(isolationRulesOf(env.d.dataRoot), []);
});

test('two daemons keep their own rules; iptables=false adds none', async (t) => {
  const other = await setupDaemon('isolation2');
  t.after(() => other.cleanup());
  const off = await setupDaemon('isolation3', { config: { iptables: false } });
  t.after(() => off.cleanup());
  const s1 = testSubnet(avoid);
  const s2 = testSubnet(avoid);
  const s3 = testSubnet(avoid);
  const s4 = testSubnet(avoid);
  await env.ok(['network', 'create', '--subnet', s1.subnet, 'mine']);
  await other.ok(['network', 'create', '--subnet', s2.subnet, 'theirs']);
  await off.ok(['network', 'create', '--subnet', s3.subnet, 'off1']);
  await off.ok(['network', 'create', '--subnet', s4.subnet, 'off2']);
  const mine = isolationRulesOf(env.d.dataRoot);
  assert.equal(mine.filter((l) => l.endsWith('-j DROP')).length, 2, mine.join('\n'));
  assert.equal(isolationRulesOf(other.d.dataRoot).filter((l) => l.endsWith('-j DROP')).length, 2);
  assert.deepEqual(isolationRulesOf(off.d.dataRoot), []);
  // The other daemon's network goes, then the daemon itself: ours are untouched.
  await other.ok(['network', 'rm', 'theirs']);
  assert.deepEqual(isolationRulesOf(other.d.dataRoot), []);
  await other.d.stop();
  assert.deepEqual(isolationRulesOf(env.d.dataRoot), mine);
  await env.ok(['network', 'rm', 'mine']);
  assert.deepEqual(isolationRulesOf(env.d.dataRoot), []);
});

test('--iptables and daemon.json iptables reach the network service', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-isoconf-'));
  try {
    const file = path.join(dir, 'daemon.json');
    const iptablesOf = (json: object, args: string[] = []): boolean | undefined => {
      fs.writeFileSync(file, JSON.stringify(json));
      return optionsFromDaemonConfig(loadConfig(['--config-file', file, ...args], {}).extra).iptables;
    };
    assert.equal(iptablesOf({}), true);
    assert.equal(iptablesOf({ iptables: false }), false);
    assert.equal(iptablesOf({}, ['--iptables=false']), false);
    assert.equal(iptablesOf({}, ['--iptables']), true);
    assert.throws(() => iptablesOf({ iptables: false }, ['--iptables=false']), /both as a flag and in the configuration file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
