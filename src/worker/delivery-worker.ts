import type { FastifyBaseLogger } from 'fastify';

/** A durable outbox a worker drains: webhook deliveries, notifications. */
export interface Outbox<T> {
  /** Claims up to `limit` due items under a lease. */
  claimDue(limit: number): Promise<T[]>;
  /** Sends one claimed item and records the outcome; throws only when recording failed. */
  deliver(item: T): Promise<void>;
  /** Called when new work may be due in this process. */
  onWake(fn: () => void): () => void;
}

export interface DeliveryWorker {
  /** Stops claiming, waits for deliveries in flight, then resolves. */
  stop(): Promise<void>;
}

/**
 * Sends the due items of an outbox (webhook deliveries, notifications) until stopped. Up to
 * `concurrency` deliveries are in flight at once, so a slow receiver holds up only its own
 * deliveries. Between claims it sleeps until the next poll, or until new work in this process
 * wakes it, or until finished deliveries have freed a quarter of the slots: refilling one slot at
 * a time would cost a claim per delivery, and those claims compete with the requests for the
 * database. Any number of workers, in any number of processes, can run on one database.
 */
export function startDeliveryWorker<T>(
  outbox: Outbox<T>,
  opts: { pollMs?: number; concurrency?: number; log?: Pick<FastifyBaseLogger, 'error'>; name?: string } = {},
): DeliveryWorker {
  const name = opts.name ?? 'webhook delivery worker';
  const pollMs = opts.pollMs ?? 1000;
  const concurrency = opts.concurrency ?? 32;
  const refillAt = Math.max(1, Math.ceil(concurrency / 4));
  const inFlight = new Set<Promise<void>>();
  let running = true;
  let wake: (() => void) | undefined;
  let woken = false;
  const poke = () => {
    woken = true;
    wake?.();
  };
  const unsubscribe = outbox.onWake(poke);

  const loop = (async () => {
    while (running) {
      woken = false;
      const room = concurrency - inFlight.size;
      let claimed = 0;
      if (room > 0) {
        try {
          const rows = await outbox.claimDue(room);
          claimed = rows.length;
          for (const row of rows) {
            const p: Promise<void> = outbox
              .deliver(row)
              .catch((err: unknown) => opts.log?.error({ err }, `${name}: recording an outcome failed; it is retried after its lease`))
              .finally(() => {
                inFlight.delete(p);
                if (concurrency - inFlight.size >= refillAt || inFlight.size === 0) poke();
              });
            inFlight.add(p);
          }
        } catch (err) {
          opts.log?.error({ err }, `${name}: claiming failed; retrying`);
        }
      }
      if (!running) break;
      if ((room > 0 && claimed === room) || woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (woken) wake();
      });
      wake = undefined;
    }
  })();

  return {
    async stop() {
      running = false;
      wake?.();
      unsubscribe();
      await loop;
      await Promise.all(inFlight);
    },
  };
}
