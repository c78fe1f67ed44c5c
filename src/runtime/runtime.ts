// The OCI runtime layer: containers run under an OCI runtime (crun by default, runc selectable),
// each watched by its own daemonised conmon. conmon holds the container's stdio, writes its log,
// serves attach and resize, and records the exit code in a file; so containers outlive berthd,
// and a new ConmonRuntime finds every container again from files alone:
//
//   <stateRoot>/exits/<id>             exit code as text, written by conmon (mtime = exit time)
//   <stateRoot>/ctr/<id>/record.json   how the container was created (runtime, bundle, log, ...)
//   <stateRoot>/ctr/<id>/conmon.pid    conmon's pid;  .../pid  the container's init pid
//   <stateRoot>/ctr/<id>/exec/<execId>/ process.json, pid, conmon.pid, attach, ctl, exit/<id>
//   <bundle>/attach, ctl, winsz        conmon's attach socket and control FIFOs (--full-attach)
//
// Per container, the only processes spawned are conmon (which runs `<runtime> create`),
// `<runtime> start` (not for crun: berthd writes its exec FIFO, see startThroughFifo) and
// `<runtime> delete`; state and exit are read from files, exits are seen through one fs.watch.
// The runtime runs from a sealed memfd copy (sealed.ts), so it does not copy itself each time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as net from 'node:net';
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { writeFileReplace, mkdirp } from '../common/fsutil';
import { BerthError, conflict, notFound, systemError, hasCode } from '../common/errors';
import { silentLogger, type Logger } from '../common/logger';
import { AttachStream, connectAttach, writeResize } from './attach';
import { removeCgroup } from './cgroups';
import { signalInCgroup, spawnPiped, spawnWatched } from '../native';
import { SealedBinaries } from './sealed';
import type { OciProcess } from './spec';
import type { ProbeTarget } from './probe';

export type ContainerStatus = 'created' | 'running' | 'paused' | 'stopped';

export interface ExitStatus {
  exitCode: number;
  exitedAt: Date;
  /** True when conmon vanished without recording an exit code (killed); exitCode is then 255. */
  lost?: boolean;
}

export interface CreateOptions {
  /** Path of the OCI runtime binary (/usr/bin/crun, /usr/bin/runc). */
  runtimePath: string;
  /** The runtime's state directory (its --root). Default: <stateRoot>/runtime-<basename>. */
  runtimeRoot?: string;
  /** Further global runtime flags. */
  runtimeArgs?: string[];
  tty: boolean;
  openStdin: boolean;
  /** Close stdin when the first attached client closes it (docker's StdinOnce). */
  stdinOnce?: boolean;
  /** conmon's k8s-file log. */
  logPath: string;
  /** Write no log file (the none log driver). */
  logNone?: boolean;
  /** conmon's --log-size-max: the file is replaced when the next record would pass it. */
  logSizeMax?: number;
  /** Container name for conmon's own messages. */
  name?: string;
  /** The container's cgroup (as in config.json); removed on delete. */
  cgroupsPath?: string;
}

export interface ContainerRecord extends Required<Omit<CreateOptions, 'name' | 'cgroupsPath' | 'logNone' | 'logSizeMax'>> {
  id: string;
  bundleDir: string;
  cgroupsPath?: string;
  createdAt: string;
}

export interface RuntimeState {
  id: string;
  status: ContainerStatus;
  pid: number;
  bundle?: string;
}

export interface RecoveredContainer {
  id: string;
  status: ContainerStatus;
  pid: number;
  record: ContainerRecord;
  exit?: ExitStatus;
  /** conmon is alive and will record the exit. */
  monitored: boolean;
}

export interface ExecOptions {
  tty: boolean;
  stdin: boolean;
  /** No attach: output goes nowhere (docker exec -d). */
  detach: boolean;
  /** Exec session id; default random 64-hex. */
  execId?: string;
}

export interface ExecHandle {
  execId: string;
  pid: number;
  /** Connected before the process started, so no output is lost. Absent when detached. */
  attach?: AttachStream;
  exited: Promise<ExitStatus>;
}

/** Role-split interfaces, so that callers depend on what they use. */
export interface RuntimeLifecycle {
  create(id: string, bundleDir: string, opts: CreateOptions): Promise<{ pid: number }>;
  start(id: string): Promise<void>;
  kill(id: string, signal?: string | number, all?: boolean): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  delete(id: string, opts?: { force?: boolean }): Promise<void>;
  state(id: string): Promise<RuntimeState>;
}

