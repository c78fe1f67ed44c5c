// Health probes run with the OCI runtime directly: `<runtime> exec --process FILE ID` as a child
// of berthd, stdout and stderr on pipes, stdin /dev/null, no tty. Unlike an ordinary exec there is
// no conmon (nothing to attach to later, no terminal to resize, and berthd waits for the exit
// itself), and the process spec is written once per container run and reused, not per probe.
//
// The runtime binary is run from a sealed memfd copy that berthd keeps open (sealed.ts), so crun
// and runc skip their per-command self-copy.
//
// What the probe runs as is exactly what `<runtime> exec` gives any exec: the container's
// namespaces, cgroup, seccomp filter, and the user, env, cwd, capabilities and no-new-privileges
// of the process spec (built by the container service as for `docker exec`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { writeFileAtomic } from '../common/fsutil';
import { silentLogger, type Logger } from '../common/logger';
import { spawnWatched } from '../native';
import { SealedBinaries } from './sealed';
import type { OciProcess } from './spec';
import { runtimeMessage } from './runtime';

/** Where and how to run `<runtime> exec` for a container (ConmonRuntime.probeTarget). */
export interface ProbeTarget {
  id: string;
  runtimePath: string;
  runtimeRoot: string;
  runtimeArgs: string[];
  /** The container's runtime state dir: the process spec is kept there. */
  dir: string;
}

export interface ProbeExit {
  exitCode: number;
  /** The runtime could not start the process (its message); exitCode is then meaningless. */
  startError?: string;
}

export interface ProbeRun {
  /** The runtime's pid (the probe itself is its child). */
  pid: number;
  stdout: Readable;
  stderr: Readable;
  exited: Promise<ProbeExit>;
  /** SIGKILLs the probe process (the runtime then exits with 137). */
  kill(): void;
}

/**
 * The last line of a runtime failure before the process ran (crun's exec child prints it on
 * stderr and exits 255): a missing or unexecutable command, a bad working directory.
 */
const START_FAILURE = /^(executable file `[^`]*` not found in \$PATH|open executable|chdir|exec|execv|setuid|setgid|setgroups|capset)\b.*: [A-Z][a-z]+( [a-z]+)*$/;

const RUNC_ERROR = /^time="[^"]*" level=(error|fatal) msg="/;

export class ProbeLauncher {
  private readonly binaries: SealedBinaries;
  /** The binaries were given (shared with the runtime): closing them is the giver's business. */
  private readonly sharedBinaries: boolean;
  /** Process specs already written, by container: the key says what they were written from. */
  private readonly specs = new Map<string, { key: string; file: string }>();
  private readonly log: Logger;
  /** The runtime's environment: berthd's, without what would make it talk to systemd. */
  private readonly envp: string[];

  constructor(o: { log?: Logger; binaries?: SealedBinaries } = {}) {
    this.log = o.log ?? silentLogger;
    this.binaries = o.binaries ?? new SealedBinaries(this.log);
    this.sharedBinaries = o.binaries !== undefined;
    this.envp = Object.entries(process.env)
      .filter(([k, v]) => v !== undefined && k !== 'NOTIFY_SOCKET' && k !== 'LISTEN_PID' && k !== 'LISTEN_FDS')
      .map(([k, v]) => `${k}=${v}`);
  }

  /**
   * The process spec file for this container, written (atomically) only when key differs from
   * the one it was last written for; build() is called only then.
   */
  processFile(t: ProbeTarget, key: string, build: () => OciProcess): string {
    const have = this.specs.get(t.id);
    if (have?.key === key && fs.existsSync(have.file)) return have.file;
    const file = path.join(t.dir, 'probe-process.json');
    writeFileAtomic(file, JSON.stringify({ ...build(), terminal: false }));
    this.specs.set(t.id, { key, file });
    return file;
  }

  /** Forgets a container's cached spec (it was removed). */
  forget(id: string): void {
    this.specs.delete(id);
  }

  async run(t: ProbeTarget, processFile: string): Promise<ProbeRun> {
    const exe = this.binaries.executable(t.runtimePath);
    const args = [path.basename(t.runtimePath), `--root=${t.runtimeRoot}`, ...t.runtimeArgs, 'exec', '--process', processFile, t.id];
    let done = false;
    let onExit: (code: number, signal: number) => void = () => {};
    const exitSeen = new Promise<{ code: number; signal: number }>((resolve) => (onExit = (code, signal) => {
      done = true;
      resolve({ code, signal });
    }));
    // posix_spawn from the addon, not child_process.spawn: that forks the whole daemon and blocks
    // its event loop until the runtime has exec'd, which at 100 probes a second was most of
    // berthd's cost and stalled every timer.
    let spawned: { pid: number; stdoutFd: number; stderrFd: number };
    try {
      spawned = await spawnWatched(exe, args, this.envp, (code, signal) => onExit(code, signal));
    } catch (err) {
      done = true;
      const empty = (): Readable => Readable.from([]);
      return { pid: 0, stdout: empty(), stderr: empty(), exited: Promise.resolve({ exitCode: -1, startError: `cannot run ${t.runtimePath}: ${(err as Error).message}` }), kill: () => {} };
    }
    const { pid } = spawned;
    const stdout = new net.Socket({ fd: spawned.stdoutFd, readable: true, writable: false });
    const stderr = new net.Socket({ fd: spawned.stderrFd, readable: true, writable: false });
    // Only the tail of stderr is kept for telling a start failure from the probe's own output.
    let errTail = '';
    let outSeen = false;
    stdout.on('data', () => (outSeen = true));
    stderr.on('data', (b: Buffer) => (errTail = (errTail + b.toString('utf8')).slice(-1024)));
    let errEnded = false;
    const errEnd = new Promise<void>((resolve) => stderr.on('close', () => resolve()));
    void errEnd.then(() => (errEnded = true));
    const exited = exitSeen.then(({ code, signal }) => new Promise<ProbeExit>((resolve) => {
      if (code < 0) return resolve({ exitCode: 128 + (signal || 9) });
      if (code !== 255) return resolve({ exitCode: code });
      // 255 is also what the runtime exits with when it could not start the process, having
      // printed why on stderr: read that to its end (a background process may hold it open).
      const decide = (): void => {
        const line = errTail.replace(/\s+$/, '');
        if (outSeen || line === '' || line.includes('\n')) return resolve({ exitCode: code });
        // crun prints the bare message; runc a logrus line (time="..." level=error msg="...").
        if (RUNC_ERROR.test(line)) return resolve({ exitCode: code, startError: runtimeMessage(line) });
        resolve(START_FAILURE.test(line) ? { exitCode: code, startError: line } : { exitCode: code });
      };
      if (errEnded) decide();
      else void Promise.race([errEnd, new Promise((r) => setTimeout(r, 200))]).then(decide);
    }));
    return {
      pid,
      stdout,
      stderr,
      exited,
      kill: () => {
        if (done || pid <= 0) return;
        // The probe is the runtime's child (the runtime is a subreaper and waits for it); before
        // it has one, the runtime itself goes, so that nothing starts.
        const kids = childrenOf(pid);
        for (const p of kids.length > 0 ? kids : [pid]) {
          try { process.kill(p, 'SIGKILL'); } catch {}
        }
      },
    };
  }

  /** Closes the sealed copies, unless they were given (after a grace period: see sealed.ts). */
  close(): void {
    if (!this.sharedBinaries) this.binaries.close();
  }
}

/** Pids of a process's children (/proc/<pid>/task/<pid>/children). */
function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
