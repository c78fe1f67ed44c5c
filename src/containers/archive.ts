// docker cp: GET/HEAD/PUT /containers/{id}/archive. Paths are resolved as the container sees
// them: symlinks are read and interpreted inside the container's root (an absolute link target
// starts again at the container's "/", ".." stops at it), and a path under a volume or bind mount
// maps to that mount's source. No link planted in a container can therefore make cp read or write
// outside the container's root and its mounts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline as pipelineCb, type Duplex, type Readable } from 'node:stream';
import { BerthError, invalidParameter, notFound } from '../common/errors';
import { tarDirectoryProducer, type TarProducer } from '../archive/create';
import { decompressionStages } from '../archive/compression';
import type { IdentityMapping } from '../security/userns';
import { resolveScoped, type ScopedMount, type ScopedPath } from '../common/scopedpath';
import { extractCopy } from '../archive/copy-stream';
import { dup, setSocketSendBuffer, socketFd } from '../native';
import type { ServerResponse } from 'node:http';

/**
 * The socket buffer a tar response gets (the kernel doubles it): the client reads megabytes
 * while berthd reads the next files, instead of taking turns at the default ~200 KB.
 */
export const TAR_SEND_BUFFER = 4 << 20;


/** A mount seen from inside the container: its destination and the host directory behind it. */
export type ViewMount = ScopedMount;
export type Resolved = ScopedPath;

/**
 * Resolves p inside a container rooted at root (with mounts), following symlinks within it; the
 * last component is followed only when followLast.
 */
export function resolveInContainer(root: string, p: string, mounts: ViewMount[] = [], followLast = true): Resolved {
  return resolveScoped(root, p, { mounts, followLast });
}

/** Go's os.FileMode bits, which the docker CLI decodes from the path-stat header. */
function goFileMode(st: fs.Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m |= 2 ** 31;
  else if (st.isSymbolicLink()) m |= 2 ** 27;
  else if (st.isFIFO()) m |= 2 ** 25;
  else if (st.isSocket()) m |= 2 ** 24;
  else if (st.isCharacterDevice()) m |= 2 ** 26 + 2 ** 21;
  else if (st.isBlockDevice()) m |= 2 ** 26;
  if (st.mode & 0o4000) m |= 2 ** 23;
  if (st.mode & 0o2000) m |= 2 ** 22;
  if (st.mode & 0o1000) m |= 2 ** 20;
  return m >>> 0;
}

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** A container's file system as cp sees it (already mounted). */
export interface ContainerView {
  root: string;
  mounts: ViewMount[];
  /** The container reference as the client gave it (for error messages). */
  ref: string;
  /** --userns-remap: the tree holds host IDs; tars carry container IDs. */
  idMap?: IdentityMapping;
}

function notFoundIn(view: ContainerView, p: string): Error {
  return notFound(`Could not find the file ${p} in container ${view.ref}`);
}

/** Stat of a path (the last component not followed), as X-Docker-Container-Path-Stat. */
export function statPath(view: ContainerView, p: string): { stat: PathStat; resolved: Resolved } {
  if (!p) throw invalidParameter('path cannot be empty');
  const resolved = resolveInContainer(view.root, p, view.mounts, false);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(resolved.host);
  } catch {
    throw notFoundIn(view, p);
  }
  let linkTarget = '';
  if (st.isSymbolicLink()) linkTarget = resolveInContainer(view.root, p, view.mounts, true).logical;
  const name = resolved.logical === '/' ? '/' : path.posix.basename(resolved.logical);
  return { stat: { name, size: st.size, mode: goFileMode(st), mtime: st.mtime.toISOString(), linkTarget }, resolved };
}

export function encodeStat(s: PathStat): string {
  return Buffer.from(JSON.stringify(s)).toString('base64');
}

/** A tar of the path: entries named after its base name, as docker cp produces. */
export function archivePath(view: ContainerView, p: string): { stat: PathStat; tar: TarProducer } {
  // A trailing "/." or "/" asks for a directory's content (docker's semantics): follow the link.
  const follow = /\/\.?$/.test(p);
  const { stat } = statPath(view, p);
  const resolved = resolveInContainer(view.root, p, view.mounts, follow);
  if (follow && !fs.existsSync(resolved.host)) throw notFoundIn(view, p);
  const idMap = view.idMap;
  const mapOwner = idMap ? (uid: number, gid: number) => idMap.toContainer(uid, gid) : undefined;
  if (resolved.logical === '/') return { stat, tar: tarDirectoryProducer(resolved.host, { mapOwner }) };
  const parent = path.dirname(resolved.host);
  const base = path.basename(resolved.host);
  return { stat, tar: tarDirectoryProducer(parent, { filter: (rel) => rel === base || rel.startsWith(`${base}/`), mapOwner }) };
}

/**
 * Extracts a tar into the directory p of the container (copy-in.ts' CopyInSink, through
 * copy-stream.ts). Every entry's parent is resolved inside the container (links followed within it); the
 * entry itself is never followed.
 */
export async function extractToPath(view: ContainerView, p: string, input: Readable, opts: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean }): Promise<void> {
  const dest = resolveInContainer(view.root, p, view.mounts, true);
  let st: fs.Stats;
  try {
    st = fs.statSync(dest.host);
  } catch {
    throw notFoundIn(view, p);
  }
  if (!st.isDirectory()) throw invalidParameter(`extraction point is not a directory`);
  const { stages } = await decompressionStages(input);
  // A compressed upload: the decompressor's output is what is read (a failure on either side
  // destroys both).
  const tar = stages.length === 1 ? stages[0] as Readable : (pipelineCb(stages as unknown as [Readable, Duplex], () => {}) as unknown as Readable);
  const idMap = view.idMap ? { uids: view.idMap.uids, gids: view.idMap.gids } : undefined;
  try {
    await extractCopy(tar, { kind: 'copy-in', root: view.root, mounts: view.mounts, dest, idMap, opts });
  } catch (err) {
    // An upload still arriving is cut (the client sees the connection go); one that came whole
    // stays, so that the error goes back as the response (Node discards the rest of its body).
    // The error may come from inside the parse of the request's last bytes: complete is known
    // once that is over.
    await new Promise((resolve) => setImmediate(resolve));
    if (!(input as Readable & { complete?: boolean }).complete) input.destroy();
    throw err instanceof Error && !(err instanceof BerthError) && !(err as NodeJS.ErrnoException).syscall ? invalidParameter(`failed to extract archive: ${err.message}`) : err;
  }
}

