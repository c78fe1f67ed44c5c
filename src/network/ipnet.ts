// IPv4 address arithmetic for IPAM: addresses as unsigned 32-bit numbers, subnets as
// (network, prefix). IPv6 is not supported by berth's networks yet (docker's default is IPv4-only).
import { invalidParameter } from '../common/errors';

export interface Subnet {
  /** The network address (host bits zero). */
  base: number;
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIP(text: string): number | undefined {
  const m = IPV4.exec(text.trim());
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  // No leading zeros: "010.0.0.1" is octal to some parsers and decimal to others.
  if (m.slice(1).some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function formatIP(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "a.b.c.d/n"; `strict` rejects host bits (docker accepts and masks them for --subnet). */
export function parseCIDR(text: string): (Subnet & { addr: number }) | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseIP(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (addr === undefined || !/^\d{1,2}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > 32) return undefined;
  return { addr, base: (addr & mask(prefix)) >>> 0, prefix };
}

export function mustParseSubnet(text: string, what = 'subnet'): Subnet {
  const s = parseCIDR(text);
  if (!s) throw invalidParameter(`invalid ${what} ${text} : invalid CIDR address: ${text}`);
  return { base: s.base, prefix: s.prefix };
}

export function mustParseIP(text: string, what = 'IP address'): number {
  const n = parseIP(text);
  if (n === undefined) throw invalidParameter(`invalid ${what}: ${JSON.stringify(text)}`);
  return n;
}

export function formatSubnet(s: Subnet): string {
  return `${formatIP(s.base)}/${s.prefix}`;
}

export function size(s: Subnet): number {
  return 2 ** (32 - s.prefix);
}

export function contains(s: Subnet, ip: number): boolean {
  return ((ip & mask(s.prefix)) >>> 0) === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

/** The subnet of `s` containing `inner` entirely, i.e. inner is a sub-range of s. */
export function within(outer: Subnet, inner: Subnet): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.base);
}

/** The usable host range: network and broadcast addresses excluded (except /31 and /32). */
export function hostRange(s: Subnet): { first: number; last: number } {
  if (s.prefix >= 31) return { first: s.base, last: s.base + size(s) - 1 };
  return { first: s.base + 1, last: s.base + size(s) - 2 };
}
