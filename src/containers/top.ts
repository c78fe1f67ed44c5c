// `docker top` without a ps process: the default ps -ef columns (UID PID PPID C STIME TTY TIME
// CMD) computed from /proc for the container's pids.
import * as fs from 'node:fs';
import * as os from 'node:os';

/** USER_HZ: the unit of /proc/<pid>/stat times; 100 on every Linux architecture berth runs on. */
const CLK_TCK = 100;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function bootTimeMs(): number {
  const m = /^btime\s+(\d+)/m.exec(fs.readFileSync('/proc/stat', 'utf8'));
  return m ? Number(m[1]) * 1000 : Date.now() - os.uptime() * 1000;
}

function hostUserNames(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && !out.has(Number(f[2]))) out.set(Number(f[2]), f[0]);
    }
  } catch {}
  return out;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** ps's STIME: HH:MM today, MmmDD this year, else the year. */
export function formatStime(start: Date, now = new Date()): string {
  if (now.getTime() - start.getTime() < 24 * 3600 * 1000 && start.getDate() === now.getDate()) return `${pad2(start.getHours())}:${pad2(start.getMinutes())}`;
  if (start.getFullYear() === now.getFullYear()) return `${MONTHS[start.getMonth()]}${pad2(start.getDate())}`;
  return String(start.getFullYear());
}

/** ps's TIME: [DD-]HH:MM:SS of CPU time. */
export function formatCpuTime(seconds: number): string {
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const hms = `${pad2(Math.floor((s % 86400) / 3600))}:${pad2(Math.floor((s % 3600) / 60))}:${pad2(s % 60)}`;
  return days > 0 ? `${days}-${hms}` : hms;
}

function ttyName(ttyNr: number): string {
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (ttyNr === 0) return '?';
  if (major >= 136 && major <= 143) return `pts/${minor + (major - 136) * 256}`;
  if (major === 4 && minor < 64) return `tty${minor}`;
  if (major === 4) return `ttyS${minor - 64}`;
  return '?';
}

export function processTable(pids: number[]): { Titles: string[]; Processes: string[][] } {
  const boot = bootTimeMs();
  const users = hostUserNames();
  const now = Date.now();
  const rows: string[][] = [];
  for (const pid of pids) {
    let stat: string;
    let status: string;
    let cmdline: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    const ppid = Number(f[1]);
    const ttyNr = Number(f[4]);
    const cpuTicks = Number(f[11]) + Number(f[12]);
    const startMs = boot + (Number(f[19]) / CLK_TCK) * 1000;
    const euid = Number(/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const elapsed = Math.max((now - startMs) / 1000, 0.001);
    const c = Math.min(Math.floor(((cpuTicks / CLK_TCK) * 100) / elapsed), 99);
    const args = cmdline.split('\0').filter((a, i, arr) => !(a === '' && i === arr.length - 1));
    rows.push([
      users.get(euid) ?? String(euid),
      String(pid),
      String(ppid),
      String(c),
      formatStime(new Date(startMs)),
      ttyName(ttyNr),
      formatCpuTime(cpuTicks / CLK_TCK),
      args.length > 0 ? args.join(' ') : `[${comm}]`,
    ]);
  }
  return { Titles: ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'], Processes: rows };
}
