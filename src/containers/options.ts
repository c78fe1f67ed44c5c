// HostConfig options that become parts of the OCI spec: --security-opt (seccomp,
// no-new-privileges) and the resource limits (--memory, --cpus, --pids-limit, ...), with dockerd's
// validation and wording, so that a bad value is a 400 at create rather than a failure at start.
import { invalidParameter } from '../common/errors';
import type { OciResources } from '../runtime/spec';
import type { HostConfig } from './store';

export interface SecurityOptions {
  /** The seccomp=<value> given ("unconfined", "builtin", or a profile's JSON text); undefined: the default. */
  seccomp?: string;
  /** The apparmor=<profile> given; applied only where the host has AppArmor (security/apparmor.ts). */
  apparmor?: string;
  noNewPrivileges: boolean;
}

/** Go's strconv.ParseBool, which dockerd uses for no-new-privileges=<bool>. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/**
 * Parses HostConfig.SecurityOpt as dockerd does. label options are accepted and have no effect
 * (no SELinux support, as docker on a host without it); apparmor is applied where the host has it.
 */
export function parseSecurityOpts(opts: readonly string[] | null | undefined): SecurityOptions {
  const out: SecurityOptions = { noNewPrivileges: false };
  for (const opt of opts ?? []) {
    if (opt === 'no-new-privileges') {
      out.noNewPrivileges = true;
      continue;
    }
    if (opt === 'disable') continue;
    // "key=value"; the old "key:value" form is still taken (dockerd only warns about it).
    const sep = opt.includes('=') ? '=' : opt.includes(':') ? ':' : '';
    if (sep === '') throw invalidParameter(`invalid --security-opt 1: ${JSON.stringify(opt)}`);
    const k = opt.slice(0, opt.indexOf(sep));
    const v = opt.slice(opt.indexOf(sep) + 1);
    switch (k) {
      case 'label':
        break;
      case 'apparmor':
        out.apparmor = v;
        break;
      case 'seccomp':
        out.seccomp = v;
        break;
      case 'no-new-privileges': {
        const b = parseGoBool(v);
        if (b === undefined) throw invalidParameter(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
        out.noNewPrivileges = b;
        break;
      }
      default:
        throw invalidParameter(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
    }
  }
  return out;
}

/** docker's smallest memory limit. */
export const MIN_MEMORY = 6 * 1024 * 1024;

function num(hc: Partial<HostConfig>, key: string): number {
  const v = hc[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * Checks the resource fields of a create request (dockerd's verifyPlatformContainerResources
 * wording) and fills docker's defaults in place: a memory limit without a swap limit gets swap
 * equal to it (MemorySwap = 2 x Memory).
 */
export function validateResources(hc: Partial<HostConfig>): void {
  const memory = num(hc, 'Memory');
  const swap = num(hc, 'MemorySwap');
  const reservation = num(hc, 'MemoryReservation');
  if (memory < 0) throw invalidParameter('invalid memory limit: must be a positive value');
  if (memory > 0 && memory < MIN_MEMORY) throw invalidParameter('Minimum memory limit allowed is 6MB');
  if (swap > 0 && memory === 0) throw invalidParameter('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (swap > 0 && swap < memory) throw invalidParameter('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (reservation > 0 && memory > 0 && memory < reservation) throw invalidParameter('Minimum memory limit can not be less than memory reservation limit, see usage');
  if (reservation > 0 && reservation < MIN_MEMORY) throw invalidParameter('Minimum memory reservation allowed is 6MB');
  const swappiness = hc.MemorySwappiness;
  if (typeof swappiness === 'number' && swappiness !== -1 && (swappiness < 0 || swappiness > 100)) {
    throw invalidParameter(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
  }
  const nanoCpus = num(hc, 'NanoCpus');
  if (nanoCpus < 0) throw invalidParameter('Range of CPUs is from 0.01 to available CPUs');
  if (nanoCpus > 0 && (num(hc, 'CpuQuota') > 0 || num(hc, 'CpuPeriod') > 0)) {
    throw invalidParameter('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  }
  const period = num(hc, 'CpuPeriod');
  if (period !== 0 && (period < 1000 || period > 1_000_000)) throw invalidParameter('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  const quota = num(hc, 'CpuQuota');
  if (quota !== 0 && quota < 1000) throw invalidParameter('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (memory > 0 && swap === 0) hc.MemorySwap = memory * 2;
}

/** The OCI resources of a container's HostConfig (devices are the spec generator's). */
export function resourcesOf(hc: Partial<HostConfig>): Omit<OciResources, 'devices'> {
  const out: Omit<OciResources, 'devices'> = {};
  const memory: NonNullable<OciResources['memory']> = {};
  if (num(hc, 'Memory') > 0) memory.limit = num(hc, 'Memory');
  // OCI's swap is memory+swap, docker's MemorySwap too; -1 is unlimited in both.
  const swap = num(hc, 'MemorySwap');
  if (swap > 0 || swap === -1) memory.swap = swap;
  if (num(hc, 'MemoryReservation') > 0) memory.reservation = num(hc, 'MemoryReservation');
  if (typeof hc.MemorySwappiness === 'number' && hc.MemorySwappiness >= 0) memory.swappiness = hc.MemorySwappiness;
  if (hc.OomKillDisable === true) memory.disableOOMKiller = true;
  if (Object.keys(memory).length > 0) out.memory = memory;

  const cpu: NonNullable<OciResources['cpu']> = {};
  if (num(hc, 'CpuShares') > 0) cpu.shares = num(hc, 'CpuShares');
  const nano = num(hc, 'NanoCpus');
  if (nano > 0) {
    // --cpus: a quota over docker's 100 ms period.
    cpu.period = 100_000;
    cpu.quota = Math.round((nano * 100_000) / 1e9);
  } else {
    if (num(hc, 'CpuPeriod') > 0) cpu.period = num(hc, 'CpuPeriod');
    if (num(hc, 'CpuQuota') > 0) cpu.quota = num(hc, 'CpuQuota');
  }
  if (typeof hc.CpusetCpus === 'string' && hc.CpusetCpus !== '') cpu.cpus = hc.CpusetCpus;
  if (typeof hc.CpusetMems === 'string' && hc.CpusetMems !== '') cpu.mems = hc.CpusetMems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  const pids = hc.PidsLimit;
  if (typeof pids === 'number' && pids !== 0) out.pids = { limit: pids < 0 ? -1 : pids };
  const weight = num(hc, 'BlkioWeight');
  if (weight > 0) out.blockIO = { weight };
  return out;
}
