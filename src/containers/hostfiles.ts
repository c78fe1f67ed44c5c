// The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf, written under the container's
// directory and bind-mounted into it, as docker does (so the image's own files stay untouched).
// These loopback-only versions are what a container without a network sandbox gets; one with a
// sandbox gets the sandbox's own files (src/network/hostfiles.ts, with its addresses) instead.
import * as fs from 'node:fs';
import { writeFileReplace } from '../common/fsutil';
import { buildHosts, buildResolvConf } from '../network/hostfiles';

/** Loopback-only /etc/hosts (docker's defaults plus --add-host entries), for containers without a sandbox. */
export function hostsFile(extraHosts: string[]): string {
  return buildHosts({ extraHosts, ips: [], hostname: '' });
}

/**
 * The host's resolv.conf without loopback nameservers (they would point into the container's own
 * network namespace), with the container's --dns, --dns-search, --dns-option applied.
 */
export function resolvConf(hostText: string, o: { dns: string[]; search: string[]; options: string[] }): string {
  return buildResolvConf(hostText, { dns: o.dns, dnsSearch: o.search, dnsOptions: o.options });
}

/**
 * For files that are written afresh at every container start (hosts, resolv.conf, the bundle's
 * config.json): atomic, no fsync (common/fsutil's writeFileReplace); a crash can at worst lose a
 * file that the next start rewrites anyway.
 */
export const writeRegeneratedFile = writeFileReplace;

export function writeHostFiles(paths: { hostname: string; hosts: string; resolvConf: string }, o: {
  hostname: string;
  extraHosts: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
}, opts: { hostnameOnly?: boolean } = {}): void {
  writeRegeneratedFile(paths.hostname, `${o.hostname}\n`);
  if (opts.hostnameOnly) return;
  writeRegeneratedFile(paths.hosts, hostsFile(o.extraHosts));
  let host = '';
  try {
    host = fs.readFileSync('/etc/resolv.conf', 'utf8');
  } catch {}
  writeRegeneratedFile(paths.resolvConf, resolvConf(host, { dns: o.dns, search: o.dnsSearch, options: o.dnsOptions }));
}