export interface RuntimeMonitor {
  onExit(id: string): Promise<ExitStatus>;
  exitStatus(id: string): ExitStatus | undefined;
  recover(id: string): Promise<RecoveredContainer>;
  list(): string[];
  /** True when the runtime has a record of the container (cheaper than list() for one id). */
  has(id: string): boolean;
}

export interface RuntimeIO {
  attach(id: string): Promise<AttachStream>;
  resize(id: string, height: number, width: number): void;
  exec(id: string, process: OciProcess, opts: ExecOptions): Promise<ExecHandle>;
  resizeExec(id: string, execId: string, height: number, width: number): void;
}

export type OciRuntime = RuntimeLifecycle & RuntimeMonitor & RuntimeIO;

export interface ConmonRuntimeOptions {
  stateRoot: string;
  conmonPath?: string;
  log?: Logger;
  /** Sealed copies of the runtime binaries to run (default: its own). */
  binaries?: SealedBinaries;
}

/** Error from the OCI runtime or conmon, carrying the runtime's own message. */
export class RuntimeError extends BerthError {
  constructor(message: string, readonly runtimeMessage: string) {
    super('System', message);
  }
}

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

function checkId(id: string, what = 'container'): void {
  if (!ID_RE.test(id)) throw new BerthError('InvalidParameter', `invalid ${what} id ${JSON.stringify(id)}`);
}

function signalName(sig: string | number): string {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig) || sig <= 0 || sig > 64) throw new BerthError('InvalidParameter', `Invalid signal: ${sig}`);
    return String(sig);
  }
  const s = sig.toUpperCase().replace(/^SIG/, '');
  if (/^\d+$/.test(s)) return signalName(Number(s));
  if (!/^[A-Z0-9+-]+$/.test(s)) throw new BerthError('InvalidParameter', `Invalid signal: ${sig}`);
  return s;
}

function isAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return hasCode(err, 'EPERM');
  }
}

/** True when pid is a conmon watching container id (guards against pid reuse after a reboot or long downtime). */
function isConmonOf(pid: number, id: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return path.basename(argv[0] ?? '') === 'conmon' && argv.includes(id);
  } catch {
    return false;
  }
}

/** A caller of onExit, and the conmon last seen watching that container. */
interface ExitWaiter {
  resolve: (e: ExitStatus) => void;
  promise: Promise<ExitStatus>;
  /** conmon's pid once read and checked against its cmdline; 0 until then. */
  conmonPid: number;
  /** When conmonPid's cmdline was last checked (ms since the epoch). */
  verifiedAt: number;
}

/** How often a remembered conmon pid is checked against its cmdline again (pid reuse). */
const VERIFY_EVERY_MS = 30_000;

function readPid(file: string): number {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

/** Reads conmon's `{"data": N, "message": "..."}` lines from its sync pipe. */
class SyncReader {
  private buf = '';
  private waiters: ((m: { data: number; message?: string } | undefined) => void)[] = [];
  private queue: { data: number; message?: string }[] = [];
  private ended = false;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        try {
          this.push(JSON.parse(line) as { data: number; message?: string });
        } catch {
          this.push({ data: -1, message: `unparsable message from conmon: ${line}` });
        }
      }
    });
    const end = (): void => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  private push(m: { data: number; message?: string }): void {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.queue.push(m);
  }

  /** The next message, or undefined when conmon closed the pipe without one. */
  next(): Promise<{ data: number; message?: string } | undefined> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

function collect(stream: Readable | null): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (c: string) => {
    if (text.length < 16384) text += c;
  });
  return () => text.trim();
}

/**
 * The runtime's error as one line: the last line of its stderr, with runc's logfmt wrapping
 * (time="..." level=error msg="...") taken off.
 */
export function runtimeMessage(raw: string): string {
  const last = raw.replace(/\s+$/, '').split('\n').filter(Boolean).pop() ?? raw;
  const m = /(?:^|\s)msg="((?:[^"\\]|\\.)*)"/.exec(last);
  if (!m) return last;
  try {
    return JSON.parse(`"${m[1]}"`) as string;
  } catch {
    return m[1];
  }
}

export class ConmonRuntime implements OciRuntime {
  readonly stateRoot: string;
  readonly exitsDir: string;
  private readonly conmonPath: string;
  private readonly log: Logger;
  /** In-memory cache of records; everything here can be rebuilt from disk. */
  private readonly records = new Map<string, ContainerRecord>();
  private readonly exitWaiters = new Map<string, ExitWaiter>();
  private watcher?: fs.FSWatcher;
  private sweepTimer?: NodeJS.Timeout;
  /** What the runtime binaries are run from (health probes share them). */
  readonly binaries: SealedBinaries;

