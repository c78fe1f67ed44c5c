// Shared set-up for the runtime tests: a busybox rootfs, bundles, ids, and cleanup that works
// even when a test fails (processes killed by pid, runtime state deleted, cgroups removed).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ensureCgroupsUsable, removeCgroup, cgroupPids } from '../../src/runtime/cgroups';
import { generateSpec, type ContainerSpec } from '../../src/runtime/spec';
import { ConmonRuntime, hostNofileLimit } from '../../src/runtime/runtime';
import { silentLogger } from '../../src/common/logger';

export const CRUN = '/usr/bin/crun';
export const RUNC = '/usr/bin/runc';
export const CGROUP_PARENT = `berth-test-runtime-${process.pid}`;

let cgroupsChecked = false;
export function setupCgroups(): void {
  if (cgroupsChecked) return;
  ensureCgroupsUsable(silentLogger);
  cgroupsChecked = true;
}

export function randomId(): string {
  return randomBytes(32).toString('hex');
}

/** A busybox rootfs: /bin/busybox (static) with applet links, /etc/passwd and /etc/group. */
export function makeRootfs(dir: string): void {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'echo', 'sleep', 'cat', 'true', 'false', 'ls', 'id', 'head', 'seq', 'yes', 'printf', 'env', 'hostname', 'stty', 'kill', 'ps', 'wc', 'grep', 'tail', 'df']) {
    fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  }
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  fs.writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
}

export interface TestEnv {
  root: string;
  rootfs: string;
  runtime: ConmonRuntime;
  /** A fresh ConmonRuntime over the same state (a "restarted daemon"). */
  newRuntime(): ConmonRuntime;
  /** Writes a bundle for a new container; returns its id, bundle dir and log path. */
  bundle(spec: Partial<ContainerSpec> & { args: string[] }, id?: string): { id: string; bundleDir: string; logPath: string; cgroupsPath: string };
  created: string[];
}

/** Creates an isolated environment and registers its cleanup with t.after. */
export function makeEnv(t: { after(fn: () => Promise<void> | void): void }): TestEnv {
  setupCgroups();
  const root = fs.mkdtempSync('/tmp/berth-runtime-test-');
  const rootfs = path.join(root, 'rootfs');
  makeRootfs(rootfs);
  const stateRoot = path.join(root, 'state');
  const runtimes: ConmonRuntime[] = [];
  const mk = (): ConmonRuntime => {
    const r = new ConmonRuntime({ stateRoot });
    runtimes.push(r);
    return r;
  };
  const env: TestEnv = {
    root,
    rootfs,
    runtime: mk(),
    newRuntime: mk,
    created: [],
    bundle(spec, id = randomId()) {
      const bundleDir = path.join(root, 'b', id.slice(0, 12));
      fs.mkdirSync(bundleDir, { recursive: true });
      const cgroupsPath = `/${CGROUP_PARENT}/${id}`;
      const oci = generateSpec({ rootfs, cgroupsPath, hostNofile: hostNofileLimit(), env: ['PATH=/bin'], hostname: 'berthtest', ...spec });
      fs.writeFileSync(path.join(bundleDir, 'config.json'), JSON.stringify(oci));
      env.created.push(id);
      return { id, bundleDir, logPath: path.join(bundleDir, 'ctr.log'), cgroupsPath };
    },
  };
  t.after(async () => {
    for (const r of runtimes) r.close();
    for (const id of env.created) {
      const dir = path.join(stateRoot, 'ctr', id);
      // Kill conmon (and the container's processes, by cgroup) by pid, then delete runtime state.
      for (const f of ['conmon.pid', 'pid']) {
        let pid = 0;
        try { pid = Number(fs.readFileSync(path.join(dir, f), 'utf8').trim()) || 0; } catch {}
        if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch {}
      }
      for (const pid of cgroupPids(`/${CGROUP_PARENT}/${id}`)) try { process.kill(pid, 'SIGKILL'); } catch {}
      for (const rt of [CRUN, RUNC]) {
        for (const rroot of [path.join(stateRoot, `runtime-${path.basename(rt)}`)]) {
          if (!fs.existsSync(path.join(rroot, id))) continue;
          try { execFileSync(rt, [`--root=${rroot}`, 'delete', '--force', id], { stdio: 'ignore' }); } catch {}
        }
      }
    }
    await removeCgroup(`/${CGROUP_PARENT}`, { recursive: true, retryMs: 1000 });
    fs.rmSync(root, { recursive: true, force: true });
  });
  return env;
}

/** Reads a whole log file's data lines, "stream:line". */
export function logLines(file: string): string[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => {
    const [, stream, , ...rest] = l.split(' ');
    return `${stream}:${rest.join(' ')}`;
  });
}
