// Error kinds, as moby's errdefs: every subsystem throws one of these, and the API layer maps the
// kind to an HTTP status in one place (statusOf). Messages are written as dockerd writes them,
// because clients (the docker CLI, docker-py) show them to people verbatim.

export type ErrorKind =
  | 'NotFound'
  | 'InvalidParameter'
  | 'Conflict'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotImplemented'
  | 'NotModified'
  | 'Unavailable'
  | 'System';

export class BerthError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = `${kind}Error`;
  }
}

export const notFound = (msg: string): BerthError => new BerthError('NotFound', msg);
export const invalidParameter = (msg: string): BerthError => new BerthError('InvalidParameter', msg);
export const conflict = (msg: string): BerthError => new BerthError('Conflict', msg);
export const unauthorized = (msg: string): BerthError => new BerthError('Unauthorized', msg);
export const forbidden = (msg: string): BerthError => new BerthError('Forbidden', msg);
export const notImplemented = (msg: string): BerthError => new BerthError('NotImplemented', msg);
export const notModified = (msg: string): BerthError => new BerthError('NotModified', msg);
export const unavailable = (msg: string): BerthError => new BerthError('Unavailable', msg);
export const systemError = (msg: string, cause?: unknown): BerthError => new BerthError('System', msg, { cause });

const STATUS: Record<ErrorKind, number> = {
  NotFound: 404,
  InvalidParameter: 400,
  Conflict: 409,
  Unauthorized: 401,
  Forbidden: 403,
  NotImplemented: 501,
  NotModified: 304,
  Unavailable: 503,
  System: 500,
};

/** The one place where an error becomes an HTTP status. Anything that is not a BerthError is a 500. */
export function statusOf(err: unknown): number {
  return err instanceof BerthError ? STATUS[err.kind] : 500;
}

export function isKind(err: unknown, kind: ErrorKind): err is BerthError {
  return err instanceof BerthError && err.kind === kind;
}

/** Message of any thrown value, for logs and error bodies. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** True for a Node.js system error with the given code (ENOENT, EEXIST, ...). */
export function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
