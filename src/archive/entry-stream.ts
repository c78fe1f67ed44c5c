// tarEntries: the entries of a tar stream, in order, each with its body as a Readable, parsed by
// our own TarReader straight from the input's 'data' events. This reads the outer tar of
// `docker load`, whose one big member (a layer) goes on to the tee: every body piece is a view of
// an input chunk pushed into the entry's stream, so between the socket and the tee there is one
// synchronous parse and one Readable, instead of tar-stream's streamx entry stream behind an
// async iterator behind another Readable (a third of load's main-thread CPU over import's).
//
// Backpressure: the input pauses while the current body's buffer is full or too many entries
// wait to be taken, and resumes when the consumer reads. Every body must be read or resume()d,
// or the input stays paused. The input is never destroyed: once the consumer stops iterating
// (a failure, or the end), what is left of it is drained, as the tee does, so that an error
// response can still go out on the same connection.
import { Readable } from 'node:stream';
import { invalidParameter } from '../common/errors';
import { TarFormatError, TarReader, type TarHeader } from './reader';

export interface TarStreamEntry {
  header: TarHeader;
  body: Readable;
}

/** Buffered bytes of one body before the input pauses. */
const BODY_HIGH_WATER = 4 << 20;
/** Entries parsed but not yet taken by the consumer before the input pauses. */
const MAX_WAITING_ENTRIES = 64;

class EntryBody extends Readable {
  constructor(private readonly wanted: () => void) {
    super({ highWaterMark: BODY_HIGH_WATER });
    // A body may fail (the archive is cut or corrupt) before its reader has attached a listener,
    // or after its reader gave up: that must not be an uncaught 'error'. The failure stays on the
    // stream (errored), and whoever reads it later sees it (async iteration, finished(), peek()).
    this.on('error', () => {});
  }

  override _read(): void {
    this.wanted();
  }
}

/** A malformed archive is the client's fault: a 400 naming what is wrong. */
function formatError(err: unknown): Error {
  return err instanceof TarFormatError ? invalidParameter(`invalid tar archive: ${err.message}`) : (err as Error);
}

export function tarEntries(input: Readable): AsyncIterableIterator<TarStreamEntry> {
  const waiting: TarStreamEntry[] = [];
  let current: EntryBody | undefined;
  let bodyFull = false;
  let failure: Error | undefined;
  let ended = false;
  let detached = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const flowIfWanted = (): void => {
    if (!detached && !ended && failure === undefined && !bodyFull && waiting.length < MAX_WAITING_ENTRIES && input.isPaused()) input.resume();
  };

  const reader = new TarReader({
    entry(header) {
      const body = new EntryBody(() => {
        if (body !== current) return;
        bodyFull = false;
        flowIfWanted();
      });
      current = body;
      bodyFull = false;
      waiting.push({ header, body });
      if (waiting.length >= MAX_WAITING_ENTRIES) input.pause();
      notify();
    },
    data(chunk) {
      // A view of the input's chunk, kept by the body stream: input chunks (the HTTP parser's
      // copies, gunzip's output) are never reused, so the view stays valid.
      if (!current!.push(chunk)) {
        bodyFull = true;
        input.pause();
      }
    },
    end() {
      current!.push(null);
      current = undefined;
      bodyFull = false;
    },
  });

  const fail = (err: Error): void => {
    if (failure !== undefined || ended) return;
    failure = formatError(err);
    current?.destroy(failure);
    current = undefined;
    notify();
  };
  const onData = (chunk: Buffer): void => {
    if (detached || failure !== undefined) return;
    try {
      reader.write(chunk);
    } catch (err) {
      fail(err as Error);
    }
  };
  const onEnd = (): void => {
    if (detached || failure !== undefined) return;
    try {
      reader.finish();
    } catch (err) {
      fail(err as Error);
      return;
    }
    ended = true;
    notify();
  };
  const onError = (err: Error): void => fail(err);
  input.on('data', onData);
  input.on('end', onEnd);
  input.on('error', onError);

  const detach = (): void => {
    if (detached) return;
    detached = true;
    input.off('data', onData);
    input.off('end', onEnd);
    // Keeps listening for errors (an unheard 'error' would be thrown), and drains the rest.
    if (!input.readableEnded) input.resume();
    // A body the consumer never took is unwanted now: whoever still reads one sees it fail.
    if (current !== undefined && failure === undefined) current.destroy(invalidParameter('invalid tar archive: reading stopped before the end'));
    for (const w of waiting) w.body.resume();
    waiting.length = 0;
  };

  const iterator: AsyncIterableIterator<TarStreamEntry> = {
    [Symbol.asyncIterator]() {
      return iterator;
    },
    async next(): Promise<IteratorResult<TarStreamEntry>> {
      for (;;) {
        if (detached) return { done: true, value: undefined };
        const entry = waiting.shift();
        if (entry !== undefined) {
          flowIfWanted();
          return { done: false, value: entry };
        }
        if (failure !== undefined) {
          const err = failure;
          detach();
          throw err;
        }
        if (ended) {
          detach();
          return { done: true, value: undefined };
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    async return(): Promise<IteratorResult<TarStreamEntry>> {
      detach();
      return { done: true, value: undefined };
    },
  };
  return iterator;
}
