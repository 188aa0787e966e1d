import type { Command } from 'commander';
import { deleteExpiredIdempotencyKeys, IDEMPOTENCY_TTL_HOURS } from '../core/tasks/index.js';
import { migrate, openDatabase } from '../db/index.js';
import { buildApp } from '../http/app.js';
import { configOf, withDatabase, type CliIo } from './context.js';
import { pendingMigrations } from '../db/index.js';

export function registerServeCommands(program: Command, io: CliIo) {
  program
    .command('serve')
    .description('start the HTTP server (migrates the database first)')
    .option('--port <port>', 'override PORT')
    .option('--host <host>', 'override HOST')
    .action(async (opts: { port?: string; host?: string }) => {
      const config = configOf(io);
      const database = await openDatabase(config, 'server');
      let app;
      try {
        await migrate(database);
        app = await buildApp({ config, database });
        await app.listen({ port: opts.port ? Number(opts.port) : config.port, host: opts.host ?? config.host });
      } catch (err) {
        await app?.close();
        await database.close();
        throw err;
      }
      const where = database.kind === 'pglite' ? `embedded database in ${config.dataDir}` : 'PostgreSQL';
      io.err(`task-inbox is listening on ${app.listeningOrigin} (${where}). Stop it with Ctrl+C.\n`);

      const cleanup = setInterval(() => {
        deleteExpiredIdempotencyKeys(database.db, IDEMPOTENCY_TTL_HOURS).catch((err) => app.log.warn({ err }, 'idempotency cleanup failed'));
      }, 3600_000);
      cleanup.unref();

      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = async (signal: string) => {
          if (stopping) process.exit(1); // a second signal: stop now
          stopping = true;
          io.err(`${signal}: finishing requests in flight, then stopping.\n`);
          clearInterval(cleanup);
          await app.close();
          await database.close();
          resolve();
        };
        process.once('SIGINT', () => void stop('SIGINT'));
        process.once('SIGTERM', () => void stop('SIGTERM'));
      });
    });

  program
    .command('migrate')
    .description('apply pending database migrations (serve also does this at start)')
    .action(async () => {
      await withDatabase(io, async (database) => {
        // withDatabase has migrated already; say what was there to do.
        const left = await pendingMigrations(database);
        io.out(left.length === 0 ? 'The database is up to date.\n' : `${left.length} migration(s) still pending.\n`);
      });
    });
}
