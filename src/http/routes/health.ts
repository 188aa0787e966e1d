import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { HealthResponse } from '../../contract/index.js';
import { version } from '../../paths.js';

export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/health', { config: { auth: 'public' }, schema: { response: { 200: HealthResponse } } }, async (req) => {
    const path = req.url.split('?')[0]!;
    return {
      status: 'ok' as const,
      client_ip: req.ip,
      health_url: path,
      // protocol and host come from X-Forwarded-Proto/Host when TRUST_PROXY trusts the sender
      health_url_ext: `${req.protocol}://${req.host}${path}`,
      version,
    };
  });
};
