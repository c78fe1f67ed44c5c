// IPAM, host-wide claims and the hosts/resolv.conf writers, without touching the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostClaims } from '../../src/network/claims';
import { buildHosts, buildResolvConf } from '../../src/network/hostfiles';
import { chooseAddress, pickSubnet, poolFromConfig } from '../../src/network/ipam';
import { formatSubnet, mustParseSubnet, overlaps, parseCIDR } from '../../src/network/ipnet';

test('subnets: parsing, overlap, picking from pools past taken ones', () => {
  assert.deepEqual(parseCIDR('10.1.2.3/16'), { addr: 0x0a010203, base: 0x0a010000, prefix: 16 });
  assert.equal(parseCIDR('10.1.2/16'), undefined);
  assert.equal(parseCIDR('010.1.2.3/16'), undefined);
  assert.equal(parseCIDR('10.1.2.3/33'), undefined);
  assert.ok(overlaps(mustParseSubnet('10.0.0.0/8'), mustParseSubnet('10.213.4.0/24')));
  assert.ok(!overlaps(mustParseSubnet('10.213.4.0/24'), mustParseSubnet('10.213.5.0/24')));
  const pools = [{ base: '10.213.0.0/22', size: 24 }];
  const taken = [mustParseSubnet('10.213.0.0/24'), mustParseSubnet('10.213.1.128/25')];
  const refused = new Set(['10.213.2.0/24']);
  const got = pickSubnet(pools, taken, (s) => !refused.has(formatSubnet(s)));
  assert.equal(formatSubnet(got), '10.213.3.0/24');
  assert.throws(() => pickSubnet(pools, [mustParseSubnet('10.213.0.0/22')], () => true), /could not find an available, non-overlapping IPv4 address pool/);
});

test('pools from IPAM.Config and address choice', () => {
  const p = poolFromConfig({ Subnet: '10.213.9.7/24', IPRange: '10.213.9.8/30' });
  assert.deepEqual({ subnet: p.subnet, gateway: p.gateway, ipRange: p.ipRange }, { subnet: '10.213.9.0/24', gateway: '10.213.9.1', ipRange: '10.213.9.8/30' });
  assert.throws(() => poolFromConfig({ Subnet: '10.213.9.0/24', Gateway: '10.213.9.255' }), /broadcast/);
  assert.throws(() => poolFromConfig({ Gateway: '10.213.9.1' }), /subnet is required/);
  assert.throws(() => poolFromConfig({ Subnet: 'fd00::/64' }), /IPv6/);

  const pool = { subnet: '10.213.9.0/29', gateway: '10.213.9.1', ipRange: '' };
  const used = new Set<string>();
  const order: string[] = [];
  for (let i = 0; i < 5; i++) {
    const ip = chooseAddress(pool, used, undefined, 'n');
    used.add(ip);
    order.push(ip);
  }
  assert.deepEqual(order, ['10.213.9.2', '10.213.9.3', '10.213.9.4', '10.213.9.5', '10.213.9.6']);
  assert.throws(() => chooseAddress(pool, used, undefined, 'n'), /no available IPv4 addresses/);
  used.delete('10.213.9.4');
  assert.equal(chooseAddress(pool, used, undefined, 'n'), '10.213.9.4', 'a released address is given again');
  assert.throws(() => chooseAddress(pool, used, '10.213.9.1', 'n'), /Address already in use/);
  assert.throws(() => chooseAddress(pool, used, '10.213.9.7', 'n'), /no configured subnet or ip-range contain the IP address/);
  assert.throws(() => chooseAddress(pool, used, '10.213.10.2', 'n'), /no configured subnet/);
  // Static addresses may lie outside the ip-range (docker allows any address of the subnet).
  assert.equal(chooseAddress({ subnet: '10.213.9.0/24', gateway: '10.213.9.1', ipRange: '10.213.9.128/25' }, new Set(), '10.213.9.5', 'n'), '10.213.9.5');
  assert.equal(chooseAddress({ subnet: '10.213.9.0/24', gateway: '10.213.9.1', ipRange: '10.213.9.128/25' }, new Set(), undefined, 'n'), '10.213.9.129');
});

