import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Config } from '../config.js';
import type { Database } from '../db/index.js';
import { registerAuth } from './auth.js';
import { loggerOptions } from './logger.js';
import { registerOpenApi } from './openapi.js';
import { registerProblemHandlers } from './problems.js';
import { healthRoutes } from './routes/health.js';
import { taskRoutes } from './routes/tasks.js';
import { deliveryRoutes } from './routes/deliveries.js';
import { authRoutes } from './routes/auth.js';
import { userRoutes } from './routes/users.js';
import { adminRoutes } from './routes/admin.js';
import { webAppRoutes } from './routes/web-app.js';
import { eventRoutes } from './routes/events.js';
import { apiReferenceRoutes } from './routes/api-reference.js';
import { TaskEventHub } from '../core/events/task-events.js';
import { Webhooks } from '../core/webhooks/index.js';
import { loadSecretBox } from '../core/secrets/secret-box.js';
import { Notifications } from '../core/notify/index.js';
import { metrics } from '../core/metrics.js';
import { notificationRoutes } from './routes/notifications.js';
import { actionLinkRoutes } from './routes/action-links.js';

export interface AppDeps {
  config: Config;
  database: Database;
  /** Webhook sending (created from config and database when absent). */
  webhooks?: Webhooks;
  /** Notification sending (created from config and database when absent). */
  notifications?: Notifications;
  /** Live task events (started on the database when absent). */
  events?: TaskEventHub;
  /** How often event streams send a heartbeat and re-check their session (default 25 s). */
  eventHeartbeatMs?: number;
  /** Where the built web inbox is (default dist/web). */
  webFolder?: string;
  /** Where logs go (default stdout); tests capture them here. */
  logStream?: NodeJS.WritableStream;
}

/*
 * Every route validates and serialises with zod. Naming the compilers up front too keeps Fastify
 * from loading its defaults, Ajv and fast-json-stringify, which it would never use (some 60 ms of
 * every start). Fastify types these factories for Ajv, hence the cast.
 */
type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
const zodCompilers = { buildValidator: () => validatorCompiler, buildSerializer: () => serializerCompiler } as unknown as CompilersFactory;

/** Largest accepted request body. */
export const BODY_LIMIT = 1024 * 1024;

/** Builds the HTTP application, ready for `inject()` or `listen()`. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(deps.config, deps.logStream),
    bodyLimit: BODY_LIMIT,
    trustProxy: deps.config.trustProxy as FastifyServerOptions['trustProxy'],
    routerOptions: { ignoreTrailingSlash: true },
    schemaController: { compilersFactory: zodCompilers },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // JSON routes take JSON only: a form or text body is refused (415), which also keeps cross-site forms out.
  app.removeContentTypeParser('text/plain');
  // The earlier inbox sends PATCH with a JSON content type and no body: an empty body is no body.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') return done(null, undefined);
    return parseJson(req, body as string, done);
  });

  // Answers given while the server stops (long polls ended early, requests in flight) close their
  // connection, so that keep-alive clients do not hold the stop up until their idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_req, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  // Latency by route pattern (never the raw URL: ids would make a series each).
  metrics.watchOutboxes(deps.database);
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpDuration.observe({ method: req.method, route: req.routeOptions.url ?? '(no route)', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  registerProblemHandlers(app);
  registerAuth(app, { database: deps.database, config: deps.config });
  // Before the routes: the OpenAPI document (GET /openapi.json) is generated from them as they are added.
  await registerOpenApi(app);

  const secrets = loadSecretBox(deps.config);
  const webhooks = deps.webhooks ?? new Webhooks({ database: deps.database, config: deps.config, secrets });
  const notifications = deps.notifications ?? new Notifications({ database: deps.database, config: deps.config, secrets, baseUrl: () => baseUrlOf(app, deps.config) });
  if (!deps.notifications) app.addHook('onClose', async () => notifications.close());
  await app.register(healthRoutes(deps.database, deps.config));
  const events = deps.events ?? (await TaskEventHub.start(deps.database, app.log));
  if (!deps.events) app.addHook('onClose', async () => events.close());
  await app.register(
    taskRoutes(deps.database, webhooks, events, () => {
      metrics.tasksCreated.inc();
      notifications.taskPosted();
    }),
  );
  await app.register(deliveryRoutes(deps.database, webhooks));
  await app.register(authRoutes(deps.database, deps.config));
  await app.register(userRoutes(deps.database));
  await app.register(adminRoutes(deps.database, deps.config, secrets));
  await app.register(notificationRoutes(deps.database, deps.config, secrets, notifications));
  await app.register(actionLinkRoutes(deps.database, deps.config, notifications, webhooks));
  await app.register(eventRoutes(events, deps.database, deps.config, deps.eventHeartbeatMs));
  await app.register(apiReferenceRoutes);
  await app.register(webAppRoutes(deps.webFolder));
  return app;
}

/** The address people reach the inbox at: PUBLIC_URL, else where this server listens. */
export function baseUrlOf(app: FastifyInstance, config: Config): string {
  if (config.publicUrl) return config.publicUrl;
  try {
    return app.listeningOrigin;
  } catch {
    return `http://${config.host}:${config.port}`;
  }
}
