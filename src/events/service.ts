// The in-process event bus: publishers hand in (type, action, actor); the bus stamps the time,
// fills dockerd's legacy fields, keeps the newest events in a ring buffer (for `since`), and
// fans each event out to the live subscribers synchronously, in publication order.
import type { EventActor, EventMessage, EventPublisher, EventSource, EventType } from './types';

/** dockerd keeps the last 256 events for `since`. */
export const DEFAULT_BUFFER_SIZE = 256;

/**
 * A nanosecond wall clock that never goes backwards: the wall clock is sampled once and advanced
 * by the monotonic clock, so two events published in the same millisecond still order by time
 * (`since`/`until` compare timeNano).
 */
export class NanoClock {
  private readonly base = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  now(): bigint {
    return this.base + process.hrtime.bigint();
  }
}

export class EventsService implements EventPublisher, EventSource {
  private readonly ring: (EventMessage | undefined)[];
  private next = 0;
  private count = 0;
  private readonly listeners = new Set<(ev: EventMessage) => void>();

  constructor(
    readonly bufferSize = DEFAULT_BUFFER_SIZE,
    private readonly clock: { now(): bigint } = new NanoClock(),
  ) {
    if (!Number.isInteger(bufferSize) || bufferSize < 1) throw new Error(`invalid event buffer size ${bufferSize}`);
    this.ring = new Array<EventMessage | undefined>(bufferSize);
  }

  publish(type: EventType, action: string, actor: EventActor): EventMessage {
    const timeNano = this.clock.now();
    const ev: EventMessage = {
      Type: type,
      Action: action,
      Actor: { ID: actor.ID, Attributes: { ...actor.Attributes } },
      scope: 'local',
      time: Number(timeNano / 1_000_000_000n),
      timeNano,
    };
    // dockerd fills the deprecated status/id/from for container and image events only.
    if (type === 'container' || type === 'image') {
      ev.status = action;
      ev.id = actor.ID;
      if (type === 'container') ev.from = actor.Attributes.image ?? '';
    }
    this.ring[this.next] = ev;
    this.next = (this.next + 1) % this.bufferSize;
    if (this.count < this.bufferSize) this.count++;
    for (const l of [...this.listeners]) {
      // A failing subscriber must not stop the publisher (a daemon operation) or the others.
      try {
        l(ev);
      } catch {}
    }
    return ev;
  }

  /** A container event; attrs should hold name and image (and the labels), as dockerd sends. */
  container(action: string, id: string, attrs: Record<string, string>): EventMessage {
    return this.publish('container', action, { ID: id, Attributes: attrs });
  }

  /**
   * An image event, in the shape of ImageService's sink. dockerd's attribute "name" is the
   * reference the operation used, or the image ID when there was none.
   */
  image(action: string, imageId: string, attrs: Record<string, string>): EventMessage {
    return this.publish('image', action, { ID: imageId, Attributes: { ...attrs, name: attrs.name ?? imageId } });
  }

  /** Oldest first. */
  private buffered(): EventMessage[] {
    const out: EventMessage[] = [];
    const start = (this.next - this.count + this.bufferSize) % this.bufferSize;
    for (let i = 0; i < this.count; i++) out.push(this.ring[(start + i) % this.bufferSize]!);
    return out;
  }

  history(sinceNano: bigint, untilNano: bigint): EventMessage[] {
    return this.buffered().filter((ev) => ev.timeNano >= sinceNano && (untilNano === 0n || ev.timeNano <= untilNano));
  }

  subscribe(listener: (ev: EventMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  listenerCount(): number {
    return this.listeners.size;
  }
}

/** One event as a JSON line; timeNano is written as an exact integer. */
export function eventJSON(ev: EventMessage): string {
  const { timeNano, ...rest } = ev;
  const text = JSON.stringify(rest);
  return `${text.slice(0, -1)},"timeNano":${timeNano.toString()}}`;
}