test('two data roots on one host never get overlapping subnets or the same bridge', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-netclaims-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rootA = path.join(dir, 'a');
  const rootB = path.join(dir, 'b');
  fs.mkdirSync(rootA);
  fs.mkdirSync(rootB);
  const a = new HostClaims(path.join(dir, 'claims'), rootA);
  const b = new HostClaims(path.join(dir, 'claims'), rootB);
  const s16 = mustParseSubnet('10.213.0.0/16');
  const s24 = mustParseSubnet('10.213.7.0/24');
  assert.ok(a.claimSubnet(s24, 'netA'));
  assert.ok(a.claimSubnet(s24, 'netA'), 'claiming again is idempotent');
  assert.ok(!b.claimSubnet(s24, 'netB'));
  assert.ok(!b.claimSubnet(s16, 'netB'), 'an enclosing subnet overlaps too');
  assert.deepEqual(b.foreignSubnets().map(formatSubnet), ['10.213.7.0/24']);
  assert.ok(a.claimBridge('bt000001', 'netA'));
  assert.ok(!b.claimBridge('bt000001', 'netB'));
  // B's picker skips A's subnet.
  const got = pickSubnet([{ base: '10.213.6.0/23', size: 24 }], b.foreignSubnets(), (s) => b.claimSubnet(s, 'netB'));
  assert.equal(formatSubnet(got), '10.213.6.0/24');
  // Released claims are free again; claims of a removed data root are stale and taken over.
  a.releaseBridge('bt000001', 'netA');
  assert.ok(b.claimBridge('bt000001', 'netB'));
  fs.rmSync(rootA, { recursive: true });
  assert.ok(b.claimSubnet(s16, 'netB2'));
});

test('hosts and resolv.conf as docker writes them', () => {
  const base = buildHosts({ extraHosts: ['db:10.0.0.5', 'v6=[::1]', 'bad'], ips: ['172.17.0.2'], hostname: 'web.example.com' });
  assert.equal(base, [
    '127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', 'fe00::0\tip6-localnet', 'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes', 'ff02::2\tip6-allrouters', '10.0.0.5\tdb', '::1\tv6', '172.17.0.2\tweb.example.com web', '',
  ].join('\n'));
  assert.match(buildHosts({ extraHosts: [], ips: ['10.1.1.2'], hostname: 'h', domainname: 'corp' }), /10\.1\.1\.2\th\.corp h\n$/);

  const host = 'domain old.test\nsearch a.test b.test\nnameserver 127.0.0.53\nnameserver 192.0.2.1 # comment\noptions rotate\n';
  const none = { dns: [], dnsSearch: [], dnsOptions: [] };
  assert.equal(buildResolvConf(host, none), 'search a.test b.test\nnameserver 192.0.2.1\noptions rotate\n');
  assert.equal(buildResolvConf('nameserver 127.0.0.1\n', none), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  assert.equal(buildResolvConf(host, { dns: ['9.9.9.9'], dnsSearch: ['.'], dnsOptions: ['ndots:2'] }), 'nameserver 9.9.9.9\noptions ndots:2\n');
  assert.equal(buildResolvConf(host, { ...none, internalResolver: '10.89.0.1' }), 'search a.test b.test\nnameserver 10.89.0.1\noptions rotate ndots:0\n');
  assert.equal(buildResolvConf(host, { ...none, dns: ['9.9.9.9'], internalResolver: '10.89.0.1' }), 'search a.test b.test\nnameserver 10.89.0.1\noptions rotate ndots:0\n', '--dns goes upstream of the resolver');
  assert.equal(buildResolvConf(host, { ...none, hostMode: true }), 'search a.test b.test\nnameserver 127.0.0.53\nnameserver 192.0.2.1\noptions rotate\n');
});
