// The archive package: safe layer extraction, deterministic tar creation, overlay diffs.
export { applyLayer, emptyDirectory, ApplyOptions, ApplyResult, WHITEOUT_PREFIX, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, OVERLAY_OPAQUE_XATTR } from './apply';
export { tarDirectory, overlayUpperToLayer, TarOptions } from './create';
export { changes, Change, ChangeKind } from './changes';
export { detectCompression, Compression } from './compression';
