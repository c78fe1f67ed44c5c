// Starts a real berthd for a test, isolated from every other daemon on the machine: its own data
// root, exec root, socket, pidfile and config file under a fresh temp dir. stop() kills it by PID
// and removes what it made, and runs from t.after even when the test failed.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { cleanupLeftovers, removeIsolationRules } from './cleanup';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const BERTHD = path.join(REPO_ROOT, 'bin', 'berthd');
export const BERTH = path.join(REPO_ROOT, 'bin', 'berth');
/** The node flags on bin/berthd's #! line, which a daemon started as `node bin/berthd` must be given. */
export const BERTHD_NODE_FLAGS = /^#!\/usr\/bin\/env -S node(.*)$/m.exec(fs.readFileSync(BERTHD, 'utf8').split('\n')[0])?.[1].trim().split(/\s+/).filter(Boolean) ?? [];

export interface TestDaemon {
  dir: string;
  /** The daemon's cgroup-parent: every container it makes lives below it. */
  cgroupParent: string;
  socket: string;
  host: string;
  dataRoot: string;
  execRoot: string;
  proc: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a new berthd process on the same roots (after stop or a crash). */
  restart(): Promise<void>;
}

export interface TestDaemonOptions {
  /** A short name for the temp dir, e.g. the test file's subsystem. */
  name: string;
  args?: string[];
  config?: Record<string, unknown>;
  /** Mode of the temp dir holding the roots (mkdtemp's 0700 by default; --userns-remap needs o+x). */
  dirMode?: number;
  /** Extra node options, after bin/berthd's own (e.g. ['--require', file]). */
  nodeArgs?: string[];
}

export async function startDaemon(opts: TestDaemonOptions): Promise<TestDaemon> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `berth-${opts.name}-`));
  if (opts.dirMode !== undefined) fs.chmodSync(dir, opts.dirMode);
  const dataRoot = path.join(dir, 'data');
  const execRoot = path.join(dir, 'exec');
  const socket = path.join(dir, 'berth.sock');
  const configFile = path.join(dir, 'daemon.json');
  // Each test daemon gets its own cgroup parent so that its containers can be found and removed.
  const config = { 'cgroup-parent': `berth-test-${opts.name}-${process.pid}-${randomBytes(3).toString('hex')}`, ...(opts.config ?? {}) };
  const cgroupParent = String(config['cgroup-parent']);
  fs.writeFileSync(configFile, JSON.stringify(config));
  let output = '';
  const args = ['-H', `unix://${socket}`, '--data-root', dataRoot, '--exec-root', execRoot, '--pidfile', path.join(dir, 'berthd.pid'), '--config-file', configFile, ...(opts.args ?? [])];

  const d: TestDaemon = {
    dir, cgroupParent, socket, host: `unix://${socket}`, dataRoot, execRoot,
    proc: undefined as unknown as ChildProcess,
    logs: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const p = d.proc;
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once('exit', r));
        p.kill(signal);
        const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
    async restart() {
      await d.stop();
      await launch();
    },
  };

  async function launch(): Promise<void> {
    const p = spawn(process.execPath, [...BERTHD_NODE_FLAGS, ...(opts.nodeArgs ?? []), BERTHD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    d.proc = p;
    p.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    p.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`berthd exited with ${p.exitCode}:\n${output}`);
      if (await ping(socket)) return;
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        throw new Error(`berthd did not answer /_ping within 20s:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  await launch();
  return d;
}

/**
 * Stops the daemon and removes everything it made: containers outlive berthd, so their conmons and
 * processes are killed by PID, its cgroups removed and its mounts unmounted before the temp dir
 * goes. Safe to call twice and after failures.
 */
export async function destroyDaemon(d: TestDaemon | undefined): Promise<void> {
  if (!d) return;
  await d.stop('SIGTERM').catch(() => {});
  cleanupLeftovers(d.dir, d.cgroupParent);
  removeIsolationRules(d.dataRoot);
  fs.rmSync(d.dir, { recursive: true, force: true });
}

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: socket, path: '/_ping', method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

export interface ApiResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = unknown>(): T;
}

/** A raw HTTP call to the daemon's socket. */
export function api(socket: string, method: string, urlPath: string, body?: Buffer | string | object, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    let payload: Buffer | undefined;
    if (body !== undefined) {
      if (Buffer.isBuffer(body)) payload = body;
      else if (typeof body === 'string') payload = Buffer.from(body);
      else {
        payload = Buffer.from(JSON.stringify(body));
        headers = { 'Content-Type': 'application/json', ...headers };
      }
    }
    const req = http.request({ socketPath: socket, path: urlPath, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json: <T>() => JSON.parse(buf.toString()) as T });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Runs a command and collects its output (for the docker CLI and berth). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: Buffer | string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string; stdoutBuf: Buffer }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code: code ?? -1, stdout: stdoutBuf.toString(), stderr: Buffer.concat(err).toString(), stdoutBuf });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input);
  });
}

/** Runs the real docker CLI against a test daemon. */
export function docker(d: TestDaemon, args: string[], opts: { input?: Buffer | string; timeoutMs?: number } = {}) {
  return run('docker', args, { ...opts, env: { DOCKER_HOST: d.host, DOCKER_CONFIG: path.join(d.dir, 'docker-config') } });
}

/** Runs our own client against a test daemon. */
export function berth(d: TestDaemon, args: string[], opts: { input?: Buffer | string; timeoutMs?: number } = {}) {
  return run(process.execPath, [BERTH, ...args], { ...opts, env: { BERTH_HOST: d.host, BERTH_CONFIG: path.join(d.dir, 'berth-config') } });
}
