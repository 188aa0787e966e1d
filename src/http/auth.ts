import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../db/index.js';
import { authenticateApiKey, type ApiKeyPrincipal } from '../core/keys/index.js';

/**
 * Every route declares who may call it in `config.auth`; a route without one cannot be
 * registered. `public`: anyone. `api-key`: an `api-key` header of a live key.
 */
export type AuthRule = 'public' | 'api-key';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthRule;
  }
  interface FastifyRequest {
    principal: ApiKeyPrincipal | null;
  }
}

export function registerAuth(app: FastifyInstance, database: Database) {
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    const rule = (route.config as { auth?: AuthRule } | undefined)?.auth;
    if (rule === undefined) throw new Error(`Route ${route.method} ${route.url} has no auth rule (config.auth).`);
  });
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config.auth === 'api-key') {
      req.principal = await authenticateApiKey(database, headerValue(req, 'api-key'));
    }
  });
}

function headerValue(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The authenticated principal of an `api-key` route. */
export function principalOf(req: FastifyRequest): ApiKeyPrincipal {
  if (!req.principal) throw new Error('principalOf called on a route without api-key auth');
  return req.principal;
}
