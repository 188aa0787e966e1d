import type { FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { Problem } from '../../contract/index.js';
import type { Config } from '../../config.js';
import type { TaskEventHub } from '../../core/events/task-events.js';
import { authenticateSession } from '../../core/people/index.js';
import type { Database } from '../../db/index.js';
import { sessionToken } from '../auth.js';

/** Comment lines keep proxies from closing a quiet stream. */
const HEARTBEAT_MS = 25_000;

/**
 * `GET /api/v1/events`: server-sent events for the inbox. Each task creation or state change is
 * an `event: task` with `{kind, id, schema, state, resolved}`; `event: resync` means some events
 * may have been missed (reload). A stream holds no database connection between heartbeats.
 */
export function eventRoutes(hub: TaskEventHub, database: Database, config: Config, heartbeatMs = HEARTBEAT_MS): FastifyPluginAsync {
  return async (app) => {
    const open = new Set<ServerResponse>();
    app.addHook('preClose', async () => {
      for (const res of open) res.end();
    });

    const schema = {
      response: {
        200: {
          description: 'The event stream; it lasts until the client closes it or the session ends.',
          content: { 'text/event-stream': { schema: z.string().describe('`event:` and `data:` lines (JSON data), and `:` comment lines') } },
        },
        401: Problem,
      },
    };

    app.get('/api/v1/events', { config: { auth: 'member' }, schema }, (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no', // nginx: pass events on at once
      });
      res.write('retry: 3000\n\nevent: ready\ndata: {}\n\n');
      const unsubscribe = hub.subscribe((event) => {
        res.write(`event: ${event.kind === 'resync' ? 'resync' : 'task'}\ndata: ${JSON.stringify(event)}\n\n`);
      });
      // Each heartbeat also checks the session: a stream ends soon after its session does
      // (signed out, revoked, deactivated, expired).
      const token = sessionToken(req);
      const heartbeat = setInterval(async () => {
        const alive = token ? await authenticateSession(database, config, token).catch(() => null) : null;
        if (alive) res.write(': ping\n\n');
        else res.end();
      }, heartbeatMs);
      open.add(res);
      res.on('close', () => {
        clearInterval(heartbeat);
        unsubscribe();
        open.delete(res);
      });
    });
  };
}
