import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AuditEvent, AuditQuery, CreateUserBody, PasswordBody, Problem, Session, UpdateUserBody, User, UserResponse } from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import { listAudit } from '../../core/audit/audit.js';
import * as people from '../../core/people/index.js';
import { actorOf } from '../auth.js';

const errors = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem };
const UserParams = z.object({ id: z.string().min(1) });

/** People, their sessions and the audit trail: admins only. */
export function userRoutes(database: Database): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/api/v1/users', { config: { auth: 'admin' }, schema: { response: { 200: z.object({ users: z.array(User) }), ...errors } } }, async () => ({
      users: await people.listUsers(database),
    }));

    app.post('/api/v1/users', { config: { auth: 'admin' }, schema: { body: CreateUserBody, response: { 200: UserResponse, ...errors } } }, async (req) => ({
      user: await people.createUser(database, actorOf(req), req.body),
    }));

    app.patch('/api/v1/users/:id', { config: { auth: 'admin' }, schema: { params: UserParams, body: UpdateUserBody, response: { 200: UserResponse, ...errors } } }, async (req) => ({
      user: await people.updateUser(database, actorOf(req), req.params.id, req.body),
    }));

    app.post('/api/v1/users/:id/password', { config: { auth: 'admin' }, schema: { params: UserParams, body: PasswordBody, response: { 200: UserResponse, ...errors } } }, async (req) => ({
      user: await people.resetPassword(database, actorOf(req), req.params.id, req.body.password),
    }));

    app.get('/api/v1/users/:id/sessions', { config: { auth: 'admin' }, schema: { params: UserParams, response: { 200: z.object({ sessions: z.array(Session) }), ...errors } } }, async (req) => ({
      sessions: await people.listSessions(database, req.params.id),
    }));

    app.delete('/api/v1/sessions/:id', { config: { auth: 'admin' }, schema: { params: z.object({ id: z.uuid() }), response: { 200: z.object({ ok: z.literal(true) }), ...errors } } }, async (req) => {
      await people.revokeSession(database, actorOf(req), req.params.id);
      return { ok: true as const };
    });

    app.get('/api/v1/audit', { config: { auth: 'admin' }, schema: { querystring: AuditQuery, response: { 200: z.object({ events: z.array(AuditEvent), next_cursor: z.string().nullable() }), ...errors } } }, async (req) => {
      const q = req.query;
      const rows = await listAudit(database.db, { action: q.action, actorName: q.actor, since: q.since ? new Date(q.since) : undefined, beforeId: q.cursor ? Number(q.cursor) : undefined, limit: q.limit + 1 });
      const page = rows.slice(0, q.limit);
      return { events: page, next_cursor: rows.length > q.limit ? String(page[page.length - 1]!.id) : null };
    });
  };
}
