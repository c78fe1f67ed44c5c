// Compiled seccomp filters, reused. crun compiles the container's seccomp profile with libseccomp
// at every `crun create` (its own cache of compiled filters needs libgcrypt, which Debian's crun
// 1.8 is built without): about 10 ms of CPU per start for docker's default profile. crun also
// takes a compiled filter ready-made, through the annotation run.oci.seccomp_bpf_data (base64 of
// the raw program it hands to seccomp(2); crun 1.8's crun.1 documents it; the spec's seccomp
// section still gives the flags and the notify listener, and `crun exec` loads the same program
// from the state dir).
//
// berth compiles nothing itself. The first container with a profile is created as before, and
// crun leaves the program it built in its state directory (<root>/<id>/seccomp.bpf); later
// containers with the same profile, the same runtime binary and the same kernel get those exact
// bytes. So the filter a container gets is always one crun built for that profile. A runtime that
// leaves no seccomp.bpf (runc) never gets the annotation.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';

export const SECCOMP_BPF_ANNOTATION = 'run.oci.seccomp_bpf_data';
/** crun's option that changes how a profile compiles (unknown syscall names fail). */
const FAIL_UNKNOWN_ANNOTATION = 'run.oci.seccomp_fail_unknown_syscall';
/** Profiles remembered (docker's default under a few capability sets, and custom ones). */
const MAX_ENTRIES = 32;
/** crun's seccomp.bpf of docker's default profile is ~6 KB; refuse anything absurd. */
const MAX_PROGRAM_BYTES = 1 << 20;

interface SpecLike {
  annotations?: Record<string, string>;
  linux?: { seccomp?: unknown };
}

export class SeccompBpfCache {
  /** key → base64 program; Map order is insertion order, the oldest goes first. */
  private readonly programs = new Map<string, string>();

  /**
   * The cache key of a spec's filter under a runtime binary, or undefined when the spec has no
   * seccomp section or sets the program itself (docker run --annotation run.oci.seccomp_bpf_data=...).
   */
  key(runtimePath: string, spec: SpecLike): string | undefined {
    if (!spec.linux?.seccomp || spec.annotations?.[SECCOMP_BPF_ANNOTATION] !== undefined) return undefined;
    let runtime: fs.Stats;
    try {
      runtime = fs.statSync(runtimePath);
    } catch {
      return undefined;
    }
    // What the compiled program depends on besides the profile: the runtime (and the libseccomp it
    // was built against; a library upgrade that keeps crun's file is not seen until a restart),
    // crun's fail-unknown option, and the kernel (crun's own cache keys on uname the same way).
    return createHash('sha256').update(JSON.stringify({
      seccomp: spec.linux.seccomp,
      failUnknown: spec.annotations?.[FAIL_UNKNOWN_ANNOTATION] ?? null,
      runtime: [runtimePath, runtime.dev, runtime.ino, runtime.size, runtime.mtimeMs],
      kernel: [os.release(), os.version(), os.machine()],
    })).digest('hex');
  }

  /** The program for key (base64), if a container with that key was created before. */
  get(key: string): string | undefined {
    return this.programs.get(key);
  }

  /**
   * Remembers the program the runtime compiled for key, from its state file (crun's
   * <root>/<id>/seccomp.bpf, read right after a successful create). No file: nothing learnt.
   */
  learn(key: string, stateFile: string | undefined): void {
    if (!stateFile || this.programs.has(key)) return;
    let program: Buffer;
    try {
      program = fs.readFileSync(stateFile);
    } catch {
      return;
    }
    // A BPF program is a whole number of 8-byte instructions.
    if (program.length === 0 || program.length % 8 !== 0 || program.length > MAX_PROGRAM_BYTES) return;
    if (this.programs.size >= MAX_ENTRIES) this.programs.delete(this.programs.keys().next().value as string);
    this.programs.set(key, program.toString('base64'));
  }
}
