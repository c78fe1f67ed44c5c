// POST /auth (docker login): the daemon checks the credentials against the registry and answers
// {"Status":"Login Succeeded","IdentityToken":""}; it stores nothing (the client keeps credentials).
import { sendJSON } from '../httputil';
import type { Route } from '../router';
import type { LoginBackend } from '../../distribution/service';

export function authRoutes(b: LoginBackend): Route[] {
  return [
    {
      method: 'POST',
      path: '/auth',
      handler: async (ctx) => {
        // The registry client is loaded on first use (see common/lazy.ts).
        const { readLoginBody } = require('../../distribution/service') as typeof import('../../distribution/service');
        const cfg = await readLoginBody(ctx);
        sendJSON(ctx, 200, await b.login(cfg));
      },
    },
  ];
}