  constructor(opts: ConmonRuntimeOptions) {
    this.stateRoot = path.resolve(opts.stateRoot);
    this.exitsDir = path.join(this.stateRoot, 'exits');
    this.conmonPath = opts.conmonPath ?? '/usr/bin/conmon';
    this.log = opts.log ?? silentLogger;
    this.binaries = opts.binaries ?? new SealedBinaries(this.log);
    mkdirp(this.exitsDir, 0o700);
    mkdirp(path.join(this.stateRoot, 'ctr'), 0o700);
  }

  private ctrDir(id: string): string {
    return path.join(this.stateRoot, 'ctr', id);
  }

  private record(id: string): ContainerRecord {
    checkId(id);
    const cached = this.records.get(id);
    if (cached) return cached;
    let rec: ContainerRecord;
    try {
      rec = JSON.parse(fs.readFileSync(path.join(this.ctrDir(id), 'record.json'), 'utf8')) as ContainerRecord;
    } catch (err) {
      if (hasCode(err, 'ENOENT')) throw notFound(`No such container: ${id}`);
      throw systemError(`reading the runtime record of container ${id}: ${(err as Error).message}`, err);
    }
    this.records.set(id, rec);
    return rec;
  }

  private runtimeGlobalArgs(rec: Pick<ContainerRecord, 'runtimeRoot' | 'runtimeArgs'>): string[] {
    return [`--root=${rec.runtimeRoot}`, ...rec.runtimeArgs];
  }

