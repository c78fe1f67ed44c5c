// Probes as dockerd runs them: an ordinary exec of the container (so `docker events` shows its
// exec_create / exec_start / exec_die, as with dockerd), with stdout and stderr attached, no tty,
// no stdin, the container's user and working directory. The exec's record is dropped once the
// result is taken, so probing does not grow the daemon's exec table.
import type { ProbeExecutor, ProbeProcess } from './monitor';

/** The exec operations of the container service that probes use. */
export interface ExecService {
  createExec(ref: string, req: { Cmd?: string[]; AttachStdout?: boolean; AttachStderr?: boolean }): string;
  startExec(id: string, opts: { detach: boolean; tty?: boolean }): Promise<{ attach?: ProbeProcess['output']; exited: Promise<{ exitCode: number }> }>;
  getExec(id: string): { pid: number };
  forgetExec(id: string): void;
}

export function execProbes(svc: ExecService): ProbeExecutor {
  return {
    async startProbe(containerId: string, cmd: string[]): Promise<ProbeProcess> {
      const execId = svc.createExec(containerId, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
      try {
        const { attach, exited } = await svc.startExec(execId, { detach: false, tty: false });
        return { pid: svc.getExec(execId).pid, output: attach, exited, release: () => svc.forgetExec(execId) };
      } catch (err) {
        svc.forgetExec(execId);
        throw err;
      }
    },
  };
}
