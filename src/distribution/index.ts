// The registry client side of berthd: pull, push and login.
export { DistributionService, pullReference, readLoginBody, type DistributionOptions, type DistributionBackend, type LoginBackend, type LoginResult } from './service';
export { RegistryClient, RemoteRepository, Session, isLoopbackHost, type Endpoint } from './client';
export { decodeAuthHeader, serverAddressDomain, type AuthConfig } from './authconfig';
export { humanSize, progressText, ProgressWriter } from './progress';
export { buildManifest } from './push';
export { parsePlatform, choosePlatform, formatPlatform } from './pull';
