import { EventEmitter } from 'node:events';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import type { Database, Executor } from '../../db/index.js';

/*
 * Live updates. Every task creation and state change sends a PostgreSQL notification in its own
 * transaction, so it is heard only once the change is committed, and by every server instance
 * listening on the same database (PGlite delivers them in-process). The hub turns them into
 * events for the server-sent event streams of the inbox.
 */

export const TASK_EVENTS_CHANNEL = 'task_inbox_events';

export interface TaskEvent {
  kind: 'created' | 'changed';
  id: string;
  schema: string;
  state: string | null;
  resolved: boolean;
}

/** Sends the event when `db`'s transaction commits (at once outside a transaction). */
export async function publishTaskEvent(db: Executor, event: TaskEvent): Promise<void> {
  await db.execute(sql`SELECT pg_notify(${TASK_EVENTS_CHANNEL}, ${JSON.stringify(event)})`);
}

type Listener = (event: TaskEvent | { kind: 'resync' }) => void;

/** Delay before listening again after the listening connection was lost. */
const RECONNECT_MS = [250, 1000, 2000, 5000];

/** Receives the task notifications of one database and hands them to subscribers in this process. */
export class TaskEventHub {
  private readonly emitter = new EventEmitter();
  private readonly byTask = new Map<string, Set<() => void>>();
  private stopListening: () => Promise<void> = async () => {};
  private closed = false;

  private constructor() {
    this.emitter.setMaxListeners(0);
  }

  /** Starts listening; on PostgreSQL on a connection of its own, outside the pool. */
  static async start(database: Database, log?: { warn: (obj: object, msg: string) => void }): Promise<TaskEventHub> {
    const hub = new TaskEventHub();
    if (database.pglite) {
      const unlisten = await database.pglite.listen(TASK_EVENTS_CHANNEL, (payload) => hub.dispatch(payload));
      hub.stopListening = unlisten;
    } else if (database.pool) {
      await hub.listenOnPostgres(database.pool.options as pg.ClientConfig, log);
    }
    return hub;
  }

  private async listenOnPostgres(options: pg.ClientConfig, log?: { warn: (obj: object, msg: string) => void }, failures = 0): Promise<void> {
    const client = new pg.Client(options);
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost || this.closed) return;
      lost = true;
      log?.warn({ err }, 'live updates: the listening connection was lost; reconnecting');
      client.end().catch(() => {});
      const delay = RECONNECT_MS[Math.min(failures, RECONNECT_MS.length - 1)]!;
      setTimeout(() => {
        if (!this.closed) this.listenOnPostgres(options, log, failures + 1).catch(() => {});
      }, delay).unref();
    };
    client.on('notification', (n) => {
      if (n.channel === TASK_EVENTS_CHANNEL && n.payload) this.dispatch(n.payload);
    });
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.connect();
      await client.query(`LISTEN ${TASK_EVENTS_CHANNEL}`);
    } catch (err) {
      if (failures === 0) {
        await client.end().catch(() => {});
        throw err;
      }
      onLost(err as Error);
      return;
    }
    const stop = async () => {
      lost = true;
      await client.end().catch(() => {});
    };
    if (this.closed) return stop(); // closed while this reconnect was under way
    this.stopListening = stop;
    // Whatever happened while not listening is unknown: subscribers reload.
    if (failures > 0) this.resync();
    failures = 0; // a later loss starts again with the shortest delay
  }

  private dispatch(payload: string) {
    let event: TaskEvent;
    try {
      event = JSON.parse(payload) as TaskEvent;
    } catch {
      return; // not ours
    }
    this.emitter.emit('event', event);
    for (const listener of this.byTask.get(event.id) ?? []) listener();
  }

  private resync() {
    this.emitter.emit('event', { kind: 'resync' });
    for (const set of this.byTask.values()) for (const listener of set) listener();
  }

  /**
   * Calls `listener` when task `id` is created or changed, or when events may have been missed
   * (resync), until the returned function is called. Kept by task id, so many waiters on
   * different tasks cost nothing per event.
   */
  subscribeTask(id: string, listener: () => void): () => void {
    let set = this.byTask.get(id);
    if (!set) this.byTask.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.byTask.get(id) === set) this.byTask.delete(id);
    };
  }

  /** Calls `listener` for each event until the returned function is called. */
  subscribe(listener: Listener): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  get subscribers(): number {
    return this.emitter.listenerCount('event');
  }

  /** How many tasks someone waits on (long polls) in this process. */
  get waitedOnTasks(): number {
    return this.byTask.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.emitter.removeAllListeners();
    this.byTask.clear();
    await this.stopListening();
  }
}
