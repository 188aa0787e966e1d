import type { Command } from 'commander';
import { deleteExpiredIdempotencyKeys, IDEMPOTENCY_TTL_HOURS } from '../core/tasks/index.js';
import { migrate, openDatabase } from '../db/index.js';
import type { buildApp } from '../http/app.js';
import { configOf, withDatabase, type CliIo } from './context.js';
import { pendingMigrations } from '../db/index.js';
import { loadSecretBox } from '../core/secrets/secret-box.js';
import { Webhooks } from '../core/webhooks/index.js';
import { createSetupToken } from '../core/people/index.js';
import { releaseAllLeases } from '../core/webhooks/deliveries.repo.js';
import type { DeliveryWorker } from '../worker/delivery-worker.js';
import { startEmbeddedMaintenance } from '../db/embedded-maintenance.js';
import type { Config } from '../config.js';
import { deleteExpiredActionLinks, Notifications, releaseAllNotificationLeases } from '../core/notify/index.js';
import type { Database } from '../db/index.js';
import { applyEmbeddedLowMemory, letYoungGenerationGrow } from './v8-memory.js';

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
function untilStopSignal(io: CliIo): Promise<string> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) process.exit(1);
      stopping = true;
      io.err(`${signal}: finishing work in flight, then stopping.\n`);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

async function startWorker(
  config: Config,
  database: Database,
  webhooks: Webhooks,
  notifications: Notifications,
  log: { error: (...a: never[]) => void; warn?: unknown },
): Promise<DeliveryWorker> {
  // Only one process can open the embedded database, so leases held there belong to a process that is gone.
  if (database.kind === 'pglite') {
    await releaseAllLeases(database.db);
    await releaseAllNotificationLeases(database.db);
  }
  if (config.webhookLeaseMs < 20_000) {
    (log as unknown as { warn?: (m: string) => void }).warn?.(
      `WEBHOOK_LEASE is ${config.webhookLeaseMs} ms, shorter than a delivery may take (15 s): with several workers, slow deliveries will be sent twice.`,
    );
  }
  const { startWorkers } = await import('../worker/workers.js');
  return startWorkers(webhooks, notifications, { log: log as never });
}

/**
 * A graceful stop: no new connection and no new claim from now on; requests and deliveries in
 * flight get `graceMs` to finish. Then deliveries still running go back to the outbox for other
 * instances, outbound requests still waiting are ended (a sync webhook then fails, so its change
 * is refused and answered), and a second later the connections still open are closed.
 */
async function stopGracefully(app: Awaited<ReturnType<typeof buildApp>>, worker: DeliveryWorker | undefined, webhooks: Webhooks, notifications: Notifications, graceMs: number) {
  const closed = app.close();
  const finished = Promise.all([closed, worker?.stop(graceMs)]);
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([finished.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
  clearTimeout(timer);
  if (!late) return;
  app.log.warn(`work still in flight after SHUTDOWN_TIMEOUT (${graceMs} ms): handing deliveries back and ending outbound requests`);
  await worker?.stop(graceMs); // resolves right after the same deadline, with the leases released
  webhooks.abortInFlight();
  notifications.senders.abortInFlight();
  const answered = await Promise.race([closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000).unref())]);
  if (!answered) app.server.closeAllConnections();
  await closed;
}

/** Hourly upkeep: forgotten idempotency keys and expired one-tap links. */
function startCleanup(database: Database, log: { warn: (o: object, m: string) => void }) {
  const timer = setInterval(() => {
    deleteExpiredIdempotencyKeys(database.db, IDEMPOTENCY_TTL_HOURS).catch((err) => log.warn({ err }, 'idempotency cleanup failed'));
    deleteExpiredActionLinks(database.db, new Date(Date.now() - 86_400_000)).catch((err) => log.warn({ err }, 'action link cleanup failed'));
  }, 3600_000);
  timer.unref();
  return timer;
}

