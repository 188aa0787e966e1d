import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { loadConfig } from '../config.js';
import { wrapPglite } from '../db/index.js';
import { packageRoot } from '../paths.js';
import { buildApp } from './app.js';

/** The committed copy of the document (`npm run openapi` writes it; a test compares it with the server's). */
export const OPENAPI_FILE = path.join(packageRoot, 'docs', 'openapi.json');

/**
 * The document the server serves at /openapi.json, from an app built on an empty in-memory
 * database: it depends on the routes alone, not on the data or the configuration.
 */
export async function generateOpenApiDocument(): Promise<unknown> {
  const database = wrapPglite(new PGlite());
  // A given SECRET_KEY: the app must not generate one in a data folder.
  const config = loadConfig({ LOG_LEVEL: 'silent', SECRET_KEY: 'openapi-generation-only-'.padEnd(32, '-') }, { stdoutIsTty: false });
  const app = await buildApp({ config, database });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    await database.close();
  }
}
