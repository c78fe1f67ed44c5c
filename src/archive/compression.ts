// Detects a layer's compression from its first bytes (media types lie often enough that dockerd
// sniffs too) and returns the stages that turn it into a plain tar stream.
import * as zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { Duplex, Readable } from 'node:stream';
import { invalidParameter } from '../common/errors';

export type Compression = 'none' | 'gzip' | 'zstd';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const BZIP2_MAGIC = [0x42, 0x5a, 0x68];

function startsWith(buf: Buffer, magic: number[]): boolean {
  return buf.length >= magic.length && magic.every((b, i) => buf[i] === b);
}

export function detectCompression(head: Buffer): Compression {
  if (startsWith(head, GZIP_MAGIC)) return 'gzip';
  if (startsWith(head, ZSTD_MAGIC)) return 'zstd';
  if (startsWith(head, XZ_MAGIC)) throw invalidParameter('unsupported layer compression: xz');
  if (startsWith(head, BZIP2_MAGIC)) throw invalidParameter('unsupported layer compression: bzip2');
  return 'none';
}

/**
 * Reads at least n bytes (fewer at end of input) without consuming them: the returned stream
 * yields the whole input, head included.
 */
export function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  // A stream that failed (or was destroyed) before we got to it fires no event any more.
  if (input.errored) return Promise.reject(input.errored);
  if (input.destroyed) return Promise.reject(new Error('the input stream was destroyed before it was read'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const cleanup = (): void => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
    };
    const done = (ended: boolean): void => {
      cleanup();
      const head = Buffer.concat(chunks);
      if (ended) {
        resolve({ head, stream: Readable.from(head.length > 0 ? [head] : []) });
        return;
      }
      input.unshift(head);
      resolve({ head, stream: input });
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (length < n && (chunk = input.read() as Buffer | null) !== null) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        chunks.push(buf);
        length += buf.length;
      }
      if (length >= n) done(false);
    };
    const onEnd = (): void => done(true);
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    input.on('readable', onReadable);
    input.on('end', onEnd);
    input.on('error', onError);
  });
}

type ZlibWithZstd = typeof zlib & { createZstdDecompress?: () => Duplex };

/** A zstd decompressor: zlib's where Node has one (22.15+), else one `zstd -dc` process per layer. */
function zstdDecompressor(): Duplex {
  const z = zlib as ZlibWithZstd;
  if (typeof z.createZstdDecompress === 'function') return z.createZstdDecompress();
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => { if (stderr.length < 4096) stderr += s; });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (err) => duplex.destroy(new Error(`zstd decompression: ${err.message}`)));
  child.on('close', (code, signal) => {
    if (code !== 0) duplex.destroy(new Error(`zstd decompression failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
  });
  duplex.on('close', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  return duplex;
}

/** A stream that decompresses data compressed that way. */
export function decompressor(compression: Exclude<Compression, 'none'>): Duplex {
  return compression === 'gzip' ? zlib.createGunzip({ chunkSize: 1 << 20 }) : zstdDecompressor();
}

/** The stages (for stream.pipeline) that turn input into an uncompressed tar stream. */
export async function decompressionStages(input: Readable): Promise<{ compression: Compression; stages: (Readable | Duplex)[] }> {
  const { head, stream } = await peek(input, 6);
  const compression = detectCompression(head);
  return { compression, stages: compression === 'none' ? [stream] : [stream, decompressor(compression)] };
}
