// Shared pieces of the network tests: unique bridge names and subnets per test, host state
// snapshots (links, iptables rules) to prove teardown leaves nothing behind, and processes run
// inside a test's network namespaces, killed by PID.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

export function bridgeName(): string {
  return `bt${randomBytes(3).toString('hex')}`;
}

/**
 * A /24 inside 10.213.0.0/16 for one test. Files use separate halves (api: 0-127, sandbox:
 * 128-255) and a random octet within, skipping subnets the host already routes.
 */
export function testSubnet(half: 'low' | 'high', avoid: Set<number> = new Set()): { octet: number; subnet: string; gateway: string } {
  const routes = fs.readFileSync('/proc/net/route', 'utf8');
  for (;;) {
    const octet = (half === 'low' ? 0 : 128) + Math.floor(Math.random() * 128);
    if (avoid.has(octet)) continue;
    // /proc/net/route prints 10.213.X.0 as little-endian hex: 00 X D5 0A.
    const hex = `00${octet.toString(16).padStart(2, '0')}D50A`.toUpperCase();
    if (routes.includes(hex)) continue;
    avoid.add(octet);
    return { octet, subnet: `10.213.${octet}.0/24`, gateway: `10.213.${octet}.1` };
  }
}

export function linkNames(): string[] {
  return fs.readdirSync('/sys/class/net').sort();
}

/**
 * iptables rules that are not netavark's host-wide scaffolding (the shared NETAVARK_FORWARD and
 * NETAVARK-HOSTPORT-* chains, which netavark deliberately leaves in place for every network).
 */
export function iptablesRules(): string[] {
  const out = execFileSync('iptables-save', { encoding: 'utf8' });
  const shared = [
    ':NETAVARK_FORWARD', ':NETAVARK-HOSTPORT-DNAT', ':NETAVARK-HOSTPORT-MASQ', ':NETAVARK-HOSTPORT-SETMARK',
    '-A FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD',
    '-A PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT',
    '-A OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT',
    '-A POSTROUTING -j NETAVARK-HOSTPORT-MASQ',
    '-A NETAVARK-HOSTPORT-MASQ -m comment --comment "netavark portfw masq mark" -m mark --mark 0x2000/0x2000 -j MASQUERADE',
    '-A NETAVARK-HOSTPORT-SETMARK -j MARK --set-xmark 0x2000/0x2000',
  ];
  return out.split('\n').filter((l) => l && !l.startsWith('#') && !shared.some((s) => l.startsWith(s)) && l !== 'COMMIT' && !l.startsWith('*'))
    .map((l) => l.replace(/\[\d+:\d+\]/, ''));
}

/** Rules mentioning any of the given strings (subnets, bridge names, container IDs). */
export function rulesMentioning(needles: string[]): string[] {
  return iptablesRules().filter((l) => needles.some((n) => l.includes(n)));
}

/** Runs a command inside a netns and returns its output; throws with stderr on failure. */
export function inNetns(netns: string, args: string[], timeoutMs = 10_000): string {
  return execFileSync('nsenter', [`--net=${netns}`, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts a long-running process inside a netns (nsenter execs it, so the PID is the process's). */
export function spawnInNetns(netns: string, args: string[]): ChildProcess {
  return spawn('nsenter', [`--net=${netns}`, ...args], { stdio: 'ignore' });
}

export function killByPid(p: ChildProcess | undefined): void {
  if (p?.pid && p.exitCode === null && p.signalCode === null) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
  }
}

export function httpGet(host: string, port: number, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Retries fn until it stops throwing (a server inside a netns takes a moment to listen). */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** PIDs of aardvark-dns processes whose config dir is under `root`. */
export function aardvarkPids(root: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes('aardvark-dns') && cmd.includes(root)) {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (!/\) Z /.test(stat)) out.push(Number(d));
      }
    } catch {}
  }
  return out;
}
