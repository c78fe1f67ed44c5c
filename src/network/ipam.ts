// IPAM: choosing a network's subnet (from the default address pools, avoiding the host's routes,
// berth's own networks and other daemons' claims) and a container's address within it. The
// allocation itself is the endpoint row in the database (UNIQUE(network_id, ip)), written in the
// same transaction that picks the address, so a crash can neither lose nor double-give an address.
import { conflict, forbidden, invalidParameter } from '../common/errors';
import { contains, formatIP, formatSubnet, hostRange, mustParseIP, mustParseSubnet, overlaps, parseCIDR, within, type Subnet } from './ipnet';
import type { IPAMPool } from './types';

export interface AddressPool {
  base: string;
  size: number;
}

/** dockerd's default-address-pools. */
export const DEFAULT_ADDRESS_POOLS: AddressPool[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** Every candidate subnet of the pools, in order. */
export function* candidateSubnets(pools: AddressPool[]): Generator<Subnet> {
  for (const p of pools) {
    const base = mustParseSubnet(p.base, 'default address pool');
    if (p.size < base.prefix || p.size > 30) throw invalidParameter(`invalid default address pool ${p.base} with size ${p.size}`);
    const step = 2 ** (32 - p.size);
    const count = 2 ** (p.size - base.prefix);
    for (let i = 0; i < count; i++) yield { base: base.base + i * step, prefix: p.size };
  }
}

/** The first candidate that overlaps nothing in `taken`; `claim` gets the last word (host-wide). */
export function pickSubnet(pools: AddressPool[], taken: Subnet[], claim: (s: Subnet) => boolean): Subnet {
  for (const s of candidateSubnets(pools)) {
    if (taken.some((t) => overlaps(t, s))) continue;
    if (claim(s)) return s;
  }
  throw forbidden('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
}

/** Validates a user's IPAM.Config entry into a pool: docker's messages where it has them. */
export function poolFromConfig(c: { Subnet?: string; Gateway?: string; IPRange?: string }): IPAMPool & { net: Subnet } {
  if (!c.Subnet) {
    if (c.Gateway || c.IPRange) throw invalidParameter('a subnet is required when a gateway or an IP range is given');
    throw invalidParameter('missing subnet');
  }
  if (c.Subnet.includes(':')) throw invalidParameter(`IPv6 subnets are not supported by berth: ${c.Subnet}`);
  const net = mustParseSubnet(c.Subnet);
  if (net.prefix > 30) throw invalidParameter(`invalid subnet ${c.Subnet}: a subnet must have room for a gateway and a container (at most /30)`);
  const { first, last } = hostRange(net);
  let gateway = first;
  if (c.Gateway) {
    gateway = mustParseIP(c.Gateway, 'gateway address');
    if (!contains(net, gateway)) throw invalidParameter(`gateway ${c.Gateway} is not in subnet ${formatSubnet(net)}`);
    if (gateway < first || gateway > last) throw invalidParameter(`gateway ${c.Gateway} is the network or broadcast address of ${formatSubnet(net)}`);
  }
  let ipRange = '';
  if (c.IPRange) {
    const r = mustParseSubnet(c.IPRange, 'ip-range');
    if (!within(net, r)) throw invalidParameter(`ip-range ${c.IPRange} is not within subnet ${formatSubnet(net)}`);
    ipRange = formatSubnet(r);
  }
  return { subnet: formatSubnet(net), gateway: formatIP(gateway), ipRange, net };
}

/**
 * An address for a container on a network with pool `p`: the requested one (which must be inside
 * the subnet and free), or the lowest free one in the pool's IP range.
 */
export function chooseAddress(p: IPAMPool, used: Set<string>, requested: string | undefined, networkName: string): string {
  const net = parseCIDR(p.subnet)!;
  const gw = p.gateway;
  if (requested) {
    const ip = mustParseIP(requested, 'IPv4 address');
    const text = formatIP(ip);
    const { first, last } = hostRange(net);
    if (!contains(net, ip) || ip < first || ip > last) throw invalidParameter(`no configured subnet or ip-range contain the IP address ${requested}`);
    if (text === gw || used.has(text)) throw conflict(`Address already in use: ${text} on network ${networkName}`);
    return text;
  }
  const range = p.ipRange ? parseCIDR(p.ipRange)! : net;
  const outer = hostRange(net);
  const inner = hostRange(range);
  const from = Math.max(outer.first, inner.first);
  const to = Math.min(outer.last, inner.last);
  for (let ip = from; ip <= to; ip++) {
    const text = formatIP(ip);
    if (text !== gw && !used.has(text)) return text;
  }
  throw forbidden(`no available IPv4 addresses on this network's address pools: ${networkName}`);
}
