export {
  defaultSeccompProfile, resolveSeccompProfile, parseSeccompProfile, seccompForContainer, kernelAtLeast, defaultProfileJSON,
} from './seccomp';
export type { OciSeccomp, OciSeccompSyscall, DockerSeccompProfile, DockerSeccompSyscall, SeccompArg, SeccompAction, SeccompOp, SeccompTarget } from './seccomp';
export { DEFAULT_PROFILE, CLONE_NAMESPACE_FLAGS, AF_VSOCK } from './seccomp-default';
