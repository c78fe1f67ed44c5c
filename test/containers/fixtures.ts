// Shared fixtures for container tests: a busybox image imported from the host's static busybox,
// and a daemon whose containers, mounts, conmons and cgroups are all cleaned up by pid and path
// even when a test fails.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as tar from 'tar-stream';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';

let tarCache: Buffer | undefined;

/** A rootfs tar: /bin/busybox with a symlink per applet, /etc/passwd and /etc/group. */
export async function busyboxTar(): Promise<Buffer> {
  if (tarCache) return tarCache;
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  const mtime = new Date(0);
  for (const d of ['bin', 'etc', 'tmp', 'root', 'usr', 'usr/bin', 'sbin', 'home']) pack.entry({ name: d, type: 'directory', mode: d === 'tmp' ? 0o1777 : 0o755, mtime });
  pack.entry({ name: 'bin/busybox', mode: 0o755, mtime }, fs.readFileSync('/bin/busybox'));
  const applets = execFileSync('/bin/busybox', ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) pack.entry({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox', mtime });
  pack.entry({ name: 'etc/passwd', mode: 0o644, mtime }, 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  pack.entry({ name: 'etc/group', mode: 0o644, mtime }, 'root:x:0:\ndaemon:x:1:\ntty:x:5:\nstaff:x:50:nobody\nnogroup:x:65534:\n');
  pack.finalize();
  await done;
  tarCache = Buffer.concat(chunks);
  return tarCache;
}

/** Imports busybox:latest (CMD ["sh"]) into the daemon. */
export async function importBusybox(d: TestDaemon, repo = 'busybox'): Promise<void> {
  const changes = encodeURIComponent('CMD ["sh"]');
  const r = await api(d.socket, 'POST', `/images/create?fromSrc=-&repo=${repo}&tag=latest&changes=${changes}`, await busyboxTar(), { 'Content-Type': 'application/x-tar' });
  if (r.status !== 200) throw new Error(`import failed: ${r.status} ${r.body.toString()}`);
}

export { mountsUnder, pidsMentioning, cgroupDirsOf } from '../helpers/cleanup';

const CLAIMS_DIR = '/run/berth-network-claims';

/**
 * A free /24 in 10.214.0.0/16 for one test daemon's network: not routed on the host, not claimed
 * by another berthd, not in `avoid` (which it joins). Container tests get bridge networking by
 * default, so every test daemon needs a default bridge of its own.
 */
export function testSubnet(avoid: Set<number> = new Set()): { subnet: string; gateway: string } {
  const routes = fs.readFileSync('/proc/net/route', 'utf8');
  let claims: string[] = [];
  try { claims = fs.readdirSync(CLAIMS_DIR); } catch {}
  for (let i = 0; i < 1000; i++) {
    const octet = Math.floor(Math.random() * 256);
    // /proc/net/route prints 10.214.X.0 as little-endian hex: 00 X D6 0A.
    const hex = `00${octet.toString(16).padStart(2, '0')}D60A`.toUpperCase();
    if (avoid.has(octet) || routes.includes(hex) || claims.includes(`subnet-10.214.${octet}.0_24`)) continue;
    avoid.add(octet);
    return { subnet: `10.214.${octet}.0/24`, gateway: `10.214.${octet}.1` };
  }
  throw new Error('no free test subnet in 10.214.0.0/16');
}

/** The daemon.json settings giving a test daemon its own default bridge and subnet. */
export function bridgeConfig(avoid?: Set<number>): { bridge: string; bip: string } {
  const s = testSubnet(avoid);
  return { bridge: `bc${randomBytes(4).toString('hex')}`, bip: `${s.gateway}/24` };
}

/** The daemon's bridge networks (the default one and user-defined ones), asked while it runs. */
async function bridgesOf(d: TestDaemon): Promise<{ id: string; bridge: string; subnets: string[] }[]> {
  const r = await api(d.socket, 'GET', '/networks');
  if (r.status !== 200) return [];
  return r.json<{ Id: string; Driver: string; Options: Record<string, string>; IPAM: { Config: { Subnet: string }[] } }[]>()
    .filter((n) => n.Driver === 'bridge')
    .map((n) => ({ id: n.Id, bridge: n.Options['com.docker.network.bridge.name'] ?? `br-${n.Id.slice(0, 12)}`, subnets: n.IPAM.Config.map((c) => c.Subnet) }));
}

/**
 * Removes what a test daemon's networking may leave on the host. While the daemon answers, its
 * containers are force-removed through it (so netavark tears their rules down); then, whatever
 * happened, its bridges are deleted, any iptables rule naming its subnets or bridges goes, and
 * its claims on bridge names and subnets are dropped.
 */
export async function cleanupNetworking(d: TestDaemon, known: { bridges: string[]; subnets: string[] }): Promise<void> {
  const bridges = new Set(known.bridges);
  const subnets = new Set(known.subnets);
  const networkIDs: string[] = [];
  try {
    for (const n of await bridgesOf(d)) {
      bridges.add(n.bridge);
      n.subnets.forEach((s) => subnets.add(s));
      networkIDs.push(n.id);
    }
    const list = await api(d.socket, 'GET', '/containers/json?all=1');
    if (list.status === 200) {
      for (const c of list.json<{ Id: string }[]>()) await api(d.socket, 'DELETE', `/containers/${c.Id}?force=1`).catch(() => {});
    }
  } catch {}
  await destroyDaemon(d);
  for (const b of bridges) {
    if (fs.existsSync(`/sys/class/net/${b}`)) try { execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' }); } catch {}
  }
  // A /24's rules name the subnet or one of its addresses ("10.214.7." matches both); port
  // forwarding rules name the network ID in a comment.
  const needles = [...bridges, ...networkIDs, ...[...subnets].map((s) => (s.endsWith('.0/24') ? s.slice(0, -'0/24'.length) : s))];
  for (const table of ['nat', 'filter']) {
    let dump = '';
    try { dump = execFileSync('iptables-save', ['-t', table], { encoding: 'utf8' }); } catch { continue; }
    // netavark's per-network chains (NETAVARK-<hash>, NETAVARK-DN-<hash>) that the removed rules
    // jumped to go too; its host-wide scaffolding chains have other names and stay.
    const chains = new Set<string>();
    const lines = dump.split('\n').filter((l) => l.startsWith('-A '));
    const doomed = lines.filter((l) => needles.some((n) => l.includes(n)));
    for (const line of doomed) {
      for (const m of line.matchAll(/(?:^-A | -j )(NETAVARK-(?:DN-)?[0-9A-F]{13})\b/g)) chains.add(m[1]);
    }
    // Also the jumps into those chains (a daemon that died cannot say which network IDs it had).
    for (const line of lines) {
      const jump = / -j (NETAVARK-(?:DN-)?[0-9A-F]{13})\b/.exec(line);
      if (jump && chains.has(jump[1]) && !doomed.includes(line)) doomed.push(line);
    }
    for (const line of doomed) {
      try { execFileSync('sh', ['-c', `iptables -t ${table} ${line.replace(/^-A /, '-D ')}`], { stdio: 'ignore' }); } catch {}
    }
    for (const c of chains) {
      try { execFileSync('iptables', ['-t', table, '-F', c], { stdio: 'ignore' }); execFileSync('iptables', ['-t', table, '-X', c], { stdio: 'ignore' }); } catch {}
    }
  }
  try {
    for (const f of fs.readdirSync(CLAIMS_DIR)) {
      try {
        if ((JSON.parse(fs.readFileSync(`${CLAIMS_DIR}/${f}`, 'utf8')) as { dataRoot?: string }).dataRoot === d.dataRoot) fs.rmSync(`${CLAIMS_DIR}/${f}`, { force: true });
      } catch {}
    }
  } catch {}
}

export interface CtrEnv {
  d: TestDaemon;
  cgroupParent: string;
  /** The daemon's default bridge interface and its subnet. */
  bridge: string;
  subnet: string;
  docker(args: string[], opts?: { input?: Buffer | string; timeoutMs?: number }): ReturnType<typeof docker>;
  /** Runs the docker CLI and fails the test unless it exits 0; gives its stdout. */
  ok(args: string[], input?: string): Promise<string>;
  /** Idempotent; call it from the test file's top-level after(). */
  cleanup(): Promise<void>;
}

/**
 * A daemon with busybox imported, in its own cgroup parent. cleanup() (register it with a
 * top-level after(), or t.after) stops the daemon, kills every process of its containers by pid (conmons by their command line,
 * container processes by cgroup), unmounts what is mounted under its dirs, removes its cgroups
 * and its temp dir.
 */
export async function setupDaemon(name: string, opts: { config?: Record<string, unknown>; subnets?: string[]; dirMode?: number } = {}): Promise<CtrEnv> {
  const net = bridgeConfig();
  const subnet = net.bip.replace(/\.1\/24$/, '.0/24');
  const d = await startDaemon({ name: `ctr-${name}`, config: { ...net, ...(opts.config ?? {}) }, dirMode: opts.dirMode });
  const cgroupParent = d.cgroupParent;
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await cleanupNetworking(d, { bridges: [net.bridge], subnets: [subnet, ...(opts.subnets ?? [])] });
  };
  const env: CtrEnv = {
    d,
    cgroupParent,
    bridge: net.bridge,
    subnet,
    docker: (args, opts) => docker(d, args, opts),
    ok: async (args, input) => {
      const r = await docker(d, args, { input });
      assert.equal(r.code, 0, `docker ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    cleanup,
  };
  try {
    await importBusybox(d);
  } catch (err) {
    await cleanup();
    throw err;
  }
  return env;
}

/** Entry names of a tar archive. */
export async function tarNames(buf: Buffer): Promise<string[]> {
  const names: string[] = [];
  const ex = tar.extract();
  ex.on('entry', (h, stream, next) => {
    names.push(h.name.replace(/^\.\//, '').replace(/\/$/, ''));
    stream.on('end', next);
    stream.resume();
  });
  const done = new Promise<void>((resolve, reject) => {
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  ex.end(buf);
  await done;
  return names;
}

/** The fields of GET /containers/{id}/json that the tests read. */
export interface ContainerJSON {
  Name: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number; StartedAt: string; FinishedAt: string };
  RestartCount: number;
  Driver: string;
  Platform: string;
  Config: { Labels: Record<string, string>; Cmd: string[] };
  HostConfig: { RestartPolicy: { Name: string } };
  GraphDriver: { Data: { UpperDir: string } };
}

/** GET /containers/{ref}/json, which must answer 200. */
export async function inspectContainer(env: CtrEnv, ref: string): Promise<ContainerJSON> {
  const r = await api(env.d.socket, 'GET', `/containers/${ref}/json`);
  assert.equal(r.status, 200, r.body.toString());
  return r.json<ContainerJSON>();
}

/** Polls fn until it is true; throws naming `what` after ms. */
export async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
