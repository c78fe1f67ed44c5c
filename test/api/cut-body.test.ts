// A tar body that fails half-way must reach the client as a body cut short (an error), never as
// a chunked body that ends cleanly and makes a partial tar look whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeWholeOrCut } from '../../src/containers/archive';
import type { TarProducer } from '../../src/archive/create';

test('writeWholeOrCut: a producer failing after the first bytes cuts the response', async (t) => {
  const failing = {
    async writeTo(res: http.ServerResponse): Promise<void> {
      res.write(Buffer.alloc(4096, 1));
      await new Promise((r) => setTimeout(r, 20));
      throw new Error('read failed');
    },
  } as unknown as TarProducer;
  let handlerError: unknown;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    writeWholeOrCut(res, failing).catch((err: unknown) => {
      handlerError = err;
      // What the router does afterwards must not end it cleanly.
      if (!res.writableEnded && !res.destroyed) res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const outcome = await new Promise<{ bytes: number; complete: boolean; error?: string }>((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let bytes = 0;
      res.on('data', (b: Buffer) => (bytes += b.length));
      res.on('end', () => resolve({ bytes, complete: res.complete }));
      res.on('error', (err) => resolve({ bytes, complete: res.complete, error: err.message }));
      res.on('aborted', () => resolve({ bytes, complete: false, error: 'aborted' }));
    });
  });
  assert.equal((handlerError as Error)?.message, 'read failed');
  assert.equal(outcome.complete, false, 'the client must not see a complete body');
  assert.ok(outcome.bytes >= 4096);
});
