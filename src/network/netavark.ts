// Drives netavark (Podman's network stack, Debian's netavark 1.4): it reads a JSON description of
// a container's networks on stdin and sets up (or tears down) the bridge, the veth pair, the
// addresses we allocated, the iptables NAT / port-forward rules, and aardvark-dns entries.
//
// Facts about netavark 1.4 this relies on (checked against the binary):
// - `netavark --config DIR -a AARDVARK setup NETNS` prints {"<network name>": StatusBlock} on
//   success, {"error": "..."} on stdout with a non-zero exit on failure.
// - iptables chain names are a hash of the network *name*; berth passes the network ID as the
//   name so that two daemons with a network of the same name never share chains.
// - the bridge is created on first setup and removed by the teardown that empties it; rules of a
//   network go with it. The global NETAVARK_FORWARD / NETAVARK-HOSTPORT-* chains stay (shared).
// - aardvark-dns is started (and told of changes with SIGHUP) by netavark, with its state in
//   DIR/aardvark-dns; it listens on each DNS-enabled network's gateway, port 53.
// - port forwarding from 127.0.0.1 works: netavark sets route_localnet=1 on the bridge.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { systemError } from '../common/errors';

export const NETAVARK_PATHS = ['/usr/lib/podman/netavark', '/usr/libexec/podman/netavark'];
export const AARDVARK_PATHS = ['/usr/lib/podman/aardvark-dns', '/usr/libexec/podman/aardvark-dns'];

export function findBinary(candidates: string[]): string | undefined {
  return candidates.find((p) => fs.existsSync(p));
}

/** netavark's types::Network. */
export interface NvNetwork {
  name: string;
  id: string;
  driver: 'bridge';
  network_interface: string;
  subnets: { subnet: string; gateway?: string; lease_range?: { start_ip?: string; end_ip?: string } }[];
  ipv6_enabled: boolean;
  internal: boolean;
  dns_enabled: boolean;
  options?: Record<string, string>;
  ipam_options: Record<string, string>;
}

export interface NvPerNetwork {
  interface_name: string;
  static_ips: string[];
  aliases?: string[];
  static_mac?: string;
}

export interface NvPortMapping {
  host_ip: string;
  container_port: number;
  host_port: number;
  range: number;
  protocol: string;
}

/** netavark's types::NetworkOptions (the stdin document). */
export interface NvOptions {
  container_id: string;
  container_name: string;
  networks: Record<string, NvPerNetwork>;
  network_info: Record<string, NvNetwork>;
  port_mappings?: NvPortMapping[];
  dns_servers?: string[];
}

export interface NvStatus {
  dns_search_domains?: string[];
  dns_server_ips?: string[];
  interfaces?: Record<string, { mac_address: string; subnets?: { ipnet: string; gateway?: string }[] }>;
}

export class Netavark {
  constructor(
    readonly binary: string,
    readonly aardvark: string | undefined,
    /** netavark's --config: aardvark-dns keeps its per-network files and pid here. */
    readonly configDir: string,
  ) {}

  setup(netnsPath: string, opts: NvOptions): Promise<Record<string, NvStatus>> {
    return this.run('setup', netnsPath, opts) as Promise<Record<string, NvStatus>>;
  }

  async teardown(netnsPath: string, opts: NvOptions): Promise<void> {
    await this.run('teardown', netnsPath, opts);
  }

  private run(cmd: 'setup' | 'teardown', netnsPath: string, opts: NvOptions): Promise<unknown> {
    const args = ['--config', this.configDir, ...(this.aardvark ? ['--aardvark-binary', this.aardvark] : []), cmd, netnsPath];
    return new Promise((resolve, reject) => {
      // aardvark-dns, when netavark starts it, detaches with its stdio on /dev/null, so waiting
      // for our pipes to close does not wait for the DNS server.
      const p = spawn(this.binary, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      p.stdout.on('data', (b: Buffer) => out.push(b));
      p.stderr.on('data', (b: Buffer) => err.push(b));
      const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
      p.on('error', (e) => {
        clearTimeout(timer);
        reject(systemError(`netavark ${cmd}: ${e.message}`, e));
      });
      p.on('close', (code) => {
        clearTimeout(timer);
        const stdout = Buffer.concat(out).toString().trim();
        if (code === 0) {
          try {
            resolve(stdout === '' ? {} : JSON.parse(stdout));
          } catch {
            reject(systemError(`netavark ${cmd}: unreadable output: ${stdout.slice(0, 200)}`));
          }
          return;
        }
        let msg = stdout;
        try {
          msg = (JSON.parse(stdout) as { error?: string }).error ?? stdout;
        } catch {}
        // netavark's stderr carries env_logger output and a syslog complaint; keep the meaningful part.
        const stderr = Buffer.concat(err).toString().split('\n').filter((l) => l && !l.includes('failed to connect to syslog')).join('; ');
        reject(systemError(`netavark ${cmd} failed: ${msg || stderr || `exit status ${code}`}`));
      });
      p.stdin.on('error', () => {});
      p.stdin.end(JSON.stringify(opts));
    });
  }
}
