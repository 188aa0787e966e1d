import type { FastifyBaseLogger } from 'fastify';
import type { Notifications } from '../core/notify/index.js';
import type { Webhooks } from '../core/webhooks/index.js';
import { loadWebhookClient } from '../core/webhooks/sender.js';
import { startDeliveryWorker, type DeliveryWorker } from './delivery-worker.js';

/**
 * Webhook deliveries one process has in flight at most. They share claims and outcome statements:
 * the more of them, the fewer statements per delivery (a claim reads every pending row when the
 * embedded database's statistics are stale, so its cost is per claim rather than per row).
 */
export const WEBHOOKS_IN_FLIGHT = 64;

/** The background work of one process: webhook deliveries and notifications, stopped together. */
export function startWorkers(webhooks: Webhooks, notifications: Notifications, opts: { log?: Pick<FastifyBaseLogger, 'error'>; pollMs?: number } = {}): DeliveryWorker {
  // Loaded off the start path (serve answers /health first), but before the first delivery needs it.
  loadWebhookClient().catch((err: unknown) => opts.log?.error({ err }, 'loading the HTTP client for webhooks failed'));
  const deliveries = startDeliveryWorker(webhooks, { log: opts.log, pollMs: opts.pollMs, concurrency: WEBHOOKS_IN_FLIGHT });
  // Push services and chat servers are slow to answer rather than busy to talk to: more messages in flight.
  const messages = startDeliveryWorker(notifications, { log: opts.log, pollMs: opts.pollMs, name: 'notification worker', concurrency: 64 });
  return { stop: async (graceMs?: number) => void (await Promise.all([deliveries.stop(graceMs), messages.stop(graceMs)])) };
}
