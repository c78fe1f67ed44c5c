// docker's JSON shapes for networks and endpoints.
import type { EndpointRecord, EndpointSettings, NetworkRecord } from './types';

/** The Network object of GET /networks and GET /networks/{id}. */
export function networkJSON(n: NetworkRecord, endpoints: EndpointRecord[] | undefined, nameOf: (containerID: string) => string | undefined): Record<string, unknown> {
  const containers: Record<string, unknown> = {};
  for (const e of endpoints ?? []) {
    containers[e.containerID] = {
      Name: nameOf(e.containerID) ?? e.containerID.slice(0, 12),
      EndpointID: e.endpointID,
      MacAddress: e.mac,
      IPv4Address: `${e.ip}/${e.prefixLen}`,
      IPv6Address: '',
    };
  }
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: 'local',
    Driver: n.driver,
    EnableIPv4: n.driver === 'bridge',
    EnableIPv6: false,
    IPAM: {
      Driver: 'default',
      Options: n.isDefaultBridge || n.driver !== 'bridge' ? null : n.ipamOptions,
      Config: n.pools.map((p) => ({ Subnet: p.subnet, Gateway: p.gateway, ...(p.ipRange ? { IPRange: p.ipRange } : {}) })),
    },
    Internal: n.internal,
    Attachable: n.attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: n.options,
    Labels: n.labels,
  };
}

export function endpointSettings(n: NetworkRecord, e: EndpointRecord): EndpointSettings {
  return {
    IPAMConfig: e.requestedIP ? { IPv4Address: e.requestedIP } : null,
    Links: null,
    Aliases: e.aliases.length > 0 ? e.aliases : null,
    MacAddress: e.mac,
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: n.id,
    EndpointID: e.endpointID,
    Gateway: e.gateway,
    IPAddress: e.ip,
    IPPrefixLen: e.prefixLen,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: e.dnsNames.length > 0 ? e.dnsNames : null,
  };
}
