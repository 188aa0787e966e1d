import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import { HealthResponse, Problem } from '../../contract/index.js';
import { metrics } from '../../core/metrics.js';
import { pendingMigrations, type Database } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { version } from '../../paths.js';

const Probe = z.object({ status: z.literal('ok') });

const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
};

/** Health (SPEC §2.7), liveness and readiness probes, and the Prometheus metrics when enabled. */
export function healthRoutes(database: Database, config: Config): FastifyPluginAsyncZod {
  return async (app) => {
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

    // Liveness: the process answers. Never looks at the database, so a database outage does not get every instance restarted.
    app.get('/livez', { config: { auth: 'public' }, schema: { response: { 200: Probe } } }, async () => ({ status: 'ok' as const }));

    // Readiness: the database answers and its schema is this version's.
    app.get('/readyz', { config: { auth: 'public' }, schema: { response: { 200: Probe, 503: Problem } } }, async () => {
      const problems: string[] = [];
      try {
        await database.query('SELECT 1');
        const pending = await pendingMigrations(database);
        if (pending.length > 0) problems.push(`${pending.length} database migration(s) pending: run task-inbox migrate`);
      } catch (err) {
        problems.push(`the database does not answer: ${(err as Error).message}`);
      }
      if (problems.length > 0) throw new AppError('not-ready', problems.join('; '), { errors: problems });
      return { status: 'ok' as const };
    });

    app.get('/metrics', { config: { auth: 'public' }, schema: { hide: true } }, async (req, reply) => {
      if (!config.metricsToken) {
        throw new AppError('not-found', config.metricsPort ? `Metrics are served on port ${config.metricsPort}.` : 'Metrics are off: set METRICS_TOKEN or METRICS_PORT.');
      }
      const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      if (!given || !sameSecret(given, config.metricsToken)) {
        throw new AppError('not-signed-in', 'Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.');
      }
      return sendMetrics(reply);
    });
  };
}

export async function sendMetrics(reply: { type(t: string): unknown; send(b: string): unknown; header(k: string, v: string): unknown }) {
  const { body, contentType } = await metrics.text();
  reply.header('cache-control', 'no-store');
  reply.type(contentType);
  return reply.send(body);
}
