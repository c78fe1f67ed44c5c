// Network metadata in the daemon's SQLite database: networks, live endpoints (an endpoint holds
// an IP address: the IPAM state is the endpoint table, so an allocation and its release are each
// one transaction), and sandboxes (what was set up for a container, so that it can be torn down
// exactly, even by a restarted daemon).
import type { DB, MetadataDB } from '../metadata/db';
import type { EndpointRecord, NetworkDriver, NetworkRecord, PortBinding, SandboxRequest } from './types';

const SCHEMA = [
  `CREATE TABLE networks (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     driver TEXT NOT NULL,
     created TEXT NOT NULL,
     internal INTEGER NOT NULL,
     attachable INTEGER NOT NULL,
     predefined INTEGER NOT NULL,
     default_bridge INTEGER NOT NULL,
     options TEXT NOT NULL,
     labels TEXT NOT NULL,
     ipam_options TEXT NOT NULL,
     pools TEXT NOT NULL,
     bridge TEXT NOT NULL
   );
   CREATE TABLE network_sandboxes (
     container_id TEXT PRIMARY KEY,
     netns_path TEXT NOT NULL,
     mode TEXT NOT NULL,
     request TEXT NOT NULL,
     ports TEXT NOT NULL
   );
   CREATE TABLE network_endpoints (
     network_id TEXT NOT NULL REFERENCES networks(id),
     container_id TEXT NOT NULL REFERENCES network_sandboxes(container_id),
     endpoint_id TEXT NOT NULL,
     ip TEXT NOT NULL,
     prefix_len INTEGER NOT NULL,
     gateway TEXT NOT NULL,
     mac TEXT NOT NULL,
     ifname TEXT NOT NULL,
     aliases TEXT NOT NULL,
     dns_names TEXT NOT NULL,
     requested_ip TEXT NOT NULL,
     requested_mac TEXT NOT NULL,
     PRIMARY KEY (network_id, container_id),
     UNIQUE (network_id, ip)
   );
   CREATE INDEX network_endpoints_container ON network_endpoints(container_id);`,
];

interface NetworkRow {
  id: string; name: string; driver: string; created: string; internal: number; attachable: number; predefined: number;
  default_bridge: number; options: string; labels: string; ipam_options: string; pools: string; bridge: string;
}
interface EndpointRow {
  network_id: string; container_id: string; endpoint_id: string; ip: string; prefix_len: number; gateway: string; mac: string;
  ifname: string; aliases: string; dns_names: string; requested_ip: string; requested_mac: string;
}
interface SandboxRow { container_id: string; netns_path: string; mode: string; request: string; ports: string }

export interface SandboxRecord {
  containerID: string;
  netnsPath: string;
  mode: 'bridge' | 'host' | 'none';
  request: SandboxRequest;
  ports: PortBinding[];
}

export class NetworkStore {
  readonly db: DB;

  constructor(meta: MetadataDB) {
    meta.migrate('networks', SCHEMA);
    this.db = meta.db;
  }

  listNetworks(): NetworkRecord[] {
    return (this.db.prepare('SELECT * FROM networks ORDER BY created, name').all() as NetworkRow[]).map(toNetwork);
  }

  getNetwork(id: string): NetworkRecord | undefined {
    const r = this.db.prepare('SELECT * FROM networks WHERE id = ?').get(id) as NetworkRow | undefined;
    return r && toNetwork(r);
  }

