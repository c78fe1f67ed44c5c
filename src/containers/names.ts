// Container names: docker's validation rule, and generated names of the form adjective_surname
// (the word lists are berth's own; surnames are of scientists and engineers).
import { randomInt } from 'node:crypto';
import { invalidParameter } from '../common/errors';

export const VALID_NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Strips the optional leading slash; throws docker's 400 for an invalid name. */
export function normalizeName(name: string): string {
  if (!VALID_NAME.test(name)) throw invalidParameter(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return name.replace(/^\//, '');
}

const ADJECTIVES = [
  'agile', 'bold', 'brave', 'bright', 'calm', 'clever', 'cool', 'curious', 'daring', 'eager', 'earnest', 'fervent',
  'gallant', 'gentle', 'happy', 'hardy', 'humble', 'jolly', 'keen', 'kind', 'lively', 'lucid', 'merry', 'modest',
  'nimble', 'noble', 'patient', 'placid', 'quick', 'quiet', 'radiant', 'serene', 'sharp', 'steady', 'sunny', 'swift',
  'tender', 'tidy', 'upbeat', 'vibrant', 'vivid', 'warm', 'wise', 'witty', 'zealous',
];

const SURNAMES = [
  'ampere', 'babbage', 'bohr', 'boole', 'curie', 'darwin', 'dirac', 'euler', 'faraday', 'fermi', 'feynman', 'gauss',
  'goodall', 'hamilton', 'hopper', 'hypatia', 'johnson', 'kepler', 'knuth', 'lamarr', 'leavitt', 'liskov', 'lovelace',
  'maxwell', 'meitner', 'mendel', 'newton', 'noether', 'pascal', 'pasteur', 'planck', 'ramanujan', 'ritchie', 'sagan',
  'shannon', 'tesla', 'thompson', 'turing', 'volta', 'wozniak', 'wu', 'yalow',
];

/** adjective_surname, with a number appended after the first try (as docker does on a clash). */
export function generateName(attempt = 0): string {
  const base = `${ADJECTIVES[randomInt(ADJECTIVES.length)]}_${SURNAMES[randomInt(SURNAMES.length)]}`;
  return attempt === 0 ? base : `${base}${randomInt(10)}`;
}
