// The networking subsystem's data and its interfaces to the rest of berth.

export type NetworkDriver = 'bridge' | 'host' | 'null';

export interface IPAMPool {
  /** CIDR, host bits zero. */
  subnet: string;
  gateway: string;
  /** CIDR inside subnet from which container addresses are given, or '' for the whole subnet. */
  ipRange: string;
}

export interface NetworkRecord {
  id: string;
  name: string;
  driver: NetworkDriver;
  created: string;
  internal: boolean;
  attachable: boolean;
  /** The predefined bridge, host and none networks cannot be removed. */
  predefined: boolean;
  /** The default bridge (docker0-like): no DNS, legacy behaviour. */
  isDefaultBridge: boolean;
  options: Record<string, string>;
  labels: Record<string, string>;
  ipamOptions: Record<string, string>;
  /** Whether the pools were given by the user (IPAM.Config echoes only what was asked, as docker). */
  pools: IPAMPool[];
  /** Host bridge interface name ('' for host/none). */
  bridge: string;
}

/** docker's EndpointSettings.IPAMConfig / the per-network part of a container's config. */
export interface EndpointRequest {
  /** Static address (--ip). */
  ipv4Address?: string;
  aliases?: string[];
  macAddress?: string;
}

export interface EndpointRecord {
  networkID: string;
  containerID: string;
  endpointID: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  mac: string;
  ifname: string;
  aliases: string[];
  dnsNames: string[];
  /** What was asked (--ip), echoed as IPAMConfig. */
  requestedIP: string;
  requestedMac: string;
}

/** docker's EndpointSettings, as NetworkSettings.Networks[name] in container inspect. */
export interface EndpointSettings {
  IPAMConfig: { IPv4Address?: string } | null;
  Links: string[] | null;
  Aliases: string[] | null;
  MacAddress: string;
  DriverOpts: Record<string, string> | null;
  GwPriority: number;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  DNSNames: string[] | null;
}

/** One requested port publication, as HostConfig.PortBindings["80/tcp"][i]. */
export interface PortBindingRequest {
  containerPort: number;
  protocol: 'tcp' | 'udp';
  /** '' for all addresses. */
  hostIP: string;
  /** 0 for a random port from the ephemeral range. */
  hostPort: number;
}

export interface PortBinding {
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIP: string;
  hostPort: number;
}

/** What the containers service asks for when a container starts. */
export interface SandboxRequest {
  containerID: string;
  /** The container's name without the leading slash (its DNS name on user networks). */
  containerName: string;
  hostname: string;
  domainname?: string;
  /**
   * HostConfig.NetworkMode: 'default'/'bridge', 'host', 'none', or a network name/ID. ('container:x'
   * is the containers service's business: it joins x's netns and reuses x's hosts/resolv.conf.)
   */
  networkMode: string;
  /** NetworkingConfig.EndpointsConfig plus networks connected later: network name or ID → request. */
  networks: Record<string, EndpointRequest>;
  ports: PortBindingRequest[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  /** --add-host entries, "name:ip" or "name=ip". */
  extraHosts: string[];
}

export interface SandboxInfo {
  containerID: string;
  /** The network namespace to put in the OCI spec (namespaces: network, path); null for host mode. */
  netnsPath: string | null;
  mode: 'bridge' | 'host' | 'none';
  /** Network name → endpoint, as NetworkSettings.Networks. */
  networks: Record<string, EndpointSettings>;
  /** NetworkSettings.Ports: "80/tcp" → bindings (or null when exposed but not published). */
  ports: Record<string, { HostIp: string; HostPort: string }[] | null>;
  /** The file contents to bind-mount at /etc/hosts and /etc/resolv.conf. */
  hosts: string;
  resolvConf: string;
}

/**
 * The part of the containers service the /networks routes call for connect and disconnect: it
 * resolves the container, records the change in the container's config and, when the container is
 * running, calls NetworkService.connectSandbox / disconnectSandbox.
 */
export interface ContainerNetworking {
  connectContainer(containerRef: string, network: NetworkRecord, req: EndpointRequest): Promise<void>;
  disconnectContainer(containerRef: string, network: NetworkRecord, force: boolean): Promise<void>;
  /** Container ID → name (without slash), for network inspect's Containers map. */
  containerName(containerID: string): string | undefined;
}
