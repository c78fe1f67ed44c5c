// Modules for work an idle daemon does not do (image import and load, docker cp, logs, stats,
// builds, registry access, TLS, worker threads) are loaded on their first use instead of at
// start-up: an idle berthd's resident memory is one of berth's targets, and each such module
// costs heap for its code and, for Node's own modules, pages of the node binary.

/**
 * Returns a getter that loads a module the first time it is called. Pass a closure that calls
 * `require` in the calling file, so the path resolves from there:
 * `const logReader = lazyModule(() => require('../logs/reader') as typeof import('../logs/reader'));`
 */
export function lazyModule<T>(load: () => T): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= load());
}
