import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { sql } from 'drizzle-orm';
import type { Database } from '../db/index.js';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The process's Prometheus metrics (one scrape target per process, as Prometheus sees it).
 * Counters and histograms are kept by whatever does the work in this process; the outbox gauges
 * are read from the database at each scrape, so every instance reports the same, shared queues.
 */
class Metrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'task_inbox_http_request_duration_seconds',
    help: 'HTTP requests by method, route (the pattern, not the URL) and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly tasksCreated = new Counter({ name: 'task_inbox_tasks_created_total', help: 'Tasks created over the API', registers: [this.registry] });
  readonly stateChanges = new Counter({
    name: 'task_inbox_task_state_changes_total',
    help: 'State changes made, by who made them (person, api-key, link)',
    labelNames: ['by'] as const,
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: 'task_inbox_webhook_deliveries_total',
    help: 'Webhook delivery attempts by mode (sync, async) and outcome (delivered, failed)',
    labelNames: ['mode', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly webhookDuration = new Histogram({
    name: 'task_inbox_webhook_delivery_duration_seconds',
    help: 'How long receivers took to answer a webhook, by mode and outcome',
    labelNames: ['mode', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly notifications = new Counter({
    name: 'task_inbox_notifications_total',
    help: 'Notification messages by kind (push, email, slack, ntfy, webhook) and outcome (sent, failed, gone, skipped)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  private database: Database | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'task_inbox_' });
    // Both gauges are read from the database in one query per scrape: the first gauge's collect
    // starts the reading, the second's takes it over.
    let reading: Promise<void> | undefined;
    const read = () => {
      if (reading) {
        const r = reading;
        reading = undefined;
        return r;
      }
      reading = readOutboxes(this.database).then((rows) => {
        for (const r of rows) {
          depth.set({ outbox: r.outbox }, r.depth);
          oldest.set({ outbox: r.outbox }, r.oldest);
        }
      });
      return reading;
    };
    const depth: Gauge<'outbox'> = new Gauge({
      name: 'task_inbox_outbox_depth',
      help: 'Items waiting in an outbox (webhooks: pending deliveries; notifications: pending messages and new tasks not yet fanned out)',
      labelNames: ['outbox'] as const,
      registers: [this.registry],
      collect: read,
    });
    const oldest: Gauge<'outbox'> = new Gauge({
      name: 'task_inbox_outbox_oldest_age_seconds',
      help: 'Age of the oldest item waiting in an outbox (0 when empty)',
      labelNames: ['outbox'] as const,
      registers: [this.registry],
      collect: read,
    });
  }

  /** The database whose outboxes the gauges report (the server's). */
  watchOutboxes(database: Database) {
    this.database = database;
  }

  /** The exposition text. */
  async text(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

async function readOutboxes(database: Database | undefined): Promise<{ outbox: string; depth: number; oldest: number }[]> {
  if (!database) return [];
  // A scrape while the database is down still reports the process; the gauges keep their last values.
  const result = await database.db
    .execute(sql`
    SELECT 'webhooks' AS outbox, count(*)::int AS depth, coalesce(extract(epoch FROM now() - min(created)), 0)::float8 AS oldest
      FROM webhook_deliveries WHERE status = 'pending'
    UNION ALL
    SELECT 'notifications', (SELECT count(*) FROM notifications WHERE status = 'pending') + count(*),
      coalesce(extract(epoch FROM now() - least(min(created), (SELECT min(created) FROM notifications WHERE status = 'pending'))), 0)::float8
      FROM notification_events`)
    .catch(() => null);
  if (!result) return [];
  return (result as unknown as { rows: { outbox: string; depth: number | string; oldest: number | string }[] }).rows.map((r) => ({
    outbox: r.outbox,
    depth: Number(r.depth),
    oldest: Number(r.oldest),
  }));
}

export const metrics = new Metrics();
