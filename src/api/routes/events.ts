// GET /events: the buffered events since `since`, then live events until `until` or until the
// client goes away. With `until` already past, only the buffered events are sent.
import { invalidParameter } from '../../common/errors';
import { parseFilters } from '../httputil';
import type { Route } from '../router';
import { eventJSON, eventMatches, validateEventFilters, EVENT_FILTER_KEYS, parseEventTimestamp, formatNano, type EventSource, type EventMessage } from '../../events';

/** A subscriber this far behind (bytes queued in the socket) is cut off rather than buffered forever. */
const MAX_QUEUED_BYTES = 16 << 20;

export function eventRoutes(events: EventSource, now: () => bigint = () => BigInt(Date.now()) * 1_000_000n): Route[] {
  return [
    {
      method: 'GET',
      path: '/events',
      handler: (ctx) => {
        const since = parseEventTimestamp(ctx.query.get('since'), 'since');
        const until = parseEventTimestamp(ctx.query.get('until'), 'until');
        if (since !== undefined && until !== undefined && since > until) {
          throw invalidParameter(`\`since\` time (${formatNano(since)}) cannot be after \`until\` time (${formatNano(until)})`);
        }
        const filters = parseFilters(ctx.query.get('filters'), EVENT_FILTER_KEYS);
        validateEventFilters(filters);

        const { res, req } = ctx;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        // Headers go out at once: the docker CLI waits for them before it shows anything.
        res.flushHeaders();
        const send = (ev: EventMessage): void => {
          if (res.writableEnded || !eventMatches(filters, ev)) return;
          res.write(eventJSON(ev) + '\n');
          if (res.writableLength > MAX_QUEUED_BYTES) finish();
        };

        let unsubscribe = (): void => {};
        let timer: NodeJS.Timeout | undefined;
        function finish(): void {
          unsubscribe();
          if (timer) clearTimeout(timer);
          if (!res.writableEnded) res.end();
        }

        // History and subscription happen in one synchronous step, so no event falls between them.
        if (since !== undefined || until !== undefined) {
          for (const ev of events.history(since ?? 0n, until ?? 0n)) send(ev);
        }
        const current = now();
        if (until !== undefined && until <= current) {
          finish();
          return;
        }
        unsubscribe = events.subscribe((ev) => {
          if (until !== undefined && ev.timeNano > until) return finish();
          send(ev);
        });
        if (until !== undefined) timer = setTimeout(finish, Math.ceil(Number(until - current) / 1e6));
        req.socket.once('close', finish);
        res.once('close', finish);
      },
    },
  ];
}
