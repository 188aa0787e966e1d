import { sql } from 'drizzle-orm';
import type { Database } from './database.js';

/*
 * The embedded database has no autovacuum: PGlite runs PostgreSQL as a single process, without the
 * launcher that vacuums and analyzes tables in the background. Without it, rows that outboxes
 * update and delete (webhook deliveries, notifications, new-task events) leave dead versions that
 * every claim then reads, and the planner keeps the statistics of an empty table. This does
 * autovacuum's job with its own default thresholds: a table is vacuumed once its dead rows exceed
 * 50 + 20 % of its live rows, and analyzed once the rows changed since its last analysis exceed
 * 50 + 10 %. Each statement goes through the background lane, so requests go first.
 */

/** How often the table statistics are looked at (autovacuum's default naptime). */
export const MAINTENANCE_INTERVAL_MS = 60_000;

interface TableStats {
  relname: string;
  n_live_tup: number | string;
  n_dead_tup: number | string;
  n_mod_since_analyze: number | string;
}

export interface MaintenanceAction {
  table: string;
  vacuum: boolean;
  analyze: boolean;
}

/** The tables past a threshold, and what each needs. */
export async function tablesDueForMaintenance(database: Database): Promise<MaintenanceAction[]> {
  const result = await database.background.execute(
    sql`SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname`,
  );
  const rows = (result as unknown as { rows: TableStats[] }).rows;
  const actions: MaintenanceAction[] = [];
  for (const r of rows) {
    const live = Number(r.n_live_tup);
    const vacuum = Number(r.n_dead_tup) > 50 + 0.2 * live;
    const analyze = Number(r.n_mod_since_analyze) > 50 + 0.1 * live;
    if (vacuum || analyze) actions.push({ table: r.relname, vacuum, analyze });
  }
  return actions;
}

/** Vacuums and analyzes what is due, one table at a time; returns what it did. */
export async function maintainEmbedded(database: Database): Promise<MaintenanceAction[]> {
  const due = await tablesDueForMaintenance(database);
  for (const a of due) {
    const table = sql.identifier(a.table);
    await database.background.execute(a.vacuum ? sql`VACUUM (ANALYZE ${sql.raw(a.analyze ? 'true' : 'false')}) ${table}` : sql`ANALYZE ${table}`);
  }
  return due;
}

/** Runs maintainEmbedded every `intervalMs` until stopped; a failure is logged and tried again next time. */
export function startEmbeddedMaintenance(
  database: Database,
  opts: { intervalMs?: number; log?: { warn: (obj: object, msg: string) => void; debug?: (obj: object, msg: string) => void } } = {},
): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(() =>
      maintainEmbedded(database).then(
        (done) => {
          if (done.length > 0) opts.log?.debug?.({ tables: done }, 'embedded database: vacuumed and analyzed');
        },
        (err: unknown) => opts.log?.warn({ err }, 'embedded database: vacuum or analyze failed; trying again later'),
      ),
    );
  }, opts.intervalMs ?? MAINTENANCE_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
