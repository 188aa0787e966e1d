import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { createApiKey } from '../../src/core/keys/index.js';
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
  /** `app.inject` with the API key header added unless `headers['api-key']` is given (null removes it). */
  call(opts: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
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
  const app = await buildApp({ config, database });
  await app.ready();
  return {
    app,
    database,
    config,
    key,
    call({ key: k, ...req }) {
      const headers = { ...(req.headers ?? {}) } as Record<string, string>;
      if (k !== null) headers['api-key'] = k ?? key;
      return app.inject({ ...req, headers });
    },
    async close() {
      await app.close();
      await database.close();
    },
  };
}
