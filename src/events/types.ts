// The event message as the Engine API sends it on GET /events.

export type EventType = 'builder' | 'config' | 'container' | 'daemon' | 'image' | 'network' | 'node' | 'plugin' | 'secret' | 'service' | 'volume';

export interface EventActor {
  ID: string;
  Attributes: Record<string, string>;
}

export interface EventMessage {
  Type: EventType;
  Action: string;
  Actor: EventActor;
  scope: 'local' | 'swarm';
  /** Seconds since the epoch. */
  time: number;
  /** Nanoseconds since the epoch; a bigint because it exceeds 2^53 (written exactly in JSON). */
  timeNano: bigint;
  /** Legacy fields that dockerd still fills for container and image events (API < 1.52). */
  status?: string;
  id?: string;
  from?: string;
}

/** Who publishes events: the container service, the image service, networks, volumes. */
export interface EventPublisher {
  publish(type: EventType, action: string, actor: EventActor): EventMessage;
}

/** Who reads them: the /events route. */
export interface EventSource {
  /** Buffered events with since <= timeNano <= until (until 0n: no upper bound), oldest first. */
  history(sinceNano: bigint, untilNano: bigint): EventMessage[];
  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: (ev: EventMessage) => void): () => void;
  /** Number of current subscribers (docker info's NEventsListener). */
  listenerCount(): number;
}
