import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiKeyInfo, DisabledEndpoint, InstallResult, Problem, RemoveResult, SchemaSummary, WebhookKeyInfo } from '../../contract/index.js';
import type { Config } from '../../config.js';
import type { Database } from '../../db/index.js';
import { createApiKey, listApiKeys, revokeApiKey } from '../../core/keys/index.js';
import { installSchema, listSchemas, removeSchema } from '../../core/schemas/index.js';
import type { SecretBox } from '../../core/secrets/secret-box.js';
import { createWebhookKey, enableEndpoint, listDisabledEndpoints, listWebhookKeys, revokeWebhookKey } from '../../core/webhooks/index.js';
import { actorOf } from '../auth.js';

const errors = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem };
const Ok = z.object({ ok: z.literal(true) });

/** What admins manage besides people: schemas, API keys, webhook keys, disabled endpoints. */
export function adminRoutes(database: Database, config: Config, secrets: SecretBox): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/api/v1/schemas', { config: { auth: 'admin' }, schema: { response: { 200: z.object({ schemas: z.array(SchemaSummary) }), ...errors } } }, async () => ({ schemas: await listSchemas(database) }));

    app.post(
      '/api/v1/schemas',
      { config: { auth: 'admin' }, schema: { body: z.object({ yaml: z.string().min(1), dryrun: z.boolean().default(false) }), response: { 200: InstallResult, ...errors } } },
      async (req) => installSchema(database, req.body.yaml, { dryRun: req.body.dryrun, label: 'the schema' }, actorOf(req)),
    );

    app.delete(
      '/api/v1/schemas/:name',
      { config: { auth: 'admin' }, schema: { params: z.object({ name: z.string().min(1) }), response: { 200: RemoveResult, ...errors } } },
      async (req) => removeSchema(database, req.params.name, {}, actorOf(req)),
    );

    app.get('/api/v1/api-keys', { config: { auth: 'admin' }, schema: { response: { 200: z.object({ api_keys: z.array(ApiKeyInfo) }), ...errors } } }, async () => ({ api_keys: await listApiKeys(database) }));

    app.post(
      '/api/v1/api-keys',
      { config: { auth: 'admin' }, schema: {
        body: z.object({ name: z.string().nullish(), schema_name: z.string().nullish() }),
        // The key itself leaves the server this once.
        response: { 200: z.object({ api_key: ApiKeyInfo.extend({ key: z.string() }) }), ...errors },
      } },
      async (req) => ({ api_key: await createApiKey(database, { name: req.body.name, schemaName: req.body.schema_name }, actorOf(req)) }),
    );

    app.delete('/api/v1/api-keys/:id', { config: { auth: 'admin' }, schema: { params: z.object({ id: z.string().min(1) }), response: { 200: z.object({ api_key: ApiKeyInfo }), ...errors } } }, async (req) => ({
      api_key: await revokeApiKey(database, req.params.id, actorOf(req)),
    }));

    app.get('/api/v1/webhook-keys', { config: { auth: 'admin' }, schema: { response: { 200: z.object({ webhook_keys: z.array(WebhookKeyInfo) }), ...errors } } }, async () => ({ webhook_keys: await listWebhookKeys(database) }));

    app.post(
      '/api/v1/webhook-keys',
      {
        config: { auth: 'admin' },
        schema: {
          body: z.object({ schema_name: z.string().min(1), key: z.string().optional(), rotate: z.boolean().default(false) }),
          // The key itself leaves the server this once.
          response: { 200: z.object({ webhook_key: WebhookKeyInfo.extend({ key: z.string() }) }), ...errors },
        },
      },
      async (req) => ({
        webhook_key: await createWebhookKey(
          database,
          secrets,
          { schemaName: req.body.schema_name, key: req.body.key, graceMs: config.webhookRotationGraceMs, requireExisting: req.body.rotate },
          actorOf(req),
        ),
      }),
    );

    app.delete('/api/v1/webhook-keys/:id', { config: { auth: 'admin' }, schema: { params: z.object({ id: z.string().min(1) }), response: { 200: z.object({ webhook_key: WebhookKeyInfo }), ...errors } } }, async (req) => ({
      webhook_key: await revokeWebhookKey(database, req.params.id, actorOf(req)),
    }));

    app.get('/api/v1/endpoints', { config: { auth: 'admin' }, schema: { response: { 200: z.object({ endpoints: z.array(DisabledEndpoint) }), ...errors } } }, async () => ({ endpoints: await listDisabledEndpoints(database) }));

    app.post('/api/v1/endpoints/enable', { config: { auth: 'admin' }, schema: { body: z.object({ url: z.string().min(1) }), response: { 200: Ok, ...errors } } }, async (req) => {
      await enableEndpoint(database, req.body.url, actorOf(req));
      return { ok: true as const };
    });
  };
}
