import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import {
  ChannelTestResult,
  CreateChannelBody,
  NotificationChannel,
  NotificationLogEntry,
  NotificationLogQuery,
  NotificationSettings,
  NotifyTopics,
  Problem,
  PushRegisterBody,
  PushUnregisterBody,
  UpdateChannelBody,
} from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import * as notify from '../../core/notify/index.js';
import { listNotifications } from '../../core/notify/notify.repo.js';
import type { SecretBox } from '../../core/secrets/secret-box.js';
import { personOf } from '../auth.js';

const errors = { 400: Problem, 401: Problem, 403: Problem, 404: Problem };
const ChannelParams = z.object({ id: z.uuid() });
const Ok = z.object({ ok: z.literal(true) });

/** Web push registration, a person's notification settings and channels, and the notification log. */
export function notificationRoutes(database: Database, config: Config, secrets: SecretBox, notifications: notify.Notifications): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/.vapid-pk',
      { config: { auth: 'public' }, schema: { hide: true, response: { 200: z.string() } } },
      async (_req, reply) => {
        const keys = await notifications.vapidKeys();
        return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-cache').send(keys.publicKey);
      },
    );

    app.post('/push/register', { config: { auth: 'member' }, schema: { body: PushRegisterBody, response: { 200: Ok, ...errors } } }, async (req) => {
      await notify.registerPush(database, secrets, personOf(req), req.body.sub);
      return { ok: true as const };
    });

    app.post('/push/unregister', { config: { auth: 'member' }, schema: { body: PushUnregisterBody, response: { 200: Ok, ...errors } } }, async (req) => {
      await notify.unregisterPush(database, personOf(req).id, req.body.endpoint);
      return { ok: true as const };
    });

    app.post(
      '/api/v1/me/push/test',
      { config: { auth: 'member' }, schema: { response: { 200: z.object({ sent: z.int(), removed: z.int(), failed: z.int() }), ...errors } } },
      async (req) => notifications.pushToPerson(personOf(req).id, 'This is a test notification from task-inbox.'),
    );

    app.get('/api/v1/me/notifications', { config: { auth: 'member' }, schema: { response: { 200: NotificationSettings, ...errors } } }, async (req) =>
      notify.getSettings(database, config, personOf(req).id),
    );

    app.put(
      '/api/v1/me/notifications/topics',
      { config: { auth: 'member' }, schema: { body: z.object({ topics: NotifyTopics }), response: { 200: NotificationSettings, ...errors } } },
      async (req) => notify.setTopics(database, config, personOf(req).id, req.body.topics),
    );

    app.post('/api/v1/me/channels', { config: { auth: 'member' }, schema: { body: CreateChannelBody, response: { 200: z.object({ channel: NotificationChannel }), ...errors } } }, async (req) => ({
      channel: await notify.createChannel(database, config, secrets, personOf(req).id, req.body),
    }));

    app.patch(
      '/api/v1/me/channels/:id',
      { config: { auth: 'member' }, schema: { params: ChannelParams, body: UpdateChannelBody, response: { 200: z.object({ channel: NotificationChannel }), ...errors } } },
      async (req) => ({ channel: await notify.updateChannel(database, personOf(req).id, req.params.id, req.body.digest_minutes) }),
    );

    app.delete('/api/v1/me/channels/:id', { config: { auth: 'member' }, schema: { params: ChannelParams, response: { 200: Ok, ...errors } } }, async (req) => {
      await notify.deleteChannel(database, personOf(req).id, req.params.id);
      return { ok: true as const };
    });

    app.post('/api/v1/me/channels/:id/test', { config: { auth: 'member' }, schema: { params: ChannelParams, response: { 200: ChannelTestResult, ...errors } } }, async (req) =>
      notify.testChannel(database, notifications, personOf(req).id, req.params.id),
    );

    app.get(
      '/api/v1/admin/notifications',
      { config: { auth: 'admin' }, schema: { querystring: NotificationLogQuery, response: { 200: z.object({ notifications: z.array(NotificationLogEntry), next_cursor: z.string().nullable() }), ...errors } } },
      async (req) => {
        const q = req.query;
        const rows = await listNotifications(database.db, { status: q.status, beforeId: q.cursor ? Number(q.cursor) : undefined, limit: q.limit + 1 });
        const page = rows.slice(0, q.limit);
        return {
          notifications: page.map(({ n, username }) => ({
            id: String(n.id),
            kind: n.kind,
            username,
            target: n.target,
            task_id: n.taskId,
            status: n.status,
            attempts: n.attempts,
            last_status: n.lastStatus,
            last_error: n.lastError,
            created: n.created.toISOString(),
            due: n.nextAttemptAt.toISOString(),
            sent_at: n.sentAt?.toISOString() ?? null,
          })),
          next_cursor: rows.length > q.limit ? String(page[page.length - 1]!.n.id) : null,
        };
      },
    );
  };
}
