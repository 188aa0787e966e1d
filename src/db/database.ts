import type { PGlite } from '@electric-sql/pglite';
import type pg from 'pg';
import type { ExtractTablesWithRelations } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type * as tables from './tables.js';

type Tables = typeof tables;

/** Drizzle over either driver. Repos take this (or a transaction, which is one too) as first argument. */
export type Db = PgDatabase<PgQueryResultHKT, Tables>;
export type Tx = PgTransaction<PgQueryResultHKT, Tables, ExtractTablesWithRelations<Tables>>;
/** Anything a repo can run a query on. */
export type Executor = Db | Tx;

/** An open database: PGlite in-process, or PostgreSQL through a pool. */
export interface Database {
  readonly kind: 'pglite' | 'postgres';
  readonly db: Db;
  /**
   * The same database for background work (webhook and notification workers). On the embedded
   * database its statements give way to those of requests (see BackgroundLane); on PostgreSQL it
   * uses at most half the pool's connections (see limitedPool).
   */
  readonly background: Db;
  /** The in-process embedded instance (absent when reached over a socket or on PostgreSQL). */
  readonly pglite?: PGlite;
  /** The connection pool, on PostgreSQL. */
  readonly pool?: pg.Pool;
  /** Raw SQL for tests, tools and migrations. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}
