// The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf, written under the container's
// directory and bind-mounted into it, as docker does (so the image's own files stay untouched).
import * as fs from 'node:fs';
import { writeFileAtomic } from '../common/fsutil';

const DEFAULT_HOSTS = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff00::1\tip6-allnodes',
  'ff00::2\tip6-allrouters',
];

/** docker's fallback when the host has no usable (non-loopback) nameserver. */
const DEFAULT_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

export function hostsFile(extraHosts: string[]): string {
  const lines = [...DEFAULT_HOSTS];
  for (const h of extraHosts) {
    // docker's --add-host is "name:ip" (the IP may itself contain colons) or "name=ip".
    const sep = h.includes('=') ? h.indexOf('=') : h.indexOf(':');
    if (sep <= 0) continue;
    lines.push(`${h.slice(sep + 1)}\t${h.slice(0, sep)}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * The host's resolv.conf without loopback nameservers (they would point into the container's own
 * network namespace), with the container's --dns, --dns-search, --dns-option applied.
 */
export function resolvConf(hostText: string, o: { dns: string[]; search: string[]; options: string[] }): string {
  const lines = hostText.split('\n');
  let nameservers = lines.map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((x): x is string => !!x);
  nameservers = nameservers.filter((ns) => !/^127\./.test(ns) && ns !== '::1');
  if (o.dns.length > 0) nameservers = o.dns;
  if (nameservers.length === 0) nameservers = DEFAULT_NAMESERVERS;
  let search = lines.map((l) => /^\s*(?:search|domain)\s+(.+)/.exec(l)?.[1]).filter((x): x is string => !!x).pop()?.trim().split(/\s+/) ?? [];
  if (o.search.length > 0) search = o.search.filter((s) => s !== '.');
  let options = lines.map((l) => /^\s*options\s+(.+)/.exec(l)?.[1]).filter((x): x is string => !!x).flatMap((x) => x.trim().split(/\s+/));
  if (o.options.length > 0) options = o.options;
  const out: string[] = [];
  if (search.length > 0) out.push(`search ${search.join(' ')}`);
  for (const ns of nameservers) out.push(`nameserver ${ns}`);
  if (options.length > 0) out.push(`options ${options.join(' ')}`);
  return out.join('\n') + '\n';
}

export function writeHostFiles(paths: { hostname: string; hosts: string; resolvConf: string }, o: {
  hostname: string;
  extraHosts: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
}): void {
  writeFileAtomic(paths.hostname, `${o.hostname}\n`);
  writeFileAtomic(paths.hosts, hostsFile(o.extraHosts));
  let host = '';
  try {
    host = fs.readFileSync('/etc/resolv.conf', 'utf8');
  } catch {}
  writeFileAtomic(paths.resolvConf, resolvConf(host, { dns: o.dns, search: o.dnsSearch, options: o.dnsOptions }));
}
