// Isolation between the bridge networks of one berthd, as dockerd's DOCKER-ISOLATION-STAGE-1/2
// chains do: a packet that enters from one of our bridges and leaves through another of our
// bridges is dropped. Traffic within one bridge, to the outside world, and to published ports
// (DNAT'd by netavark, so `--ctstate DNAT`) passes; a container on two networks has an interface
// on each and needs no forwarding.
//
// The rules live in the *mangle* table's FORWARD chain, in two chains of this daemon's own:
//   mangle FORWARD:  -m comment --comment "berth bridge isolation <data root>" -j BERTH-ISO1-<h>   (first)
//   BERTH-ISO1-<h>:  -m conntrack --ctstate DNAT -j RETURN
//                    -i <br> ! -o <br> -j BERTH-ISO2-<h>      one per bridge network
//   BERTH-ISO2-<h>:  -o <br> -j DROP                          one per bridge network
// Why mangle: netavark 1.4 owns filter FORWARD, and it *inserts* its NETAVARK_FORWARD jump at
// position 1 whenever the jump is missing (checked: first setup on a host, and after the jump was
// deleted); NETAVARK_FORWARD accepts everything from a network's subnet, so a chain of ours in
// filter FORWARD could be overtaken. mangle FORWARD is traversed before filter FORWARD and
// netavark 1.4 never touches the mangle table.
//
// <h> is a hash of the data root, so each berthd owns its chains outright: two daemons never
// edit or remove each other's rules (networks of different daemons are not isolated from each
// other). The whole state is rewritten in one iptables-restore --noflush transaction (a `:CHAIN`
// line flushes an existing chain), under the xtables lock (-w). With fewer than two bridge
// networks nothing needs isolating, and the chains and the jump are removed, so a daemon left
// with only its default bridge leaves no trace in the ruleset.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Logger } from '../common/logger';

/** The jump's comment names the data root (so a human can tell whose chain it is). */
export function isolationComment(dataRoot: string): string {
  return `berth bridge isolation ${dataRoot.replace(/[^A-Za-z0-9_./-]/g, '_').slice(0, 200)}`;
}

/** Runs a command, resolves with its stdout; rejects with its stderr. */
function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new Error(`${cmd} ${args.join(' ')}: ${Buffer.concat(err).toString().trim() || `exit status ${code}`}`));
    });
    p.stdin.on('error', () => {});
    p.stdin.end(input ?? '');
  });
}

export interface IsolationChains { stage1: string; stage2: string; comment: string }

export function isolationChains(dataRoot: string): IsolationChains {
  const h = createHash('sha256').update(dataRoot).digest('hex').toUpperCase().slice(0, 12);
  return { stage1: `BERTH-ISO1-${h}`, stage2: `BERTH-ISO2-${h}`, comment: isolationComment(dataRoot) };
}

/** The rules (as `iptables -S` prints them) that isolate the given bridges from each other. */
export function isolationRules(chains: IsolationChains, bridges: string[]): string[] {
  if (bridges.length < 2) return [];
  return [
    `-A FORWARD -m comment --comment "${chains.comment}" -j ${chains.stage1}`,
    `-A ${chains.stage1} -m conntrack --ctstate DNAT -j RETURN`,
    ...bridges.map((b) => `-A ${chains.stage1} -i ${b} ! -o ${b} -j ${chains.stage2}`),
    ...bridges.map((b) => `-A ${chains.stage2} -o ${b} -j DROP`),
  ];
}

export class BridgeIsolation {
  readonly chains: IsolationChains;
  /** The sync running or queued; syncs run one at a time, and a burst of requests runs once. */
  private running: Promise<void> = Promise.resolve();
  private queued?: Promise<void>;

  constructor(
    dataRoot: string,
    private readonly bridges: () => string[],
    private readonly log: Logger,
    /** daemon.json `iptables: false` / --iptables=false: berth adds no rule of its own. */
    readonly enabled = true,
  ) {
    this.chains = isolationChains(dataRoot);
  }

  /**
   * Brings the rules in line with this daemon's bridge networks (read when the sync runs):
   * adds what is missing, removes rules of bridges that no longer exist. Called on network
   * create/remove and at daemon start (so a crash in between leaves nothing stale for long).
   * Never rejects: a failure is logged, and the next sync retries.
   */
  sync(): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    if (this.queued) return this.queued;
    const next = this.running.then(() => {
      this.queued = undefined;
      return this.apply(this.bridges());
    }).catch((err: unknown) => this.log.warn('could not update the bridge isolation rules', { error: (err as Error).message }));
    this.queued = next;
    this.running = next;
    return next;
  }

  /** Resolves when the rules of every change so far are in place. */
  settled(): Promise<void> {
    return this.queued ?? this.running;
  }

  private async apply(bridges: string[]): Promise<void> {
    const { stage1, stage2 } = this.chains;
    const want = isolationRules(this.chains, [...new Set(bridges)].sort());
    const all = (await run('iptables', ['-w', '-t', 'mangle', '-S'])).split('\n');
    const current = all.filter((l) => (l.startsWith('-N ') || l.startsWith('-A ')) && (l.includes(stage1) || l.includes(stage2)));
    const have = current.filter((l) => l.startsWith('-A '));
    const jump = want[0] ?? '';
    const firstInForward = all.find((l) => l.startsWith('-A FORWARD ')) === jump;
    if (have.length === want.length && have.every((l, i) => l === want[i]) && (want.length === 0 || firstInForward)) return;
    // Any jump into our chain counts as ours, whatever its comment (an older berthd's).
    const jumps = have.filter((l) => l.startsWith('-A FORWARD '));
    const lines = ['*mangle'];
    if (want.length === 0) {
      for (const j of jumps) lines.push(j.replace(/^-A /, '-D '));
      for (const c of [stage1, stage2]) if (current.includes(`-N ${c}`)) lines.push(`-F ${c}`);
      for (const c of [stage1, stage2]) if (current.includes(`-N ${c}`)) lines.push(`-X ${c}`);
    } else {
      // A ":CHAIN" line creates the chain, or flushes it when it exists (--noflush keeps the rest).
      lines.push(`:${stage1} - [0:0]`, `:${stage2} - [0:0]`);
      lines.push(...want.filter((l) => !l.startsWith('-A FORWARD ')));
      // Exactly one jump, first in mangle FORWARD (another tool may have inserted a rule above it).
      // -D deletes the first rule matching, so with duplicates all go and one comes back.
      if (!(jumps.length === 1 && firstInForward)) {
        for (const j of jumps) lines.push(j.replace(/^-A /, '-D '));
        lines.push(jump.replace(/^-A FORWARD /, '-I FORWARD 1 '));
      }
    }
    lines.push('COMMIT', '');
    await run('iptables-restore', ['-w', '--noflush'], lines.join('\n'));
    this.log.debug('bridge isolation rules updated', { bridges: bridges.length });
  }
}
