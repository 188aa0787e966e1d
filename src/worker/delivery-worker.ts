import type { FastifyBaseLogger } from 'fastify';
import type { Webhooks } from '../core/webhooks/index.js';

export interface DeliveryWorker {
  /** Stops claiming, waits for deliveries in flight, then resolves. */
  stop(): Promise<void>;
}

/**
 * Sends due webhook deliveries until stopped: claims a batch, sends it, and sleeps until the next
 * poll or until a new delivery in this process wakes it. Any number of workers, in any number of
 * processes, can run on one database.
 */
export function startDeliveryWorker(webhooks: Webhooks, opts: { pollMs?: number; batch?: number; log?: Pick<FastifyBaseLogger, 'error'> } = {}): DeliveryWorker {
  const pollMs = opts.pollMs ?? 1000;
  let running = true;
  let wake: (() => void) | undefined;
  let woken = false;
  const unsubscribe = webhooks.onWake(() => {
    woken = true;
    wake?.();
  });

  const loop = (async () => {
    while (running) {
      woken = false;
      let claimed = 0;
      try {
        claimed = await webhooks.runDue(opts.batch ?? 32);
      } catch (err) {
        opts.log?.error({ err }, 'webhook delivery worker: claiming or sending failed; retrying');
      }
      if (!running) break;
      if (claimed > 0 || woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
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
    },
  };
}
