import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { Database } from '../db/index.js';
import { AppError } from '../errors.js';
import type { Actor } from '../core/audit/audit.js';
import { authenticateApiKey, type ApiKeyPrincipal } from '../core/keys/index.js';
import { authenticateSession, type PersonPrincipal } from '../core/people/index.js';

/**
 * Every route declares who may call it in `config.auth`; a route without one cannot be
 * registered. `public`: anyone. `api-key`: an application server's key (`api-key` header).
 * `member`: a signed-in person. `admin`: a signed-in admin. `member-or-api-key`: either.
 */
export type AuthRule = 'public' | 'api-key' | 'member' | 'admin' | 'member-or-api-key';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthRule;
    /**
     * With `auth: 'api-key'`: the route checks the key itself, in the statement that does its
     * work (see createTaskCheckingKey), unless `idempotency-key` is sent; the hook only refuses a
     * request without a key. `req.principal` is then set by the route.
     */
    apiKeyCheckedByRoute?: boolean;
  }
  interface FastifyRequest {
    principal: ApiKeyPrincipal | PersonPrincipal | null;
  }
  interface FastifyInstance {
    /** Every registered route with its auth rule (for the route-rule tests and docs). */
    routeRules: { method: string; url: string; auth: AuthRule }[];
  }
}

const COOKIE = 'ti_session';
/** Over https the cookie is `__Host-` prefixed: Secure, no Domain, Path=/. */
const SECURE_COOKIE = `__Host-${COOKIE}`;
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return out;
}

export function sessionToken(req: FastifyRequest): string | undefined {
  const cookies = parseCookies(req.headers.cookie);
  return cookies[SECURE_COOKIE] ?? cookies[COOKIE];
}

/** Sets the session cookie: HttpOnly, SameSite=Lax, persistent (so it survives browser restarts). */
export function setSessionCookie(req: FastifyRequest, reply: FastifyReply, token: string, maxAgeMs: number) {
  const secure = req.protocol === 'https';
  const attrs = [`Path=/`, `Max-Age=${Math.floor(maxAgeMs / 1000)}`, 'HttpOnly', 'SameSite=Lax', ...(secure ? ['Secure'] : [])];
  reply.header('set-cookie', `${secure ? SECURE_COOKIE : COOKIE}=${token}; ${attrs.join('; ')}`);
}

export function clearSessionCookie(req: FastifyRequest, reply: FastifyReply) {
  const secure = req.protocol === 'https';
  reply.header('set-cookie', `${secure ? SECURE_COOKIE : COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`);
}

/** The origin people use: PUBLIC_URL, or the request's own scheme and host. */
export const ownOrigin = (config: Config, req: FastifyRequest) => config.publicUrl ?? `${req.protocol}://${req.host}`;

/**
 * A cookie rides along on requests other sites make, so a cookie-authenticated change must come
 * from our own pages: refused when the browser says the request is cross-site, or when its
 * Origin is not ours. Same-origin `fetch` (the earlier inbox's PATCH) sends neither mismatch.
 */
export function refuseCrossSite(config: Config, req: FastifyRequest) {
  if (!UNSAFE.has(req.method)) return;
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  if (site === 'cross-site' || (origin !== undefined && origin !== ownOrigin(config, req))) {
    throw new AppError('cross-site-request', 'This change came from another site and was refused. Make it from the inbox itself.');
  }
}

export function registerAuth(app: FastifyInstance, deps: { database: Database; config: Config }) {
  const { database, config } = deps;
  app.decorateRequest('principal', null);
  const rules: FastifyInstance['routeRules'] = [];
  app.decorate('routeRules', rules);
  app.addHook('onRoute', (route) => {
    const rule = (route.config as { auth?: AuthRule } | undefined)?.auth;
    if (rule === undefined) throw new Error(`Route ${route.method} ${route.url} has no auth rule (config.auth).`);
    for (const method of [route.method].flat()) if (method !== 'HEAD') rules.push({ method, url: route.url, auth: rule });
  });
  app.addHook('onRequest', async (req) => {
    const rule = req.routeOptions.config.auth;
    if (rule === undefined || rule === 'public') return;
    const apiKey = headerValue(req, 'api-key');
    if (rule === 'api-key' || (rule === 'member-or-api-key' && apiKey !== undefined)) {
      if (rule === 'api-key' && apiKey && req.routeOptions.config.apiKeyCheckedByRoute && req.headers['idempotency-key'] === undefined) return;
      req.principal = await authenticateApiKey(database, apiKey);
      return;
    }
    const token = sessionToken(req);
    const person = token ? await authenticateSession(database, config, token) : null;
    if (!person) {
      throw new AppError('not-signed-in', rule === 'member-or-api-key' ? 'Sign in, or send an API key in the api-key header.' : 'Sign in first.');
    }
    refuseCrossSite(config, req);
    if (rule === 'admin' && person.role !== 'admin') throw new AppError('forbidden', 'Only admins may do this.');
    req.principal = person;
  });
}

/** The `api-key` header (the first, if sent twice). */
export const apiKeyHeader = (req: FastifyRequest) => headerValue(req, 'api-key');

function headerValue(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The authenticated principal of a non-public route. */
export function principalOf(req: FastifyRequest): ApiKeyPrincipal | PersonPrincipal {
  if (!req.principal) throw new Error('principalOf called on a public route');
  return req.principal;
}

/** The signed-in person of a `member` route (an API key never reaches one). */
export function personOf(req: FastifyRequest): PersonPrincipal {
  const p = principalOf(req);
  if (p.kind !== 'person') throw new AppError('forbidden', 'Only a signed-in person can do this.');
  return p;
}

/** The API key principal of an `api-key` route. */
export function apiKeyOf(req: FastifyRequest): ApiKeyPrincipal {
  const p = principalOf(req);
  if (p.kind !== 'api-key') throw new Error('apiKeyOf called on a route without api-key auth');
  return p;
}

/** Who did it, for the audit trail. */
export function actorOf(req: FastifyRequest): Actor {
  const p = req.principal;
  if (!p) return { kind: 'anonymous', ip: req.ip };
  if (p.kind === 'person') return { kind: 'person', id: p.id, name: p.username, ip: req.ip };
  return { kind: 'api-key', id: p.id, name: p.name, ip: req.ip };
}
