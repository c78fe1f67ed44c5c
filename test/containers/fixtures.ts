// Shared fixtures for container tests: a busybox image imported from the host's static busybox,
// and a daemon whose containers, mounts, conmons and cgroups are all cleaned up by pid and path
// even when a test fails.
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as tar from 'tar-stream';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';

let tarCache: Buffer | undefined;

/** A rootfs tar: /bin/busybox with a symlink per applet, /etc/passwd and /etc/group. */
export async function busyboxTar(): Promise<Buffer> {
  if (tarCache) return tarCache;
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  const mtime = new Date(0);
  for (const d of ['bin', 'etc', 'tmp', 'root', 'usr', 'usr/bin', 'sbin', 'home']) pack.entry({ name: d, type: 'directory', mode: d === 'tmp' ? 0o1777 : 0o755, mtime });
  pack.entry({ name: 'bin/busybox', mode: 0o755, mtime }, fs.readFileSync('/bin/busybox'));
  const applets = execFileSync('/bin/busybox', ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) pack.entry({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox', mtime });
  pack.entry({ name: 'etc/passwd', mode: 0o644, mtime }, 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  pack.entry({ name: 'etc/group', mode: 0o644, mtime }, 'root:x:0:\ndaemon:x:1:\ntty:x:5:\nstaff:x:50:nobody\nnogroup:x:65534:\n');
  pack.finalize();
  await done;
  tarCache = Buffer.concat(chunks);
  return tarCache;
}

/** Imports busybox:latest (CMD ["sh"]) into the daemon. */
export async function importBusybox(d: TestDaemon, repo = 'busybox'): Promise<void> {
  const changes = encodeURIComponent('CMD ["sh"]');
  const r = await api(d.socket, 'POST', `/images/create?fromSrc=-&repo=${repo}&tag=latest&changes=${changes}`, await busyboxTar(), { 'Content-Type': 'application/x-tar' });
  if (r.status !== 200) throw new Error(`import failed: ${r.status} ${r.body.toString()}`);
}

export { mountsUnder, pidsMentioning, cgroupDirsOf } from '../helpers/cleanup';

export interface CtrEnv {
  d: TestDaemon;
  cgroupParent: string;
  docker(args: string[], opts?: { input?: Buffer | string; timeoutMs?: number }): ReturnType<typeof docker>;
  /** Idempotent; call it from the test file's top-level after(). */
  cleanup(): Promise<void>;
}

/**
 * A daemon with busybox imported, in its own cgroup parent. cleanup() (register it with a
 * top-level after(), or t.after) stops the daemon, kills every process of its containers by pid (conmons by their command line,
 * container processes by cgroup), unmounts what is mounted under its dirs, removes its cgroups
 * and its temp dir.
 */
export async function setupDaemon(name: string): Promise<CtrEnv> {
  const d = await startDaemon({ name: `ctr-${name}` });
  const cgroupParent = d.cgroupParent;
  const cleanup = async (): Promise<void> => {
    await d.stop('SIGKILL').catch(() => {});
    await destroyDaemon(d);
  };
  const env: CtrEnv = { d, cgroupParent, docker: (args, opts) => docker(d, args, opts), cleanup };
  try {
    await importBusybox(d);
  } catch (err) {
    await cleanup();
    throw err;
  }
  return env;
}

/** Entry names of a tar archive. */
export async function tarNames(buf: Buffer): Promise<string[]> {
  const names: string[] = [];
  const ex = tar.extract();
  ex.on('entry', (h, stream, next) => {
    names.push(h.name.replace(/^\.\//, '').replace(/\/$/, ''));
    stream.on('end', next);
    stream.resume();
  });
  const done = new Promise<void>((resolve, reject) => {
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  ex.end(buf);
  await done;
  return names;
}

/** The fields of GET /containers/{id}/json that the tests read. */
export interface ContainerJSON {
  Name: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number; StartedAt: string; FinishedAt: string };
  RestartCount: number;
  Driver: string;
  Platform: string;
  Config: { Labels: Record<string, string>; Cmd: string[] };
  HostConfig: { RestartPolicy: { Name: string } };
  GraphDriver: { Data: { UpperDir: string } };
}
