// Probes as dockerd runs them: an exec of the container (so `docker events` shows its
// exec_create / exec_start / exec_die, as with dockerd) with stdout and stderr collected, no tty,
// no stdin, the container's user and working directory. Unlike `docker exec` it runs without
// conmon: the OCI runtime's exec is berthd's own child (src/runtime/probe.ts), which is most of
// what makes 100 containers probing every second cheap. The exec's record is dropped once the
// result is taken, so probing does not grow the daemon's exec table.
import type { Readable } from 'node:stream';
import type { ProbeExecutor, ProbeProcess } from './monitor';

/** The exec operations of the container service that probes use. */
export interface ExecService {
  createExec(ref: string, req: { Cmd?: string[]; AttachStdout?: boolean; AttachStderr?: boolean }): string;
  startProbeExec(id: string): Promise<{ stdout: Readable; stderr: Readable; exited: Promise<{ exitCode: number; startError?: string }>; kill(): void }>;
  forgetExec(id: string): void;
}

export function execProbes(svc: ExecService): ProbeExecutor {
  return {
    async startProbe(containerId: string, cmd: string[]): Promise<ProbeProcess> {
      const execId = svc.createExec(containerId, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
      try {
        const run = await svc.startProbeExec(execId);
        return { output: pipesOutput(run.stdout, run.stderr), exited: run.exited, kill: () => run.kill(), release: () => svc.forgetExec(execId) };
      } catch (err) {
        svc.forgetExec(execId);
        throw err;
      }
    },
  };
}

/** The probe's two pipes as the monitor reads output: 'stdout', 'stderr', then 'end' once both are drained. */
function pipesOutput(stdout: Readable, stderr: Readable): NonNullable<ProbeProcess['output']> {
  const listeners: { stdout: ((b: Buffer) => void)[]; stderr: ((b: Buffer) => void)[]; end: (() => void)[] } = { stdout: [], stderr: [], end: [] };
  const early: { stdout: Buffer[]; stderr: Buffer[] } = { stdout: [], stderr: [] };
  let open = 2;
  const out = {
    closed: false,
    on(ev: 'stdout' | 'stderr' | 'end', fn: ((b: Buffer) => void) | (() => void)): unknown {
      if (ev === 'end') listeners.end.push(fn as () => void);
      else {
        listeners[ev].push(fn as (b: Buffer) => void);
        // Output that came before anyone listened.
        for (const b of early[ev].splice(0)) (fn as (b: Buffer) => void)(b);
      }
      return out;
    },
    close(): void {
      stdout.destroy();
      stderr.destroy();
    },
  };
  const ended = (): void => {
    if (--open > 0) return;
    out.closed = true;
    for (const fn of listeners.end) fn();
  };
  for (const [name, s] of [['stdout', stdout], ['stderr', stderr]] as const) {
    s.on('data', (b: Buffer) => {
      if (listeners[name].length === 0) early[name].push(b);
      for (const fn of listeners[name]) fn(b);
    });
    s.once('close', ended);
    s.on('error', () => {});
  }
  return out;
}
