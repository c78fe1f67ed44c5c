// The content store package (containerd's model): see store.ts.
export { ContentStore, ContentStoreOptions, ContentWriter, Expected, Info, Ingester, IngestStatus, Provider, ReadRange } from './store';
export { Digest, digestHex, isDigest, sha256Digest, validateDigest } from './digest';
