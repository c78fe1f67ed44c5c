// Snapshotters: see types.ts for the interface, overlay.ts for the overlayfs implementation.
export { Mount, SnapshotInfo, SnapshotKind, SnapshotOptions, Snapshotter, Usage } from './types';
export { OverlaySnapshotter, EXTRACT_KEY_PREFIX, diskUsage } from './overlay';
export { mountAll, unmountAll, unmountAllAsync, parseMountOptions } from './mount';
export type { MountAllOptions } from './mount';
