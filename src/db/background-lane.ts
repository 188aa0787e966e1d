import type { PGlite } from '@electric-sql/pglite';
import type pg from 'pg';

/** The longest a background statement waits for requests' statements to finish before it runs anyway. */
const MAX_WAIT_MS = 20;

const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Statement scheduling for the embedded database. PGlite executes each statement on the main
 * thread, and statements queued on its one connection run back to back inside microtasks: a
 * burst of worker statements (sixty deliveries recording their outcomes) holds the event loop,
 * and with it every request, for hundreds of milliseconds. So background statements (the
 * workers') run one at a time, each in a macrotask of its own, and only once no request's
 * statement is waiting — or after MAX_WAIT_MS, so that a busy inbox still delivers.
 */
export class BackgroundLane {
  private foreground = 0;
  private idle: (() => void)[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  /** The client requests use: its statements are only counted. */
  foregroundClient(client: PGlite): PGlite {
    return proxyClient(client, async (run) => {
      this.foreground++;
      try {
        return await run();
      } finally {
        if (--this.foreground === 0) for (const wake of this.idle.splice(0)) wake();
      }
    });
  }

  /** The client the workers use: its statements take turns behind the requests'. */
  backgroundClient(client: PGlite): PGlite {
    return proxyClient(client, (run) => {
      const result = this.tail.then(() => this.turn()).then(run);
      this.tail = result.catch(() => {});
      return result;
    });
  }

  private async turn() {
    await nextMacrotask();
    if (this.foreground === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, MAX_WAIT_MS);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

type Around = <T>(run: () => Promise<T>) => Promise<T>;

/** The same PGlite instance, with `query`, `exec` and `transaction` run through `around`. */
function proxyClient(client: PGlite, around: Around): PGlite {
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      if (prop === 'query' || prop === 'exec' || prop === 'transaction') return (...args: unknown[]) => around(() => method(...args) as Promise<unknown>);
      return method;
    },
  });
}

/**
 * The same pool for background work, with at most `limit` of its connections in use by it at
 * once: a burst of worker statements (sixty deliveries recording their outcomes together) would
 * otherwise take every connection and queue the requests behind it.
 */
export function limitedPool(pool: pg.Pool, limit: number): pg.Pool {
  let active = 0;
  const waiting: (() => void)[] = [];
  const acquire = async () => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
  };
  // A waiter inherits the slot; only when nobody waits does the count drop.
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  return new Proxy(pool, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      if (prop === 'query') {
        return async (...args: unknown[]) => {
          await acquire();
          try {
            return await (method(...args) as Promise<unknown>);
          } finally {
            release();
          }
        };
      }
      if (prop === 'connect') {
        return async () => {
          await acquire();
          let client: pg.PoolClient;
          try {
            client = await target.connect();
          } catch (err) {
            release();
            throw err;
          }
          let released = false;
          return new Proxy(client, {
            get(c, p) {
              const v: unknown = Reflect.get(c, p, c);
              if (p === 'release') {
                return (err?: Error | boolean) => {
                  if (!released) {
                    released = true;
                    release();
                  }
                  return c.release(err);
                };
              }
              return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(c) : v;
            },
          });
        };
      }
      return method;
    },
  });
}
