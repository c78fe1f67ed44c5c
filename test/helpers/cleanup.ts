// What a test daemon may leave behind now that containers outlive berthd: conmon and container
// processes, overlay mounts under its dirs, cgroups under its cgroup parent. These helpers find
// them by path, command line and cgroup, and remove them by PID — used by destroyDaemon, so every
// test cleans up even when it fails.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { isolationChains } from '../../src/network/isolation';

/** Lines of /proc/self/mountinfo whose mount point is under dir. */
export function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => {
    const mp = l.split(' ')[4];
    return mp !== undefined && (mp === dir || mp.startsWith(dir + '/'));
  });
}

/** Pids of processes whose command line mentions s (conmons of a daemon: their args hold its dirs). */
export function pidsMentioning(s: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(s)) out.push(Number(p));
    } catch {}
  }
  return out;
}

/** Cgroup directories named parent in any mounted hierarchy. */
export function cgroupDirsOf(parent: string): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || (f[sep + 1] !== 'cgroup' && f[sep + 1] !== 'cgroup2')) continue;
    const dir = path.join(f[4], parent);
    if (fs.existsSync(dir)) out.push(dir);
  }
  return out;
}

/** Kills every process in a cgroup tree and removes its directories, deepest first. */
export function rmCgroupTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) rmCgroupTree(path.join(dir, e.name));
  try {
    for (const l of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l) try { process.kill(Number(l), 'SIGKILL'); } catch {}
  } catch {}
  for (let i = 0; i < 50; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      execFileSync('sleep', ['0.02']);
    }
  }
}

/** Kills what mentions dir, removes the cgroup parent's tree, unmounts everything under dir. */
export function cleanupLeftovers(dir: string, cgroupParent?: string): void {
  for (const pid of pidsMentioning(dir)) try { process.kill(pid, 'SIGKILL'); } catch {}
  if (cgroupParent) for (const d of cgroupDirsOf(cgroupParent)) rmCgroupTree(d);
  for (const line of mountsUnder(dir).reverse()) {
    try { execFileSync('umount', ['-l', line.split(' ')[4]], { stdio: 'ignore' }); } catch {}
  }
}

/**
 * Removes the bridge isolation chains (and their jump) of a test daemon's data root: a daemon
 * stopped with two or more bridge networks keeps them for its running containers, but a test's
 * data root is deleted with the daemon.
 */
export function removeIsolationRules(dataRoot: string): void {
  const { stage1, stage2 } = isolationChains(dataRoot);
  let dump = '';
  try { dump = execFileSync('iptables', ['-w', '-t', 'mangle', '-S'], { encoding: 'utf8' }); } catch { return; }
  for (const line of dump.split('\n').filter((l) => l.startsWith('-A FORWARD ') && l.endsWith(` -j ${stage1}`))) {
    try { execFileSync('sh', ['-c', `iptables -w -t mangle ${line.replace(/^-A /, '-D ')}`], { stdio: 'ignore' }); } catch {}
  }
  for (const c of [stage1, stage2]) {
    if (dump.includes(`-N ${c}\n`)) try { execFileSync('iptables', ['-w', '-t', 'mangle', '-F', c], { stdio: 'ignore' }); } catch {}
  }
  for (const c of [stage1, stage2]) {
    if (dump.includes(`-N ${c}\n`)) try { execFileSync('iptables', ['-w', '-t', 'mangle', '-X', c], { stdio: 'ignore' }); } catch {}
  }
}

