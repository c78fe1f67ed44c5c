// The OCI runtime layer's public surface: crun/runc driven through conmon, spec generation,
// cgroup set-up and the k8s-file log reader.
export { ConmonRuntime, RuntimeError, hostNofileLimit, runtimeMessage } from './runtime';
export type {
  OciRuntime, RuntimeLifecycle, RuntimeMonitor, RuntimeIO, CreateOptions, ContainerRecord, ContainerStatus, RuntimeState,
  RecoveredContainer, ExitStatus, ExecOptions, ExecHandle, ConmonRuntimeOptions,
} from './runtime';
export { AttachStream, connectAttach } from './attach';
export { generateSpec, generateExecProcess, computeCapabilities, SpecError, DEFAULT_CAPABILITIES, DEFAULT_SHM_SIZE } from './spec';
export type { ContainerSpec, ExecSpec, OciSpec, OciProcess, OciMount, OciDevice, NamespaceMode, Rlimit } from './spec';
export { ensureCgroupsUsable, detectCgroupLayout, currentCgroupLayout, removeCgroup, cgroupDirs, cgroupPids } from './cgroups';
export type { CgroupsStatus, CgroupLayout } from './cgroups';
export { parseK8sRecord, formatRfc3339NanoUTC, parseRfc3339Nano } from './k8slog';
export type { LogRecord, ReadLogOptions } from './k8slog';
export { hostDevices, deviceFromPath } from './devices';
