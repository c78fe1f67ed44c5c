export { EventsService, NanoClock, eventJSON, DEFAULT_BUFFER_SIZE } from './service';
export { eventMatches, validateEventFilters, EVENT_FILTER_KEYS } from './filter';
export type { EventFilters } from './filter';
export { parseEventTimestamp, formatNano } from './timestamp';
export type { EventActor, EventMessage, EventPublisher, EventSource, EventType } from './types';
