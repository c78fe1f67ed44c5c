// The container runtime's side of the classic builder: a RUN step is a container made from the
// previous step's image (docker's create + attach + start + wait), its stdout and stderr merged
// into the build output, its overlay upper directory turned into the step's layer, and its
// removal. Everything goes through the ContainerService's public methods, so a build container is
// an ordinary container while it exists (it shows in `docker ps -a`, emits events, and is
// recovered or cleaned up like any other).
import type { Readable } from 'node:stream';
import { isKind, messageOf } from '../common/errors';
import type { Logger } from '../common/logger';
import { overlayUpperToLayer } from '../archive/create';
import type { AttachStream } from '../runtime/attach';
import type { AttachClient, ContainerService, CreateRequest } from '../containers/service';
import type { BuildExecutor, RunStep } from './builder';

/** The part of the ContainerService a build needs. */
export type BuildContainers = Pick<ContainerService, 'create' | 'attach' | 'detachPending' | 'start' | 'wait' | 'kill' | 'remove' | 'layerDirs' | 'tarOwnerMap'>;

/**
 * How long the output may trail the exit: conmon closes the attach socket once the process's
 * output is drained, which is normally at once; this only bounds a lost close.
 */
const OUTPUT_DRAIN_MS = 5_000;

export class ContainerBuildExecutor implements BuildExecutor {
  constructor(
    private readonly containers: BuildContainers,
    private readonly log: Logger,
  ) {}

  async create(step: RunStep): Promise<string> {
    const req: CreateRequest = {
      Image: step.parentImage,
      Cmd: step.cmd,
      // An empty (not null) Entrypoint: the image's entrypoint must not wrap the step's command.
      Entrypoint: [],
      Env: step.env,
      User: step.user,
      WorkingDir: step.workdir,
      Labels: step.runConfig.Labels ?? {},
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: {
        // Build containers get a private network namespace with loopback only: the daemon has
        // no bridge for them, and builds must not depend on the host's network either way.
        NetworkMode: 'none',
        ExtraHosts: step.extraHosts.length ? step.extraHosts : null,
        ...(step.shmSize ? { ShmSize: step.shmSize } : {}),
        ...(step.memory ? { Memory: step.memory } : {}),
        ...(step.memorySwap ? { MemorySwap: step.memorySwap } : {}),
        ...(step.cpuShares ? { CpuShares: step.cpuShares } : {}),
        ...(step.cpuSetCpus ? { CpusetCpus: step.cpuSetCpus } : {}),
        ...(step.cpuQuota ? { CpuQuota: step.cpuQuota } : {}),
        ...(step.cpuPeriod ? { CpuPeriod: step.cpuPeriod } : {}),
        ...(step.ulimits ? { Ulimits: step.ulimits } : {}),
      } as CreateRequest['HostConfig'],
    };
    const { Id } = await this.containers.create(null, req);
    return Id;
  }

  async start(containerId: string, output: (chunk: Buffer) => void, signal?: AbortSignal): Promise<number> {
    // The waiter and the attach client are registered before the start, so neither the exit nor
    // the first bytes of output can be missed.
    const exited = this.containers.wait(containerId, 'next-exit');
    let io: AttachStream | undefined;
    let outputDone!: () => void;
    const drained = new Promise<void>((resolve) => (outputDone = resolve));
    const client: AttachClient = {
      connect: (s) => {
        io = s;
        s.on('stdout', output);
        s.on('stderr', output);
        s.on('end', outputDone);
        s.on('error', outputDone);
      },
      abandon: outputDone,
    };
    await this.containers.attach(containerId, client);
    const abort = (): void => {
      this.containers.kill(containerId, 'SIGKILL').catch((err) => {
        if (!isKind(err, 'Conflict')) this.log.warn('killing a cancelled build container failed', { id: containerId, err: messageOf(err) });
      });
    };
    try {
      await this.containers.start(containerId);
    } catch (err) {
      this.containers.detachPending(containerId, client);
      throw err;
    }
    if (signal?.aborted) abort();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      const { StatusCode } = await exited;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise<void>((r) => (timer = setTimeout(r, OUTPUT_DRAIN_MS)))]);
      clearTimeout(timer);
      return StatusCode;
    } finally {
      signal?.removeEventListener('abort', abort);
      io?.close();
    }
  }

  async diff(containerId: string): Promise<Readable> {
    const { upper } = this.containers.layerDirs(containerId);
    return overlayUpperToLayer(upper, { mapOwner: this.containers.tarOwnerMap() });
  }

  async remove(containerId: string): Promise<void> {
    await this.containers.remove(containerId, { force: true });
  }
}
