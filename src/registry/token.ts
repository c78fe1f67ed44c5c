// The token endpoint of Docker's registry auth flow: a client that got a Bearer challenge asks here
// (GET with Basic credentials, or the OAuth2 password grant as POST) for a JWT granting the scopes
// it needs. Grants are decided by the access policy; scopes not granted are left out of the token
// rather than failing the request, as Docker Hub does, and the registry then refuses the action.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseBasic, parseScope, signToken, type Access, type AccessPolicy, type CredentialStore, type TokenKeys } from './auth';

export interface TokenIssuerOptions {
  keys: TokenKeys;
  issuer: string;
  service: string;
  /** Token lifetime in seconds. */
  expiresIn: number;
  creds?: CredentialStore;
  policy: AccessPolicy;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), 'Cache-Control': 'no-store', ...headers });
  res.end(data);
}

async function readForm(req: IncomingMessage, limit = 64 * 1024): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let len = 0;
  for await (const c of req) {
    len += (c as Buffer).length;
    if (len > limit) throw new Error('request body too large');
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export class TokenIssuer {
  constructor(private readonly opts: TokenIssuerOptions) {}

  /** Issues a token for account (undefined: anonymous) with the granted part of the requested scopes. */
  issue(account: string | undefined, scopes: Access[]): { token: string; expiresIn: number; issuedAt: string } {
    const now = Math.floor(Date.now() / 1000);
    const access: Access[] = [];
    for (const s of scopes) {
      const actions = this.opts.policy.grant(account, s);
      if (actions.length > 0) access.push({ type: s.type, name: s.name, actions });
    }
    const token = signToken(this.opts.keys, {
      iss: this.opts.issuer,
      sub: account ?? '',
      aud: this.opts.service,
      exp: now + this.opts.expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(16).toString('hex'),
      access,
    });
    return { token, expiresIn: this.opts.expiresIn, issuedAt: new Date(now * 1000).toISOString() };
  }

  private parseScopes(values: string[]): Access[] | undefined {
    const out: Access[] = [];
    for (const v of values) {
      for (const s of v.split(' ').filter((x) => x !== '')) {
        const a = parseScope(s);
        if (!a) return undefined;
        out.push(a);
      }
    }
    return out;
  }

  private async authenticate(user: string, password: string): Promise<boolean> {
    return this.opts.creds ? this.opts.creds.verify(user, password) : false;
  }

  async handle(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    if (req.method === 'GET') {
      const scopes = this.parseScopes(query.getAll('scope'));
      if (!scopes) return sendJson(res, 400, { details: 'invalid scope' });
      let account: string | undefined;
      const basic = parseBasic(req.headers.authorization);
      if (req.headers.authorization && !basic) return sendJson(res, 401, { details: 'unsupported authorization' }, { 'WWW-Authenticate': 'Basic realm="token"' });
      if (basic) {
        if (!(await this.authenticate(basic.user, basic.password))) {
          return sendJson(res, 401, { details: 'incorrect username or password' }, { 'WWW-Authenticate': 'Basic realm="token"' });
        }
        account = basic.user;
      }
      const t = this.issue(account, scopes);
      return sendJson(res, 200, { token: t.token, access_token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt });
    }
    if (req.method === 'POST') {
      let form: URLSearchParams;
      try {
        form = await readForm(req);
      } catch {
        return sendJson(res, 400, { error: 'invalid_request' });
      }
      if (form.get('grant_type') !== 'password') return sendJson(res, 400, { error: 'unsupported_grant_type' });
      const user = form.get('username') ?? '';
      if (!(await this.authenticate(user, form.get('password') ?? ''))) return sendJson(res, 401, { error: 'invalid_grant' });
      const scopes = this.parseScopes(form.getAll('scope'));
      if (!scopes) return sendJson(res, 400, { error: 'invalid_scope' });
      const t = this.issue(user, scopes);
      return sendJson(res, 200, { access_token: t.token, token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt, scope: scopes.map((s) => `${s.type}:${s.name}:${s.actions.join(',')}`).join(' ') });
    }
    return sendJson(res, 405, { details: 'method not allowed' }, { Allow: 'GET, POST' });
  }
}
