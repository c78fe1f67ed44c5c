// Host-wide claims on bridge names and subnets, so that two berthd instances on one host (each with
// its own data root and database) never pick the same bridge or an overlapping subnet. netavark
// creates a bridge only when the first container joins it, so the host's routing table alone
// cannot tell that another daemon already chose a subnet; these claims can.
//
// A claim is a small file in a shared directory (on /run, so it does not outlive a reboot; the
// daemon re-claims its networks at start). It names the data root that owns it; a claim whose data
// root no longer exists is stale and may be taken over.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hasCode } from '../common/errors';
import { mkdirp, writeFileAtomic } from '../common/fsutil';
import { formatSubnet, overlaps, parseCIDR, type Subnet } from './ipnet';

export const DEFAULT_CLAIMS_DIR = '/run/berth-network-claims';

interface ClaimBody {
  dataRoot: string;
  networkID: string;
}

export class HostClaims {
  constructor(
    private readonly dir: string,
    private readonly dataRoot: string,
  ) {
    mkdirp(dir, 0o755);
    this.removeStale();
  }

  /** Drops claims whose data root is gone (a removed test daemon, say), so the directory stays small. */
  private removeStale(): void {
    for (const f of fs.readdirSync(this.dir)) {
      const b = this.read(f);
      if (b && this.isStale(b)) fs.rmSync(path.join(this.dir, f), { force: true });
    }
  }

  /** Claims a bridge name for a network; false when another live data root holds it. */
  claimBridge(name: string, networkID: string): boolean {
    return this.claimFile(`bridge-${name}`, networkID);
  }

  /**
   * Claims a subnet: false when it overlaps a subnet another live data root holds. The claim is
   * made first and checked after, so two daemons racing for overlapping subnets can both lose but
   * never both win.
   */
  claimSubnet(s: Subnet, networkID: string): boolean {
    const file = `subnet-${formatSubnet(s).replace('/', '_')}`;
    if (!this.claimFile(file, networkID)) return false;
    for (const other of this.subnetClaims()) {
      if (other.file === file || !overlaps(other.subnet, s)) continue;
      if (this.isOurs(other.body) || this.isStale(other.body)) continue;
      this.releaseFile(file, networkID);
      return false;
    }
    return true;
  }

  /** Subnets claimed by other live data roots (for choosing a free pool). */
  foreignSubnets(): Subnet[] {
    return this.subnetClaims().filter((c) => !this.isOurs(c.body) && !this.isStale(c.body)).map((c) => c.subnet);
  }

  releaseBridge(name: string, networkID: string): void {
    this.releaseFile(`bridge-${name}`, networkID);
  }

  releaseSubnet(s: Subnet, networkID: string): void {
    this.releaseFile(`subnet-${formatSubnet(s).replace('/', '_')}`, networkID);
  }

  private subnetClaims(): { file: string; subnet: Subnet; body: ClaimBody }[] {
    const out: { file: string; subnet: Subnet; body: ClaimBody }[] = [];
    for (const f of fs.readdirSync(this.dir)) {
      if (!f.startsWith('subnet-')) continue;
      const s = parseCIDR(f.slice('subnet-'.length).replace('_', '/'));
      const body = this.read(f);
      if (s && body) out.push({ file: f, subnet: { base: s.base, prefix: s.prefix }, body });
    }
    return out;
  }

  private claimFile(file: string, networkID: string): boolean {
    const full = path.join(this.dir, file);
    const body = JSON.stringify({ dataRoot: this.dataRoot, networkID } satisfies ClaimBody);
    try {
      fs.writeFileSync(full, body, { flag: 'wx', mode: 0o644 });
      return true;
    } catch (err) {
      if (!hasCode(err, 'EEXIST')) throw err;
    }
    const existing = this.read(file);
    if (existing && existing.dataRoot === this.dataRoot && existing.networkID === networkID) return true;
    if (existing && !this.isStale(existing)) return false;
    if (!existing) {
      // Unreadable: possibly another daemon's claim being written right now. Only an old
      // unreadable file (a crash mid-write) may be taken over.
      try {
        if (Date.now() - fs.statSync(full).mtimeMs < 10_000) return false;
      } catch {}
    }
    // Stale (its data root is gone) or long broken: take it over.
    writeFileAtomic(full, body);
    return true;
  }

  private releaseFile(file: string, networkID: string): void {
    const existing = this.read(file);
    if (existing && existing.dataRoot === this.dataRoot && existing.networkID === networkID) fs.rmSync(path.join(this.dir, file), { force: true });
  }

  private read(file: string): ClaimBody | undefined {
    try {
      const b = JSON.parse(fs.readFileSync(path.join(this.dir, file), 'utf8')) as ClaimBody;
      return typeof b.dataRoot === 'string' ? b : undefined;
    } catch {
      return undefined;
    }
  }

  private isOurs(b: ClaimBody): boolean {
    return b.dataRoot === this.dataRoot;
  }

  private isStale(b: ClaimBody): boolean {
    return !fs.existsSync(b.dataRoot);
  }
}

/** IPv4 routes of the host (from /proc/net/route): a new subnet must not overlap any of them. */
export function hostRoutes(): Subnet[] {
  let text = '';
  try {
    text = fs.readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const out: Subnet[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const dest = leHex(f[1]);
    const m = leHex(f[7]);
    if (m === 0) continue; // the default route overlaps everything by definition
    let prefix = 0;
    while (prefix < 32 && ((m << prefix) & 0x80000000) !== 0) prefix++;
    out.push({ base: dest, prefix });
  }
  return out;
}

/** /proc/net/route writes addresses as the little-endian hex of the in-memory value. */
function leHex(h: string): number {
  const n = parseInt(h, 16);
  return (((n & 0xff) << 24) | (((n >>> 8) & 0xff) << 16) | (((n >>> 16) & 0xff) << 8) | ((n >>> 24) & 0xff)) >>> 0;
}
