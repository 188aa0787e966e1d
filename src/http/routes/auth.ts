import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ChangePasswordBody, LoginBody, Problem, Session, SetupBody, SetupStatus, UserResponse } from '../../contract/index.js';
import type { Config } from '../../config.js';
import type { Database } from '../../db/index.js';
import * as people from '../../core/people/index.js';
import { countUsers, findUserById } from '../../core/people/people.repo.js';
import { userRowToPublic } from '../../core/people/people.js';
import { actorOf, clearSessionCookie, personOf, principalOf, refuseCrossSite, setSessionCookie } from '../auth.js';
import { z } from 'zod';

const errors = { 400: Problem, 401: Problem, 403: Problem, 429: Problem };

/** Sign-in, sign-out, the signed-in person, and the first-run setup. */
export function authRoutes(database: Database, config: Config): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/api/v1/auth/login', { config: { auth: 'public' }, schema: { body: LoginBody, response: { 200: UserResponse, ...errors } } }, async (req, reply) => {
      // Another site must not sign a visitor in to an account of its choosing either.
      refuseCrossSite(config, req);
      const signedIn = await people.signIn(database, config, { ...req.body, ip: req.ip, userAgent: req.headers['user-agent'] });
      setSessionCookie(req, reply, signedIn.token, config.sessionLifetimeMs);
      return { user: signedIn.user };
    });

    app.post('/api/v1/auth/logout', { config: { auth: 'member' }, schema: { response: { 200: z.object({ ok: z.literal(true) }), ...errors } } }, async (req, reply) => {
      const p = principalOf(req);
      if (p.kind === 'person') await people.signOut(database, actorOf(req), p.sessionId);
      clearSessionCookie(req, reply);
      return { ok: true as const };
    });

    app.get('/api/v1/me', { config: { auth: 'member' }, schema: { response: { 200: UserResponse, ...errors } } }, async (req) => {
      const p = principalOf(req);
      const row = p.kind === 'person' ? await findUserById(database.db, p.id) : undefined;
      return { user: userRowToPublic(row!) };
    });

    app.post('/api/v1/me/password', { config: { auth: 'member' }, schema: { body: ChangePasswordBody, response: { 200: z.object({ ok: z.literal(true) }), ...errors } } }, async (req) => {
      const p = personOf(req);
      await people.changeOwnPassword(database, actorOf(req), p, req.body.current_password, req.body.password);
      return { ok: true as const };
    });

    app.get('/api/v1/me/sessions', { config: { auth: 'member' }, schema: { response: { 200: z.object({ sessions: z.array(Session) }), ...errors } } }, async (req) => {
      const p = personOf(req);
      const sessions = await people.listSessions(database, p.id);
      return { sessions: sessions.map((s) => ({ ...s, current: s.id === p.sessionId })) };
    });

    app.delete('/api/v1/me/sessions/:id', { config: { auth: 'member' }, schema: { params: z.object({ id: z.uuid() }), response: { 200: z.object({ ok: z.literal(true) }), 404: Problem, ...errors } } }, async (req) => {
      await people.revokeOwnSession(database, actorOf(req), personOf(req).id, req.params.id);
      return { ok: true as const };
    });

    app.get('/api/v1/setup', { config: { auth: 'public' }, schema: { response: { 200: SetupStatus } } }, async () => ({
      needed: (await countUsers(database.db)) === 0,
    }));

    app.post('/api/v1/setup', { config: { auth: 'public' }, schema: { body: SetupBody, response: { 200: UserResponse, ...errors } } }, async (req, reply) => {
      refuseCrossSite(config, req);
      const signedIn = await people.completeSetup(database, config, { ...req.body, role: 'admin', ip: req.ip, userAgent: req.headers['user-agent'] });
      setSessionCookie(req, reply, signedIn.token, config.sessionLifetimeMs);
      return { user: signedIn.user };
    });
  };
}