  insertNetwork(n: NetworkRecord): void {
    this.db.prepare(`INSERT INTO networks (id, name, driver, created, internal, attachable, predefined, default_bridge, options, labels, ipam_options, pools, bridge)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      n.id, n.name, n.driver, n.created, +n.internal, +n.attachable, +n.predefined, +n.isDefaultBridge,
      JSON.stringify(n.options), JSON.stringify(n.labels), JSON.stringify(n.ipamOptions), JSON.stringify(n.pools), n.bridge,
    );
  }

  deleteNetwork(id: string): void {
    this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
  }

  endpointsOfNetwork(networkID: string): EndpointRecord[] {
    return (this.db.prepare('SELECT * FROM network_endpoints WHERE network_id = ? ORDER BY ip').all(networkID) as EndpointRow[]).map(toEndpoint);
  }

  endpointsOfContainer(containerID: string): EndpointRecord[] {
    return (this.db.prepare('SELECT * FROM network_endpoints WHERE container_id = ? ORDER BY ifname').all(containerID) as EndpointRow[]).map(toEndpoint);
  }

  usedIPs(networkID: string): Set<string> {
    return new Set((this.db.prepare('SELECT ip FROM network_endpoints WHERE network_id = ?').all(networkID) as { ip: string }[]).map((r) => r.ip));
  }

  insertEndpoint(e: EndpointRecord): void {
    this.db.prepare(`INSERT INTO network_endpoints (network_id, container_id, endpoint_id, ip, prefix_len, gateway, mac, ifname, aliases, dns_names, requested_ip, requested_mac)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      e.networkID, e.containerID, e.endpointID, e.ip, e.prefixLen, e.gateway, e.mac, e.ifname,
      JSON.stringify(e.aliases), JSON.stringify(e.dnsNames), e.requestedIP, e.requestedMac,
    );
  }

  setEndpointMac(networkID: string, containerID: string, mac: string): void {
    this.db.prepare('UPDATE network_endpoints SET mac = ? WHERE network_id = ? AND container_id = ?').run(mac, networkID, containerID);
  }

  deleteEndpoint(networkID: string, containerID: string): void {
    this.db.prepare('DELETE FROM network_endpoints WHERE network_id = ? AND container_id = ?').run(networkID, containerID);
  }

  getSandbox(containerID: string): SandboxRecord | undefined {
    const r = this.db.prepare('SELECT * FROM network_sandboxes WHERE container_id = ?').get(containerID) as SandboxRow | undefined;
    return r && toSandbox(r);
  }

  listSandboxes(): SandboxRecord[] {
    return (this.db.prepare('SELECT * FROM network_sandboxes').all() as SandboxRow[]).map(toSandbox);
  }

  insertSandbox(s: SandboxRecord): void {
    this.db.prepare('INSERT INTO network_sandboxes (container_id, netns_path, mode, request, ports) VALUES (?, ?, ?, ?, ?)')
      .run(s.containerID, s.netnsPath, s.mode, JSON.stringify(s.request), JSON.stringify(s.ports));
  }

  updateSandboxRequest(containerID: string, request: SandboxRequest): void {
    this.db.prepare('UPDATE network_sandboxes SET request = ? WHERE container_id = ?').run(JSON.stringify(request), containerID);
  }

  /** Removes a sandbox and all its endpoints (releasing their addresses) in one transaction. */
  deleteSandbox(containerID: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM network_endpoints WHERE container_id = ?').run(containerID);
      this.db.prepare('DELETE FROM network_sandboxes WHERE container_id = ?').run(containerID);
    })();
  }
}

function toNetwork(r: NetworkRow): NetworkRecord {
  return {
    id: r.id, name: r.name, driver: r.driver as NetworkDriver, created: r.created, internal: !!r.internal, attachable: !!r.attachable,
    predefined: !!r.predefined, isDefaultBridge: !!r.default_bridge, options: JSON.parse(r.options), labels: JSON.parse(r.labels),
    ipamOptions: JSON.parse(r.ipam_options), pools: JSON.parse(r.pools), bridge: r.bridge,
  };
}

function toEndpoint(r: EndpointRow): EndpointRecord {
  return {
    networkID: r.network_id, containerID: r.container_id, endpointID: r.endpoint_id, ip: r.ip, prefixLen: r.prefix_len, gateway: r.gateway,
    mac: r.mac, ifname: r.ifname, aliases: JSON.parse(r.aliases), dnsNames: JSON.parse(r.dns_names), requestedIP: r.requested_ip, requestedMac: r.requested_mac,
  };
}

function toSandbox(r: SandboxRow): SandboxRecord {
  return { containerID: r.container_id, netnsPath: r.netns_path, mode: r.mode as SandboxRecord['mode'], request: JSON.parse(r.request), ports: JSON.parse(r.ports) };
}
