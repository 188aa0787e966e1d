import type { FastifyBaseLogger } from 'fastify';

/** A durable outbox a worker drains: webhook deliveries, notifications. */
export interface Outbox<T> {
  /** Claims up to `limit` due items under a lease. */
  claimDue(limit: number): Promise<T[]>;
  /** Sends one claimed item and records the outcome; throws only when recording failed. */
  deliver(item: T): Promise<void>;
  /** Called when new work may be due in this process. */
  onWake(fn: () => void): () => void;
  /** Hands claimed items back (their lease ends now), so that other workers take them at once. */
  release(items: T[]): Promise<void>;
}

export interface DeliveryWorker {
  /**
   * Stops claiming and waits for deliveries in flight. With `graceMs`, deliveries still running
   * after it are handed back to the outbox (their leases released) and no longer waited for.
   */
  stop(graceMs?: number): Promise<void>;
}

/** Synchronous work the worker does in one turn of the event loop before it lets others in. */
const SLICE_MS = 2;

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
  const inFlight = new Map<Promise<void>, T>();
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
          let sliceStart = performance.now();
          for (const row of rows) {
            // Each delivery starts with synchronous work (signing, encrypting a push message):
            // once a slice of it has run, the next starts in a later turn of the event loop, so
            // requests get in between. Within a slice, deliveries start together, and their
            // answers come back together, to be recorded together.
            if (performance.now() - sliceStart >= SLICE_MS) {
              await new Promise<void>((resolve) => setImmediate(resolve));
              sliceStart = performance.now();
            }
            const p: Promise<void> = outbox
              .deliver(row)
              .catch((err: unknown) => opts.log?.error({ err }, `${name}: recording an outcome failed; it is retried after its lease`))
              .finally(() => {
                inFlight.delete(p);
                if (concurrency - inFlight.size >= refillAt || inFlight.size === 0) poke();
              });
            inFlight.set(p, row);
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

  let stopped: Promise<void> | undefined;
  const stop = async (graceMs?: number) => {
    running = false;
    wake?.();
    unsubscribe();
    await loop;
    const all = Promise.all(inFlight.keys()).then(() => 'done' as const);
    if (graceMs === undefined) return void (await all);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([all, new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)))]);
    clearTimeout(timer);
    if (outcome === 'late' && inFlight.size > 0) {
      // The process is about to end: whatever these deliveries still record would be lost anyway.
      await outbox.release([...inFlight.values()]).catch((err: unknown) => opts.log?.error({ err }, `${name}: handing back unfinished deliveries failed; they are retried after their lease`));
    }
  };
  // Stopping twice waits for the same stop.
  return { stop: (graceMs?: number) => (stopped ??= stop(graceMs)) };
}
