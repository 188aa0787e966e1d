import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { createApiKey } from '../../src/core/keys/index.js';
import { createUser, signIn } from '../../src/core/people/index.js';
import { cliActor } from '../../src/core/audit/audit.js';
import { installSchema } from '../../src/core/schemas/index.js';
import type { Database } from '../../src/db/index.js';
import { buildApp } from '../../src/http/app.js';
import { createTestDatabase } from './db.js';

export const sampleSchema = `name: 'acme:moderation'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  pending_states: ['level1', 'level2']
  resolved_states: ['block', 'allow']
`;

export interface TestApp {
  app: FastifyInstance;
  database: Database;
  config: Config;
  /** A live API key with no schema limit. */
  key: string;
  /** The session cookie of a signed-in admin ("admin" / "admin-password-1"). */
  adminCookie: string;
  /**
   * `app.inject` with credentials. By default both the API key and the admin's session cookie
   * (routes take the one their rule asks for). `key: '…'` sends only that key; `key: null` sends
   * neither; `cookie: '…'` sends only that cookie.
   */
  call(opts: InjectOptions & { key?: string | null; cookie?: string }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ LOG_LEVEL: 'silent', SECRET_KEY: 'test-secret-key-of-at-least-32-characters', ...env }, { stdoutIsTty: false });
}

/** An app on a fresh database with the sample schema installed and one API key. */
export async function createTestApp(opts: { env?: Record<string, string>; poolSize?: number } = {}): Promise<TestApp> {
  const { database } = await createTestDatabase({ poolSize: opts.poolSize });
  const config = testConfig(opts.env);
  await installSchema(database, sampleSchema);
  const { key } = await createApiKey(database, { name: 'test' });
  await createUser(database, cliActor, { username: 'admin', name: 'Ada Admin', role: 'admin', password: 'admin-password-1' });
  const { token } = await signIn(database, config, { username: 'admin', password: 'admin-password-1', ip: '127.0.0.1' });
  const adminCookie = `ti_session=${token}`;
  const app = await buildApp({ config, database });
  await app.ready();
  return {
    app,
    database,
    config,
    key,
    adminCookie,
    call({ key: k, cookie, ...req }) {
      const headers = { ...(req.headers ?? {}) } as Record<string, string>;
      if (cookie !== undefined) headers.cookie = cookie;
      else {
        if (k !== null) headers['api-key'] = k ?? key;
        if (k === undefined) headers.cookie = adminCookie;
      }
      return app.inject({ ...req, headers });
    },
    async close() {
      await app.close();
      await database.close();
    },
  };
}
