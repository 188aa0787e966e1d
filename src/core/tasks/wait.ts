import type { GetTaskResponse } from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import type { TaskEventHub } from '../events/task-events.js';
import type { Principal } from './tasks.js';
import { getTask } from './tasks.service.js';

export interface WaitOptions {
  /** At most this long. */
  seconds: number;
  /** `resolved`: until the task is resolved; `change`: until its state (or resolved mark) differs from now. */
  until: 'resolved' | 'change';
  /** Ends the wait early (the client went away, the server is stopping): the current task is answered. */
  signal?: AbortSignal;
}

/**
 * The long poll behind `GET /api/v1/tasks/{id}?wait=`: answers as soon as the task is resolved
 * (or its state changes), or when the time is up, with the task as it is then. While waiting it
 * holds no database connection: it listens for the task's notifications (from any server
 * instance, see TaskEventHub) and reads the task again only when one arrives.
 */
export async function waitForTask(database: Database, events: TaskEventHub, principal: Principal, id: string, opts: WaitOptions): Promise<GetTaskResponse> {
  let wake: (() => void) | undefined;
  let heard = false;
  const onEvent = () => {
    heard = true;
    wake?.();
  };
  // Listen before the first read: a change between the two cannot be missed.
  const unsubscribe = events.subscribeTask(id, onEvent);
  const onAbort = () => wake?.();
  opts.signal?.addEventListener('abort', onAbort);
  try {
    const first = await getTask(database, principal, id);
    const done = (t: GetTaskResponse) =>
      opts.until === 'resolved' ? t.task.resolved : t.task.state !== first.task.state || t.task.resolved !== first.task.resolved;
    if (opts.until === 'resolved' && done(first)) return first;
    const deadline = Date.now() + opts.seconds * 1000;
    let current = first;
    for (;;) {
      if (!heard) {
        const left = deadline - Date.now();
        if (left <= 0 || opts.signal?.aborted) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        if (!heard) break; // time is up, or aborted
      }
      heard = false;
      current = await getTask(database, principal, id);
      if (done(current)) return current;
    }
    return current === first ? getTask(database, principal, id) : current;
  } finally {
    unsubscribe();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