export function registerServeCommands(program: Command, io: CliIo) {
  program
    .command('serve')
    .description('start the HTTP server (migrates the database first)')
    .option('--port <port>', 'override PORT')
    .option('--host <host>', 'override HOST')
    .action(async (opts: { port?: string; host?: string }) => {
      const config = configOf(io);
      // The HTTP modules load while PostgreSQL's WebAssembly compiles (off the main thread): the
      // two were the largest parts of the start, one after the other.
      const loading = Promise.all([import('../http/app.js'), import('../http/metrics-server.js')]);
      loading.catch(() => {}); // when opening the database fails first, that is the error to report
      applyEmbeddedLowMemory(config);
      const database = await openDatabase(config, 'server');
      let modules: Awaited<typeof loading>;
      try {
        modules = await loading;
      } catch (err) {
        await database.close();
        throw err;
      }
      const [{ baseUrlOf, buildApp }, { startMetricsServer }] = modules;
      let app: Awaited<ReturnType<typeof buildApp>> | undefined;
      let worker: DeliveryWorker | undefined;
      let notifications: Notifications | undefined;
      let webhooks: Webhooks | undefined;
      let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
      try {
        await migrate(database);
        const secrets = loadSecretBox(config);
        webhooks = new Webhooks({ database, config, secrets });
        notifications = new Notifications({ database, config, secrets, baseUrl: () => (app ? baseUrlOf(app, config) : (config.publicUrl ?? `http://${config.host}:${config.port}`)) });
        // Generated and stored at the first start, so that every instance serves the same key.
        await notifications.vapidKeys();
        app = await buildApp({ config, database, webhooks, notifications });
        await app.listen({ port: opts.port ? Number(opts.port) : config.port, host: opts.host ?? config.host });
        if (config.runWorker) worker = await startWorker(config, database, webhooks, notifications, app.log);
        if (config.metricsPort !== undefined) metricsServer = await startMetricsServer(config.metricsHost, config.metricsPort);
      } catch (err) {
        await worker?.stop();
        await metricsServer?.close();
        await app?.close();
        notifications?.close();
        await database.close();
        throw err;
      }
      const where = database.kind === 'pglite' ? `embedded database in ${config.dataDir}` : 'PostgreSQL';
      io.err(`task-inbox is listening on ${app.listeningOrigin} (${where}). Stop it with Ctrl+C.\n`);
      if (metricsServer) io.err(`Metrics: ${metricsServer.url}\n`);
      const setupToken = await createSetupToken(database);
      if (setupToken) {
        io.err(
          `No account exists yet. Create the first admin within an hour at:\n  ${config.publicUrl ?? app.listeningOrigin}/setup#${setupToken}\n` +
            '(the link works once), or run: task-inbox create-admin\n',
        );
      }

      letYoungGenerationGrow();
      const cleanup = startCleanup(database, app.log);
      // PGlite has no autovacuum: the server vacuums and analyzes the embedded database itself.
      const maintenance = database.pglite ? startEmbeddedMaintenance(database, { log: app.log }) : undefined;

      await untilStopSignal(io);
      clearInterval(cleanup);
      const maintained = maintenance?.stop();
      // Both at once: no new request and no new claim from now on; what is in flight gets
      // SHUTDOWN_TIMEOUT to finish, and deliveries still running then go back to the outbox for
      // the other instances.
      await Promise.all([stopGracefully(app, worker, webhooks!, notifications, config.shutdownTimeoutMs), metricsServer?.close()]);
      notifications.close();
      await maintained;
      await database.close();
      io.err('task-inbox stopped.\n');
    });

  program
    .command('worker')
    .description('run only the webhook and notification workers (e.g. beside servers started with WORKER=off)')
    .action(async () => {
      const config = configOf(io);
      applyEmbeddedLowMemory(config);
      const database = await openDatabase(config, 'server');
      try {
        await migrate(database);
        const secrets = loadSecretBox(config);
        const webhooks = new Webhooks({ database, config, secrets });
        const notifications = new Notifications({ database, config, secrets, baseUrl: () => config.publicUrl ?? `http://${config.host}:${config.port}` });
        const worker = await startWorker(config, database, webhooks, notifications, {
          error: (...args: unknown[]) => io.err(`${JSON.stringify(args)}\n`),
          warn: (m: string) => io.err(`warning: ${m}\n`),
        });
        letYoungGenerationGrow();
        io.err(`task-inbox worker is delivering webhooks (${database.kind === 'pglite' ? `embedded database in ${config.dataDir}` : 'PostgreSQL'}). Stop it with Ctrl+C.\n`);
        await untilStopSignal(io);
        await worker.stop(config.shutdownTimeoutMs);
        // Deliveries still running were handed back; their requests need not hold the process.
        webhooks.abortInFlight();
        notifications.senders.abortInFlight();
        notifications.close();
      } finally {
        await database.close();
      }
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
