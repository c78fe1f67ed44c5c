// The contents of a container's /etc/hosts and /etc/resolv.conf, written as dockerd writes them.
// The containers service writes them to files under the container's directory and bind-mounts
// them (see SandboxInfo.hosts / resolvConf).

const DEFAULT_HOSTS: [string, string][] = [
  ['127.0.0.1', 'localhost'],
  ['::1', 'localhost ip6-localhost ip6-loopback'],
  ['fe00::0', 'ip6-localnet'],
  ['ff00::0', 'ip6-mcastprefix'],
  ['ff02::1', 'ip6-allnodes'],
  ['ff02::2', 'ip6-allrouters'],
];

/** docker's fallback when no usable (non-loopback) nameserver is left. */
export const DEFAULT_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

/** "name:ip" or "name=ip" (the IP may itself contain colons); docker's --add-host syntax. */
export function parseExtraHost(h: string): { name: string; ip: string } | undefined {
  const sep = h.includes('=') ? h.indexOf('=') : h.indexOf(':');
  if (sep <= 0 || sep === h.length - 1) return undefined;
  let ip = h.slice(sep + 1);
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  return { name: h.slice(0, sep), ip };
}

/**
 * The default entries, then --add-host entries, then one line per address of the container
 * (docker appends the container's own record when its endpoint joins).
 */
export function buildHosts(o: { base?: string; extraHosts: string[]; ips: string[]; hostname: string; domainname?: string }): string {
  const lines = o.base !== undefined ? o.base.replace(/\n+$/, '').split('\n') : DEFAULT_HOSTS.map(([ip, names]) => `${ip}\t${names}`);
  for (const h of o.extraHosts) {
    const e = parseExtraHost(h);
    if (e) lines.push(`${e.ip}\t${e.name}`);
  }
  let names = o.hostname;
  const fqdn = o.domainname ? `${o.hostname}.${o.domainname}` : o.hostname;
  if (fqdn.includes('.')) names = `${fqdn} ${fqdn.split('.')[0]}`;
  for (const ip of o.ips) lines.push(`${ip}\t${names}`);
  return lines.join('\n') + '\n';
}

interface HostResolv {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): HostResolv {
  const out: HostResolv = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.search = rest; // the last one wins, as in the resolver
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}

function isLoopback(ns: string): boolean {
  return ns.startsWith('127.') || ns === '::1' || ns === '0:0:0:0:0:0:0:1';
}

export interface DNSOverrides {
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
}

function render(nameservers: string[], search: string[], options: string[]): string {
  const out: string[] = [];
  if (search.length > 0) out.push(`search ${search.join(' ')}`);
  for (const ns of nameservers) out.push(`nameserver ${ns}`);
  if (options.length > 0) out.push(`options ${options.join(' ')}`);
  return out.join('\n') + '\n';
}

/**
 * resolv.conf for a container.
 * - `internalResolver`: the address of the network's DNS server (aardvark-dns on the gateway of a
 *   user-defined network). Then it is the only nameserver, as docker's 127.0.0.11, and --dns
 *   servers become the resolver's upstreams instead (netavark's dns_servers).
 * - otherwise (default bridge, none): the host's nameservers minus loopback ones (they would point
 *   into the container itself), or docker's public fallback when none remain; --dns replaces them.
 * - `host`: host networking keeps the host's file, loopback servers included.
 * --dns-search ('.' meaning none) and --dns-option replace the host's search and options.
 */
export function buildResolvConf(hostText: string, o: DNSOverrides & { internalResolver?: string; hostMode?: boolean }): string {
  const host = parseResolvConf(hostText);
  const search = o.dnsSearch.length > 0 ? o.dnsSearch.filter((s) => s !== '.') : host.search;
  let options = o.dnsOptions.length > 0 ? o.dnsOptions : host.options;
  let nameservers: string[];
  if (o.internalResolver) {
    nameservers = [o.internalResolver];
    if (o.dnsOptions.length === 0 && !options.some((x) => x.startsWith('ndots:'))) options = [...options, 'ndots:0'];
  } else if (o.dns.length > 0) {
    nameservers = o.dns;
  } else if (o.hostMode) {
    nameservers = host.nameservers;
  } else {
    nameservers = host.nameservers.filter((ns) => !isLoopback(ns));
    if (nameservers.length === 0) nameservers = DEFAULT_NAMESERVERS;
  }
  return render(nameservers, search, options);
}
