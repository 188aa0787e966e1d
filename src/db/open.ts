import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import * as tables from './tables.js';
import type { Database, Db } from './database.js';
import { BackgroundLane, limitedPool } from './background-lane.js';

// Keep bigint ids (history ids, task seq) as JS numbers from node-postgres, like PGlite does:
// they stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** Wraps an already created PGlite instance (in memory in tests, or on disk). */
export function wrapPglite(client: PGlite, onClose: () => Promise<void> = () => client.close()): Database {
  const lane = new BackgroundLane();
  const foreground = lane.foregroundClient(client);
  const db = drizzlePglite({ client: foreground, schema: tables }) as unknown as Db;
  return {
    kind: 'pglite',
    db,
    background: drizzlePglite({ client: lane.backgroundClient(client), schema: tables }) as unknown as Db,
    pglite: client,
    async query(text, params) {
      const res = await foreground.query(text, params as unknown[]);
      return res.rows as never[];
    },
    close: onClose,
  };
}

export interface PostgresOptions {
  /** `postgres://…`, or pg options such as `{host: '/path/to/socket/dir'}`. */
  connection: string | pg.PoolConfig;
  poolSize: number;
  /** What `kind` reports: a socket onto an embedded database still speaks the PostgreSQL protocol. */
  onClose?: () => Promise<void>;
}

export function openPostgres(opts: PostgresOptions): Database {
  const base: pg.PoolConfig = typeof opts.connection === 'string' ? { connectionString: opts.connection } : opts.connection;
  const pool = new pg.Pool({ ...base, max: opts.poolSize, idleTimeoutMillis: 30_000 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const db = drizzlePg({ client: pool, schema: tables }) as unknown as Db;
  return {
    kind: 'postgres',
    db,
    // The workers may use half the pool at most, so that requests always find a connection.
    background: drizzlePg({ client: limitedPool(pool, Math.max(1, Math.floor(opts.poolSize / 2))), schema: tables }) as unknown as Db,
    pool,
    async query(text, params) {
      const res = await pool.query(text, params as unknown[]);
      return res.rows as never[];
    },
    async close() {
      await pool.end();
      await opts.onClose?.();
    },
  };
}
