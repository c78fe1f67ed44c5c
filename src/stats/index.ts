export { readStats, emptyStats, parseProcStat, parseNetDev, parseIoStatV2, ZERO_TIME } from './read';
export type { ReadStatsOptions } from './read';
export { writeStats, parseStatsQuery } from './stream';
export type { StatsTarget, StatsRequest, StatsStreamOptions } from './stream';
export type { StatsResponse, CpuStats, MemoryStats, BlkioStats, BlkioEntry, NetworkStats } from './types';