/**
 * Sends a tar as a 200 response. On a plain socket the body is delimited by closing the
 * connection (no chunked encoding), so that it can go to the socket directly: big file bodies by
 * sendfile (TarProducer.writeToSocket), through a duplicate of the socket's descriptor (Node may
 * close its own at any time; the duplicate cannot be reused for another file while in use). A
 * TLS socket gets the tar through the response as usual.
 */
/**
 * Writes a tar as a response body; a failure half-way destroys the response, so the client sees
 * a body cut short (an error), never an end that makes a partial tar look whole.
 */
export async function writeWholeOrCut(res: ServerResponse, tar: TarProducer): Promise<void> {
  try {
    await tar.writeTo(res);
  } catch (err) {
    res.destroy();
    throw err;
  }
}

export async function sendTar(res: ServerResponse, headers: Record<string, string>, tar: TarProducer): Promise<void> {
  const socket = res.socket;
  const fd = socket ? socketFd(socket) : undefined;
  if (!socket || fd === undefined) {
    res.writeHead(200, headers);
    if (socket) setSocketSendBuffer(socket, TAR_SEND_BUFFER);
    await writeWholeOrCut(res, tar);
    return;
  }
  // Neither Content-Length nor chunked: the body ends where the connection does (RFC 9112 6.3).
  res.removeHeader('Content-Length');
  res.removeHeader('Transfer-Encoding');
  res.writeHead(200, { ...headers, Connection: 'close' });
  res.flushHeaders();
  // The head must be in the kernel before the body goes around Node's stream. The response's
  // writableLength counts what its socket holds and what the response itself still queues (behind
  // an earlier response on the connection): usually nothing by now.
  for (let i = 0; res.writableLength > 0 && !socket.destroyed; i++) await new Promise((resolve) => (i < 10 ? setImmediate(resolve) : setTimeout(resolve, 5)));
  if (socket.destroyed) throw new Error('the client closed the connection');
  setSocketSendBuffer(socket, TAR_SEND_BUFFER);
  const own = dup(fd);
  try {
    await tar.writeToSocket(own);
  } catch (err) {
    // The client sees the connection close early: a tar cut short, not one that looks whole.
    socket.destroy();
    throw err;
  } finally {
    fs.closeSync(own);
  }
  res.end();
}

/** What the archive endpoints need of the container service. */
export interface ArchiveSource {
  record(ref: string): { id: string; hostConfig: { ReadonlyRootfs?: boolean } };
  mountForRead(ref: string): { dir: string; release: () => void };
  mountPoints(ref: string): { records: { Type: string; Source: string; Destination: string; RW: boolean }[] } | undefined;
  /** --userns-remap's mapping, if the daemon runs with one. */
  idMapping?(): IdentityMapping | undefined;
}

/** The HTTP side of /containers/{id}/archive (HEAD, GET, PUT). */
export async function containerArchive(svc: ArchiveSource, ctx: { req: import('node:http').IncomingMessage; res: import('node:http').ServerResponse; query: URLSearchParams }, ref: string, method: 'HEAD' | 'GET' | 'PUT'): Promise<void> {
  const p = ctx.query.get('path');
  if (!p) throw invalidParameter('path cannot be empty');
  const rec = svc.record(ref);
  const records = svc.mountPoints(ref)?.records ?? [];
  // A stopped container's root is mounted for the request (the running one's is used as is).
  const { dir, release } = svc.mountForRead(rec.id);
  try {
    const view: ContainerView = { root: dir, ref, mounts: records.filter((m) => m.Type !== 'tmpfs' && m.Source).map((m) => ({ destination: m.Destination, source: m.Source })), idMap: svc.idMapping?.() };
    if (method === 'PUT') {
      const target = resolveInContainer(view.root, p, view.mounts, true);
      const under = records.filter((m) => target.logical === m.Destination || target.logical.startsWith(`${m.Destination}/`)).sort((a, b) => b.Destination.length - a.Destination.length)[0];
      if (under ? !under.RW : rec.hostConfig.ReadonlyRootfs) throw new BerthError('Forbidden', 'container rootfs is marked read-only');
      await extractToPath(view, p, ctx.req, { noOverwriteDirNonDir: ['1', 'true'].includes(ctx.query.get('noOverwriteDirNonDir') ?? ''), copyUIDGID: ['1', 'true'].includes(ctx.query.get('copyUIDGID') ?? '') });
      ctx.res.writeHead(200, { 'Content-Length': 0 });
      ctx.res.end();
      return;
    }
    if (method === 'HEAD') {
      const { stat } = statPath(view, p);
      ctx.res.writeHead(200, { 'X-Docker-Container-Path-Stat': encodeStat(stat), 'Content-Length': 0 });
      ctx.res.end();
      return;
    }
    const { stat, tar } = archivePath(view, p);
    await sendTar(ctx.res, { 'Content-Type': 'application/x-tar', 'X-Docker-Container-Path-Stat': encodeStat(stat) }, tar);
  } finally {
    release();
  }
}