  /**
   * Runs `<runtime> <global args> <args>`; rejects with the runtime's stderr. Through the addon's
   * posix_spawn (spawnWatched), not child_process: that forks the whole daemon and blocks the
   * event loop until the child has exec'd, which for the start, kill and delete of every
   * container was the largest part of berthd's own CPU per container.
   */
  private async runRuntime(rec: ContainerRecord, args: string[]): Promise<string> {
    const fail = (msg: string): RuntimeError => new RuntimeError(`${path.basename(rec.runtimePath)} ${args[0]}: ${msg}`, msg);
    let onExit: (code: number, signal: number) => void = () => {};
    const exited = new Promise<{ code: number; signal: number }>((resolve) => (onExit = (code, signal) => resolve({ code, signal })));
    const env = Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined).map(([k, v]) => `${k}=${v}`);
    let spawned: { stdoutFd: number; stderrFd: number };
    try {
      spawned = await spawnWatched(this.binaries.executable(rec.runtimePath), [rec.runtimePath, ...this.runtimeGlobalArgs(rec), ...args], env, (code, signal) => onExit(code, signal));
    } catch (err) {
      throw fail((err as Error).message);
    }
    const [stdout, stderr] = await Promise.all([readAll(spawned.stdoutFd), readAll(spawned.stderrFd)]);
    const { code, signal } = await exited;
    if (code === 0) return stdout;
    throw fail(runtimeMessage(stderr || (code < 0 ? `killed by signal ${signal}` : `exit status ${code}`)));
  }

  has(id: string): boolean {
    return ID_RE.test(id) && fs.existsSync(path.join(this.ctrDir(id), 'record.json'));
  }

  /** A file in the OCI runtime's own state directory for the container (e.g. crun's seccomp.bpf). */
  runtimeStateFile(id: string, name: string): string | undefined {
    const rec = this.records.get(id);
    return rec ? path.join(rec.runtimeRoot, id, name) : undefined;
  }

  list(): string[] {
    try {
      return fs.readdirSync(path.join(this.stateRoot, 'ctr')).filter((n) => ID_RE.test(n) && fs.existsSync(path.join(this.ctrDir(n), 'record.json')));
    } catch {
      return [];
    }
  }

  async create(id: string, bundleDir: string, opts: CreateOptions): Promise<{ pid: number }> {
    checkId(id);
    const dir = this.ctrDir(id);
    if (fs.existsSync(path.join(dir, 'record.json'))) throw conflict(`container ${id} already exists in the runtime`);
    const rec: ContainerRecord = {
      id,
      bundleDir: path.resolve(bundleDir),
      runtimePath: opts.runtimePath,
      runtimeRoot: opts.runtimeRoot ?? path.join(this.stateRoot, `runtime-${path.basename(opts.runtimePath)}`),
      runtimeArgs: opts.runtimeArgs ?? [],
      tty: opts.tty,
      openStdin: opts.openStdin,
      stdinOnce: opts.stdinOnce ?? false,
      logPath: path.resolve(opts.logPath),
      cgroupsPath: opts.cgroupsPath,
      createdAt: new Date().toISOString(),
    };
    mkdirp(dir, 0o700);
    mkdirp(rec.runtimeRoot, 0o700);
    // A stale exit file from an earlier container of the same id would read as this one's exit.
    fs.rmSync(path.join(this.exitsDir, id), { force: true });
    // Under the exec root (a tmpfs normally): atomic against a daemon crash, no fsync needed.
    writeFileReplace(path.join(dir, 'record.json'), JSON.stringify(rec));
    this.records.set(id, rec);

    const args = [
      '--api-version', '1',
      '-c', id, '-u', id, '-n', opts.name ?? id,
      '-r', this.binaries.executable(rec.runtimePath),
      '-b', rec.bundleDir,
      '-p', path.join(dir, 'pid'),
      '-P', path.join(dir, 'conmon.pid'),
      '--exit-dir', this.exitsDir,
      '--socket-dir-path', dir,
      '--full-attach',
      ...(opts.logNone ? ['-l', 'none:'] : ['-l', `k8s-file:${rec.logPath}`]),
      ...(opts.logSizeMax ? ['--log-size-max', String(opts.logSizeMax)] : []),
      ...this.runtimeGlobalArgs(rec).map((a) => `--runtime-arg=${a}`),
    ];
    if (rec.tty) args.push('-t');
    if (rec.openStdin) {
      args.push('-i');
      if (!rec.stdinOnce) args.push('--leave-stdin-open');
    }
    try {
      const { first } = await this.spawnConmon(args, { wantAttach: false });
      const msg = await first;
      return { pid: msg };
    } catch (err) {
      this.records.delete(id);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(path.join(this.exitsDir, id), { force: true });
      throw err;
    }
  }

  /**
   * Spawns conmon with its sync pipe on fd 3 (and, for an attached exec, start and attach pipes
   * on fds 4 and 5). conmon forks into the background at once; its daemon half reports the
   * process's pid (or the runtime's error) on the sync pipe.
   */
  private async spawnConmon(
    args: string[],
    o: { wantAttach: boolean; beforeStart?: () => Promise<void> },
  ): Promise<{ first: Promise<number>; sync: SyncReader }> {
    const env: NodeJS.ProcessEnv = { ...process.env, _OCI_SYNCPIPE: '3' };
    delete env.NOTIFY_SOCKET;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    if (o.wantAttach) {
      env._OCI_STARTPIPE = '4';
      env._OCI_ATTACHPIPE = '5';
    }
    // posix_spawn from the addon (see runRuntime): stdout /dev/null; stderr, the sync pipe (3)
    // and for an attached exec the start (4, conmon reads it) and attach (5) pipes.
    let onExit: (code: number | null) => void = () => {};
    const exited = new Promise<number | null>((resolve) => (onExit = resolve));
    const envp = Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined).map(([k, v]) => `${k}=${v}`);
    let spawned: { fds: number[] };
    try {
      spawned = await spawnPiped(this.conmonPath, [this.conmonPath, ...args], envp, (code) => onExit(code < 0 ? null : code), o.wantAttach ? 'nwwrw' : 'nww');
    } catch (err) {
      this.log.error('cannot run conmon', { path: this.conmonPath, error: (err as Error).message });
      throw new RuntimeError(`conmon failed: ${(err as Error).message}`, (err as Error).message);
    }
    const pipe = (i: number): net.Socket => new net.Socket({ fd: spawned.fds[i], readable: true, writable: false });
    const fds: (Readable | null)[] = [null, null, pipe(1), pipe(2)];
    if (o.wantAttach) fds.push(new net.Socket({ fd: spawned.fds[3], readable: false, writable: true }), pipe(4));
    for (const f of fds) f?.on('error', () => {});
    const stderr = collect(fds[2]);
    const sync = new SyncReader(fds[3] as Readable);
    const fail = async (what: string, msg?: string): Promise<never> => {
      await exited;
      const detail = msg ?? (stderr() || 'conmon exited without reporting');
      throw new RuntimeError(`${what}: ${runtimeMessage(detail)}`, runtimeMessage(detail));
    };

    if (o.wantAttach) {
      const startPipe = fds[4] as unknown as NodeJS.WritableStream & { destroy(): void };
      const attachSync = new SyncReader(fds[5] as Readable);
      // First start message: conmon blocks on it before anything else.
      startPipe.write('0\n');
      const ready = await attachSync.next();
      if (!ready || ready.data < 0) {
        return { first: fail('exec attach failed', ready?.message), sync };
      }
      try {
        await o.beforeStart?.();
      } finally {
        // Second start message: conmon's child now runs `<runtime> exec`.
        startPipe.write('0\n');
        startPipe.destroy();
        (fds[5] as Readable).destroy();
      }
    }
    const first = (async (): Promise<number> => {
      const m = await sync.next();
      if (!m) return fail('conmon failed');
      if (m.data < 0) return fail('OCI runtime create failed', m.message ?? 'unknown error');
      return m.data;
    })();
    return { first, sync };
  }

  async start(id: string): Promise<void> {
    const rec = this.record(id);
    if (this.startThroughFifo(rec)) return;
    await this.runRuntime(rec, ['start', id]).catch((err: RuntimeError) => {
      throw this.translate(err, id);
    });
  }

  /**
   * What `crun start` does for a container without poststart hooks, without the process: a
   * created container's init waits reading `exec.fifo` in crun's state dir, and the start opens
   * the FIFO, unlinks it (so crun's state says running) and writes one byte, on which the init
   * execs the process. That process was about a tenth of a start's wall time. Only for crun
   * (runc's start reads the FIFO instead) and only when the init is waiting: anything unusual
   * (no FIFO, no reader: the init died, hooks to run) goes to `crun start`, which also gives the
   * runtime's error. Returns whether the container was started.
   */
  private startThroughFifo(rec: ContainerRecord): boolean {
    if (path.basename(rec.runtimePath) !== 'crun') return false;
    const stateDir = path.join(rec.runtimeRoot, rec.id);
    try {
      // berth's specs have no hooks; a bundle made elsewhere may (crun runs poststart in start).
      if (fs.readFileSync(path.join(stateDir, 'config.json'), 'latin1').includes('"poststart"')) return false;
    } catch {
      return false;
    }
    const fifo = path.join(stateDir, 'exec.fifo');
    let fd: number;
    try {
      // Non-blocking: without a reader (the init is gone) this fails with ENXIO instead of hanging.
      fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch {
      return false;
    }
    try {
      fs.unlinkSync(fifo);
      fs.writeSync(fd, Buffer.alloc(1));
      return true;
    } catch (err) {
      this.log.warn('starting the container through its exec FIFO failed; asking the runtime', { id: rec.id, error: (err as Error).message });
      return false;
    } finally {
      fs.closeSync(fd);
    }
  }

  async kill(id: string, signal: string | number = 'SIGKILL', all = false): Promise<void> {
    const rec = this.record(id);
    const sig = signalName(signal);
    // The container's init, signalled directly when it is still the process in the container's
    // cgroup (what `<runtime> kill` does, without a process); anything else goes to the runtime,
    // which also gives the right error for a container that is not running.
    const num = /^\d+$/.test(sig) ? Number(sig) : (os.constants.signals as Record<string, number | undefined>)[`SIG${sig}`];
    const pid = readPid(path.join(this.ctrDir(id), 'pid'));
    if (!all && num !== undefined && pid > 0 && rec.cgroupsPath && signalInCgroup(pid, num, rec.cgroupsPath)) return;
    await this.runRuntime(rec, ['kill', ...(all ? ['--all'] : []), id, sig]).catch((err: RuntimeError) => {
      throw this.translate(err, id);
    });
  }

  async pause(id: string): Promise<void> {
    await this.runRuntime(this.record(id), ['pause', id]).catch((err: RuntimeError) => {
      throw this.translate(err, id);
    });
  }

  async resume(id: string): Promise<void> {
    await this.runRuntime(this.record(id), ['resume', id]).catch((err: RuntimeError) => {
      throw this.translate(err, id);
    });
  }

  private translate(err: RuntimeError, id: string): Error {
    const m = err.runtimeMessage ?? err.message;
    if (/does not exist|not found|no such file/i.test(m) && /container|state|status/i.test(m)) return notFound(`No such container: ${id}`);
    if (/not running|is not running|stopped|paused|container not|is already/i.test(m)) return conflict(`Container ${id} is not in a state for this: ${m}`);
    return err;
  }

  /**
   * Removes the container from the runtime and forgets it. With force a live container is
   * killed first, and the exit is waited for so that conmon's last writes land before the files
   * are removed.
   */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const rec = this.record(id);
    const dir = this.ctrDir(id);
    const conmonPid = readPid(path.join(dir, 'conmon.pid'));
    // Once the exit file is there the container is stopped, whatever conmon still does.
    const exited = this.exitStatus(id) !== undefined;
    const monitored = !exited && conmonPid > 0 && isAlive(conmonPid) && isConmonOf(conmonPid, id);
    if (monitored && !opts.force) {
      // A created (never started) container has a conmon too; deleting it is fine.
      const st = await this.state(id).catch(() => undefined);
      if (st && st.status !== 'created' && st.status !== 'stopped') {
        throw conflict(`cannot delete container ${id}: it is ${st.status}`);
      }
    }
    try {
      await this.runRuntime(rec, ['delete', ...(opts.force ? ['--force'] : []), id]);
    } catch (err) {
      const m = (err as RuntimeError).runtimeMessage ?? '';
      if (!/does not exist|not found|no such file/i.test(m)) throw err;
    }
    if (monitored) {
      const gone = await Promise.race([this.onExit(id).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
      if (!gone && isAlive(conmonPid) && isConmonOf(conmonPid, id)) {
        this.log.warn('conmon did not exit after the container was deleted; killing it', { id, pid: conmonPid });
        try {
          process.kill(conmonPid, 'SIGKILL');
        } catch {}
      }
    }
    if (rec.cgroupsPath) {
      const left = await removeCgroup(rec.cgroupsPath, { retryMs: 200 }).catch(() => []);
      if (left.length > 0) this.log.warn('cgroups left behind', { id, cgroups: left });
    }
    this.records.delete(id);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(path.join(this.exitsDir, id), { force: true });
    for (const f of ['attach', 'ctl', 'winsz']) fs.rmSync(path.join(rec.bundleDir, f), { force: true });
  }

  async state(id: string): Promise<RuntimeState> {
    const rec = this.record(id);
    let out: string;
    try {
      out = await this.runRuntime(rec, ['state', id]);
    } catch (err) {
      const m = (err as RuntimeError).runtimeMessage ?? '';
      if (/does not exist|not found|no such file/i.test(m)) {
        const exit = this.exitStatus(id);
        if (exit || fs.existsSync(path.join(this.ctrDir(id), 'record.json'))) return { id, status: 'stopped', pid: 0, bundle: rec.bundleDir };
        throw notFound(`No such container: ${id}`);
      }
      throw err;
    }
    const st = JSON.parse(out) as { id: string; status: string; pid?: number; bundle?: string };
    const status = (['created', 'running', 'paused', 'stopped'].includes(st.status) ? st.status : 'stopped') as ContainerStatus;
    return { id, status, pid: st.pid ?? 0, bundle: st.bundle };
  }

  // ---- exits ----

  /** The exit recorded by conmon, if the container has exited. */
  exitStatus(id: string): ExitStatus | undefined {
    checkId(id);
    return readExitFile(path.join(this.exitsDir, id));
  }

  /** Resolves when the container exits (at once if it already has). One fs.watch serves all. */
  onExit(id: string): Promise<ExitStatus> {
    checkId(id);
    const existing = this.exitWaiters.get(id);
    if (existing) return existing.promise;
    let resolve!: (e: ExitStatus) => void;
    const promise = new Promise<ExitStatus>((r) => (resolve = r));
    this.exitWaiters.set(id, { resolve, promise, conmonPid: 0, verifiedAt: 0 });
    this.ensureWatching();
    // After the watch is in place, so that an exit landing in between is not missed.
    this.checkExit(id);
    return promise;
  }

  private checkExit(id: string): void {
    const w = this.exitWaiters.get(id);
    if (!w) return;
    const exit = this.exitStatus(id);
    if (!exit) return;
    this.exitWaiters.delete(id);
    w.resolve(exit);
    this.maybeStopWatching();
  }

  private ensureWatching(): void {
    if (!this.watcher) {
      this.watcher = fs.watch(this.exitsDir, (_event, filename) => {
        if (filename && this.exitWaiters.has(filename.toString())) this.checkExit(filename.toString());
        else if (!filename) for (const id of [...this.exitWaiters.keys()]) this.checkExit(id);
      });
      this.watcher.on('error', (err) => this.log.error('watching container exits failed', { dir: this.exitsDir, error: err.message }));
    }
    // conmon killed outright writes no exit file; one timer for all waiters notices that.
    if (!this.sweepTimer) {
      this.sweepTimer = setInterval(() => this.sweepLostMonitors(), 1000);
      this.sweepTimer.unref();
    }
  }

  /**
   * Once a second: is each waited-for container's conmon still there? A waiter's conmon pid is
   * read and checked against /proc/<pid>/cmdline once, then only kill(pid, 0) each second (with
   * a hundred containers, re-reading two files each per second was most of an idle daemon's CPU);
   * the cmdline is checked again every VERIFY_EVERY_MS, so a pid reused by another process after
   * conmon died unnoticed is caught then.
   */
  private sweepLostMonitors(): void {
    const now = Date.now();
    for (const [id, waiter] of [...this.exitWaiters]) {
      if (waiter.conmonPid > 0 && isAlive(waiter.conmonPid) && now - waiter.verifiedAt < VERIFY_EVERY_MS) continue;
      const pid = readPid(path.join(this.ctrDir(id), 'conmon.pid'));
      if (pid > 0 && isAlive(pid) && isConmonOf(pid, id)) {
        waiter.conmonPid = pid;
        waiter.verifiedAt = now;
        continue;
      }
      waiter.conmonPid = 0;
      this.checkExit(id);
      const w = this.exitWaiters.get(id);
      if (!w) continue;
      if (!fs.existsSync(path.join(this.ctrDir(id), 'record.json'))) continue; // not created yet / deleted
      if (pid === 0) continue; // conmon has not written its pidfile yet
      this.exitWaiters.delete(id);
      w.resolve({ exitCode: 255, exitedAt: new Date(), lost: true });
    }
    this.maybeStopWatching();
  }

  private maybeStopWatching(): void {
    if (this.exitWaiters.size > 0) return;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** Stops watching; pending onExit promises stay pending. */
  close(): void {
    this.exitWaiters.clear();
    this.maybeStopWatching();
  }

  /**
   * Finds a container again after a daemon restart, from files alone: exited while we were
   * away (exit file), still watched by its conmon (running, paused or created), or lost (conmon
   * gone without an exit file).
   */
  async recover(id: string): Promise<RecoveredContainer> {
    const rec = this.record(id);
    const dir = this.ctrDir(id);
    const exit = this.exitStatus(id);
    const pid = readPid(path.join(dir, 'pid'));
    if (exit) return { id, status: 'stopped', pid: 0, record: rec, exit, monitored: false };
    const conmonPid = readPid(path.join(dir, 'conmon.pid'));
    if (conmonPid > 0 && isAlive(conmonPid) && isConmonOf(conmonPid, id)) {
      const st = await this.state(id).catch(() => undefined);
      // Between our exit-file check and now the container may have exited.
      const late = this.exitStatus(id);
      if (late) return { id, status: 'stopped', pid: 0, record: rec, exit: late, monitored: false };
      return { id, status: st?.status ?? 'running', pid: st?.pid || pid, record: rec, monitored: true };
    }
    const lateExit = this.exitStatus(id);
    if (lateExit) return { id, status: 'stopped', pid: 0, record: rec, exit: lateExit, monitored: false };
    // conmon is gone and recorded nothing. The container may still run unwatched; report what
    // the runtime says, with no one to record its exit.
    const st = await this.state(id).catch(() => undefined);
    if (st && st.status !== 'stopped') return { id, status: st.status, pid: st.pid, record: rec, monitored: false };
    return { id, status: 'stopped', pid: 0, record: rec, exit: { exitCode: 255, exitedAt: new Date(), lost: true }, monitored: false };
  }

  // ---- stdio ----

  attach(id: string): Promise<AttachStream> {
    const rec = this.record(id);
    return connectAttach(path.join(rec.bundleDir, 'attach'));
  }

  resize(id: string, height: number, width: number): void {
    const rec = this.record(id);
    // conmon lingers a moment after recording the exit, with its FIFO still open.
    if (this.exitStatus(id)) throw conflict(`Container ${id} is not running`);
    try {
      writeResize(path.join(rec.bundleDir, 'ctl'), height, width);
    } catch (err) {
      if (hasCode(err, 'ENXIO') || hasCode(err, 'ENOENT')) throw conflict(`Container ${id} is not running`);
      throw err;
    }
  }

  resizeExec(id: string, execId: string, height: number, width: number): void {
    checkId(execId, 'exec');
    try {
      writeResize(path.join(this.execDir(id, execId), 'ctl'), height, width);
    } catch (err) {
      if (hasCode(err, 'ENXIO') || hasCode(err, 'ENOENT')) throw conflict(`exec ${execId} is not running`);
      throw err;
    }
  }

  private execDir(id: string, execId: string): string {
    return path.join(this.ctrDir(id), 'exec', execId);
  }

  /**
   * Runs a process in a running container through conmon's exec mode, so that it too has an
   * attach socket, a resize FIFO and a recorded exit code. With attach, the socket is connected
   * before the process starts.
   */
  async exec(id: string, proc: OciProcess, opts: ExecOptions): Promise<ExecHandle> {
    const rec = this.record(id);
    const execId = opts.execId ?? randomBytes(32).toString('hex');
    checkId(execId, 'exec');
    const dir = this.execDir(id, execId);
    const exitDir = path.join(dir, 'exit');
    mkdirp(exitDir, 0o700);
    const spec: OciProcess = { ...proc, terminal: opts.tty };
    writeFileReplace(path.join(dir, 'process.json'), JSON.stringify(spec));
    const args = [
      '--api-version', '1',
      '-c', id, '-u', execId,
      '-r', this.binaries.executable(rec.runtimePath),
      '-b', dir,
      '-p', path.join(dir, 'pid'),
      '-P', path.join(dir, 'conmon.pid'),
      '--exec', '--exec-process-spec', path.join(dir, 'process.json'),
      '--exit-dir', exitDir,
      '--socket-dir-path', dir,
      '--full-attach',
      '-l', 'none',
      ...this.runtimeGlobalArgs(rec).map((a) => `--runtime-arg=${a}`),
    ];
    if (opts.tty) args.push('-t');
    if (opts.stdin && !opts.detach) args.push('-i');
    const wantAttach = !opts.detach;
    if (wantAttach) args.push('--exec-attach');
    let attach: AttachStream | undefined;
    try {
      const { first, sync } = await this.spawnConmon(args, {
        wantAttach,
        beforeStart: async () => {
          attach = await connectAttach(path.join(dir, 'attach'));
        },
      });
      const pid = await first;
      const exited = (async (): Promise<ExitStatus> => {
        const m = await sync.next();
        if (m && m.data >= 0) return { exitCode: m.data, exitedAt: new Date() };
        // The pipe closed without a code (conmon killed): the exit file is the other witness.
        return readExitFile(path.join(exitDir, id)) ?? { exitCode: 255, exitedAt: new Date(), lost: true };
      })();
      return { execId, pid, attach, exited };
    } catch (err) {
      (attach as AttachStream | undefined)?.close();
      fs.rmSync(dir, { recursive: true, force: true });
      const msg = (err as RuntimeError).runtimeMessage;
      if (msg !== undefined) throw new RuntimeError(`OCI runtime exec failed: ${msg}`, msg);
      throw err;
    }
  }

  /** What running `<runtime> exec` for a health probe takes (src/runtime/probe.ts). */
  probeTarget(id: string): ProbeTarget {
    const rec = this.record(id);
    return { id, runtimePath: rec.runtimePath, runtimeRoot: rec.runtimeRoot, runtimeArgs: rec.runtimeArgs, dir: this.ctrDir(id) };
  }

  /** The recorded exit of an exec session, if it has exited. */
  execExitStatus(id: string, execId: string): ExitStatus | undefined {
    checkId(execId, 'exec');
    return readExitFile(path.join(this.execDir(id, execId), 'exit', id));
  }

  /** Forgets an exec session's files (after its exit has been read). */
  removeExec(id: string, execId: string): void {
    checkId(execId, 'exec');
    fs.rmSync(this.execDir(id, execId), { recursive: true, force: true });
  }
}

function readExitFile(file: string): ExitStatus | undefined {
  let text: string;
  let st: fs.Stats;
  try {
    text = fs.readFileSync(file, 'utf8');
    st = fs.statSync(file);
  } catch {
    return undefined;
  }
  const code = Number(text.trim());
  if (text.trim() === '' || !Number.isInteger(code)) return undefined;
  // conmon writes -1 when it could not get a status (timed out): report it as docker's unknown.
  return { exitCode: code < 0 ? 255 : code, exitedAt: st.mtime };
}

let nofileLimit: { soft: number; hard: number } | undefined;

/** The daemon's own RLIMIT_NOFILE, read once (containers cannot be given more). */
export function hostNofileLimit(): { soft: number; hard: number } {
  nofileLimit ??= readNofileLimit();
  return nofileLimit;
}

function readNofileLimit(): { soft: number; hard: number } {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const m = line?.match(/Max open files\s+(\S+)\s+(\S+)/);
    if (m) {
      const val = (s: string): number => (s === 'unlimited' ? 1048576 : Number(s));
      return { soft: val(m[1]), hard: val(m[2]) };
    }
  } catch {}
  return { soft: 1024, hard: 1024 };
}

/** Everything read from a pipe's read end (which is closed after), as text. */
function readAll(fd: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = new net.Socket({ fd, readable: true, writable: false });
    const chunks: Buffer[] = [];
    sock.on('data', (b: Buffer) => chunks.push(b));
    sock.on('error', () => {});
    sock.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}
