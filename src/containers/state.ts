// The container lifecycle as an explicit state machine. Every change of a container's status goes
// through transition(), so an operation that does not fit the current state fails in one place,
// with the words dockerd uses for it (clients show them verbatim).
import { conflict, notModified } from '../common/errors';

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export const ALL_STATES: readonly ContainerState[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];

/**
 * Allowed moves. 'removing' can fall back to where it came from when a removal fails half-way
 * (the container is then kept, as dockerd keeps it), or end in 'dead' when it cannot be cleaned.
 */
const TRANSITIONS: Record<ContainerState, readonly ContainerState[]> = {
  created: ['running', 'removing', 'exited', 'dead'],
  running: ['paused', 'exited', 'restarting', 'removing', 'dead'],
  paused: ['running', 'exited', 'removing', 'dead'],
  restarting: ['running', 'exited', 'removing', 'dead'],
  exited: ['running', 'restarting', 'removing', 'dead'],
  removing: ['created', 'exited', 'dead'],
  dead: ['removing'],
};

export function canTransition(from: ContainerState, to: ContainerState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The operations that move a container, for error wording. */
export type Action = 'start' | 'stop' | 'kill' | 'pause' | 'unpause' | 'remove' | 'exec' | 'attach' | 'restart' | 'commit' | 'resize' | 'exit';

/** Identity of the container in messages: dockerd uses the full ID in most, the /name in removal. */
export interface Who {
  id: string;
  name: string;
}

/**
 * Throws dockerd's error for `action` in state `from` when the action is not allowed there.
 * Returns nothing when it is. Start of a running container is 304 (dockerd's "not modified").
 */
export function checkAction(action: Action, from: ContainerState, who: Who, opts: { force?: boolean } = {}): void {
  const { id } = who;
  const name = `/${who.name}`;
  switch (action) {
    case 'start':
      if (from === 'running') throw notModified('Container already started');
      if (from === 'paused') throw conflict('cannot start a paused container, try unpause instead');
      if (from === 'removing' || from === 'dead') throw conflict('container is marked for removal and cannot be started');
      return;
    case 'stop':
    case 'restart':
      if (from === 'removing' || from === 'dead') throw conflict(`Container ${id} is marked for removal and cannot be ${action === 'stop' ? 'stopped' : 'restarted'}`);
      return;
    case 'kill':
      if (from === 'restarting') throw conflict(`Container ${id} is restarting, wait until the container is running`);
      if (from !== 'running' && from !== 'paused') throw conflict(`Container ${id} is not running`);
      return;
    case 'pause':
      if (from === 'paused') throw conflict(`Container ${id} is already paused`);
      if (from === 'restarting') throw conflict(`Container ${id} is restarting, wait until the container is running`);
      if (from !== 'running') throw conflict(`Container ${id} is not running`);
      return;
    case 'unpause':
      if (from !== 'paused') throw conflict(`Container ${id} is not paused`);
      return;
    case 'exec':
    case 'attach':
    case 'resize':
      if (from === 'paused') throw conflict(`Container ${id} is paused, unpause the container before ${action === 'exec' ? 'exec' : action}`);
      if (from === 'restarting') throw conflict(`Container ${id} is restarting, wait until the container is running`);
      if (action !== 'attach' && from !== 'running') throw conflict(`Container ${id} is not running`);
      if (action === 'attach' && (from === 'removing' || from === 'dead')) throw conflict(`Container ${id} is not running`);
      return;
    case 'commit':
      if (from === 'removing' || from === 'dead') throw conflict(`You cannot commit container ${id} which is ${from === 'dead' ? 'Dead' : 'being removed'}`);
      return;
    case 'remove':
      if (from === 'removing') throw conflict(`removal of container ${id} is already in progress`);
      if (opts.force) return;
      if (from === 'paused') throw conflict(`cannot remove container "${name}": container is paused and must be unpaused first`);
      if (from === 'running') throw conflict(`cannot remove container "${name}": container is running: stop the container before removing or force remove`);
      if (from === 'restarting') throw conflict(`cannot remove container "${name}": container is restarting: stop the container before removing or force remove`);
      return;
    case 'exit':
      return;
  }
}

/** Moves a status, refusing a move the table does not allow (a bug or a race lost: 409). */
export function transition(from: ContainerState, to: ContainerState, who: Who, action?: Action): ContainerState {
  if (action) checkAction(action, from, who);
  if (!canTransition(from, to)) {
    throw conflict(`cannot change the state of container ${who.id} from ${from} to ${to}`);
  }
  return to;
}
