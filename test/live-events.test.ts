/*
 * Live updates: `GET /api/v1/events` (server-sent events) fed by PostgreSQL LISTEN/NOTIFY through
 * `TaskEventHub`. Streams are read over a real listening socket (inject cannot stream). A change
 * must reach every instance on the same database, only once committed, and a stream must hold
 * no pool connection. On the embedded database, notifications committed by CLI commands through
 * the server's socket are relayed to the server's listeners.
 */
import type { FastifyInstance } from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, test } from 'vitest';
import type { Config } from '../src/config.js';
import { cliActor } from '../src/core/audit/audit.js';
import { TASK_EVENTS_CHANNEL, TaskEventHub, type TaskEvent } from '../src/core/events/task-events.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createUser, signIn } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { createTask, setTaskState } from '../src/core/tasks/index.js';
import { notificationsIn, servePglite } from '../src/db/embedded-socket.js';
import { openPostgres, type Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { sampleSchema, testConfig } from './helpers/app.js';
import { createTestDatabase, dbKind } from './helpers/db.js';

const SCHEMA = 'acme:moderation';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

// ---------------------------------------------------------------------------------------------
// A server-sent event reader on a real socket.

interface SseEvent {
  event: string;
  data: string;
}

interface EventStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Every event received so far (comments and `retry:` lines are not events). */
  events: SseEvent[];
  /** The next event not yet taken, waiting up to `ms` for it. */
  next(ms?: number): Promise<SseEvent>;
  /** The next event, which must be `event: task`; its data. */
  nextTask(ms?: number): Promise<TaskEvent>;
  /** Resolves when the server ended the response. */
  ended: Promise<void>;
  /** Drops the connection from the client side. */
  close(): void;
}

/** Opens `GET /api/v1/events`; resolves once the response head arrived. */
function openStream(base: string, headers: Record<string, string> = {}): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}/api/v1/events`, { headers, agent: false }, (res) => {
      const events: SseEvent[] = [];
      let taken = 0;
      let buffer = '';
      let wake: (() => void) | undefined;
      let endedFlag = false;
      const ended = new Promise<void>((done) => {
        res.on('end', done);
        res.on('close', done);
      }).then(() => {
        endedFlag = true;
        wake?.();
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = '';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (event || data.length > 0) events.push({ event: event || 'message', data: data.join('\n') });
        }
        wake?.();
      });
      res.on('error', () => {});
      const stream: EventStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        ended,
        async next(ms = 10_000) {
          const deadline = Date.now() + ms;
          while (taken >= events.length) {
            if (endedFlag) throw new Error(`the stream ended after ${events.length} events`);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`no event within ${ms} ms (got ${JSON.stringify(events)})`);
            await new Promise<void>((r) => {
              const timer = setTimeout(r, left);
              wake = () => {
                clearTimeout(timer);
                r();
              };
            });
            wake = undefined;
          }
          return events[taken++]!;
        },
        async nextTask(ms) {
          const e = await stream.next(ms);
          expect(e.event, `expected a task event, got ${JSON.stringify(e)}`).toBe('task');
          return JSON.parse(e.data) as TaskEvent;
        },
        close: () => req.destroy(),
      };
      resolve(stream);
    });
    req.on('error', reject);
  });
}

/** Opens a stream and takes its `ready` event. */
async function readyStream(base: string, cookie: string): Promise<EventStream> {
  const stream = await openStream(base, { cookie });
  cleanups.push(() => stream.close());
  expect(stream.status).toBe(200);
  expect(await stream.next()).toEqual({ event: 'ready', data: '{}' });
  return stream;
}

// ---------------------------------------------------------------------------------------------
// A database with the sample schema, an API key and a member; apps on it, listening on a port.

interface Setup {
  database: Database;
  config: Config;
  key: string;
  /** A signed-in member's Cookie header. */
  cookie: string;
}

async function setupDatabase(opts: { poolSize?: number } = {}): Promise<Setup> {
  const { database } = await createTestDatabase(opts);
  cleanups.push(() => database.close());
  const config = testConfig();
  await installSchema(database, sampleSchema);
  const { key } = await createApiKey(database, { name: 'app' });
  await createUser(database, cliActor, { username: 'mia', name: 'Mia Member', role: 'member', password: 'member-password-1' });
  const { token } = await signIn(database, config, { username: 'mia', password: 'member-password-1', ip: '127.0.0.1' });
  return { database, config, key, cookie: `ti_session=${token}` };
}

interface Server {
  app: FastifyInstance;
  base: string;
  /** Calls the API of this instance over HTTP with the API key. */
  api(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }>;
  createTask(state?: string, meta?: object): Promise<{ id: string; state: string | null; resolved: boolean }>;
  setState(id: string, state: string): Promise<{ status: number; json: any }>;
}

async function startServer(s: Setup, deps: { events?: TaskEventHub; eventHeartbeatMs?: number } = {}): Promise<Server> {
  const app = await buildApp({ config: s.config, database: s.database, ...deps });
  await app.listen({ port: 0, host: '127.0.0.1' });
  cleanups.push(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const api: Server['api'] = async (method, url, body) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { 'api-key': s.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: res.status, json: await res.json() };
  };
  return {
    app,
    base,
    api,
    async createTask(state, meta) {
      const res = await api('POST', '/api/v1/tasks/', { schema_name: SCHEMA, task: 'flag-content', state, meta });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      return res.json.task;
    },
    setState: (id, state) => api('PATCH', `/api/v1/tasks/${id}/state?state=${encodeURIComponent(state)}`),
  };
}

/** Polls until `fn` holds. */
async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------

describe('GET /api/v1/events', () => {
  test('without a session cookie → 401 problem (an API key is not enough); with a bad cookie → 401', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const attempts: Record<string, string>[] = [{}, { 'api-key': s.key }, { cookie: 'ti_session=not-a-session' }];
    for (const headers of attempts) {
      const stream = await openStream(srv.base, headers);
      cleanups.push(() => stream.close());
      expect(stream.status, JSON.stringify(headers)).toBe(401);
      expect(stream.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(stream.headers['content-type']).not.toMatch(/event-stream/);
    }
  });

  test("a member's stream starts with `ready`, as an event stream that is not cached", async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const stream = await readyStream(srv.base, s.cookie);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.headers['cache-control']).toBe('no-store');
  });

  test('a task posted with an API key arrives as `created`; a state change as `changed` with the new state', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const stream = await readyStream(srv.base, s.cookie);

    const task = await srv.createTask('level1', { post: 42 });
    expect(await stream.nextTask()).toEqual({ kind: 'created', id: task.id, schema: SCHEMA, state: 'level1', resolved: false });

    expect((await srv.setState(task.id, 'block')).status).toBe(200);
    expect(await stream.nextTask()).toEqual({ kind: 'changed', id: task.id, schema: SCHEMA, state: 'block', resolved: true });

    expect((await srv.api('PATCH', `/api/v1/tasks/${task.id}/state?state=`)).status).toBe(200);
    expect(await stream.nextTask()).toEqual({ kind: 'changed', id: task.id, schema: SCHEMA, state: null, resolved: false });

    // A second task without a state.
    const other = await srv.createTask();
    expect(await stream.nextTask()).toEqual({ kind: 'created', id: other.id, schema: SCHEMA, state: null, resolved: false });
  });

  test('refused changes, unchanged states and idempotent replays send nothing', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const task = await srv.createTask('level1');
    const stream = await readyStream(srv.base, s.cookie);

    expect((await srv.setState(task.id, 'no-such-state')).status).toBe(422);
    expect((await srv.api('POST', '/api/v1/tasks/', { schema_name: SCHEMA, task: 'flag-content', state: 'no-such-state' })).status).toBe(422);
    expect((await srv.setState('00000000-0000-4000-8000-000000000000', 'block')).status).toBe(404);
    // Setting the state the task already has changes nothing.
    expect((await srv.setState(task.id, 'level1')).status).toBe(200);
    // An idempotent retry answers from memory: the task was created once.
    const body = { schema_name: SCHEMA, task: 'delete-acct' };
    const first = await fetch(`${srv.base}/api/v1/tasks/`, { method: 'POST', headers: { 'api-key': s.key, 'content-type': 'application/json', 'idempotency-key': 'k-1' }, body: JSON.stringify(body) });
    const created = ((await first.json()) as { task: { id: string } }).task.id;
    expect(await stream.nextTask()).toMatchObject({ kind: 'created', id: created });
    const retry = await fetch(`${srv.base}/api/v1/tasks/`, { method: 'POST', headers: { 'api-key': s.key, 'content-type': 'application/json', 'idempotency-key': 'k-1' }, body: JSON.stringify(body) });
    expect(retry.headers.get('idempotent-replayed')).toBe('true');

    // A change made afterwards is the very next event: nothing was sent for the ones above.
    expect((await srv.setState(task.id, 'level2')).status).toBe(200);
    expect(await stream.nextTask()).toEqual({ kind: 'changed', id: task.id, schema: SCHEMA, state: 'level2', resolved: false });
  });

  test('a notification is sent on commit only: a rolled-back transaction sends nothing', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const stream = await readyStream(srv.base, s.cookie);
    await s.database.db
      .transaction(async (tx) => {
        await createTask(s.database, { kind: 'cli' }, { schema_name: SCHEMA, task: 'flag-content' }, tx);
        throw new Error('roll back');
      })
      .catch(() => {});
    const task = await srv.createTask('level2');
    expect(await stream.nextTask()).toMatchObject({ kind: 'created', id: task.id, state: 'level2' });
  });

  test('every open stream gets every event; a dropped stream unsubscribes from the hub', async () => {
    const s = await setupDatabase();
    const hub = await TaskEventHub.start(s.database);
    cleanups.push(() => hub.close());
    const srv = await startServer(s, { events: hub });
    const streams = [await readyStream(srv.base, s.cookie), await readyStream(srv.base, s.cookie), await readyStream(srv.base, s.cookie)];
    expect(hub.subscribers).toBe(3);

    const task = await srv.createTask();
    for (const stream of streams) expect(await stream.nextTask()).toMatchObject({ kind: 'created', id: task.id });

    streams[0]!.close();
    streams[1]!.close();
    await until('the dropped streams to unsubscribe', () => hub.subscribers === 1);
    expect((await srv.setState(task.id, 'allow')).status).toBe(200);
    expect(await streams[2]!.nextTask()).toMatchObject({ kind: 'changed', id: task.id, state: 'allow', resolved: true });
  });

  test('two instances on one database: a change made through B reaches the streams of A, and the other way round', async () => {
    const s = await setupDatabase();
    const a = await startServer(s);
    const b = await startServer(s);
    const onA = await readyStream(a.base, s.cookie);
    const onB = await readyStream(b.base, s.cookie);

    const task = await b.createTask('level1');
    const created = { kind: 'created', id: task.id, schema: SCHEMA, state: 'level1', resolved: false };
    expect(await onA.nextTask()).toEqual(created);
    expect(await onB.nextTask()).toEqual(created);

    expect((await b.setState(task.id, 'deleted')).status).toBe(422); // not a state of flag-content
    expect((await b.setState(task.id, 'allow')).status).toBe(200);
    const changed = { kind: 'changed', id: task.id, schema: SCHEMA, state: 'allow', resolved: true };
    expect(await onA.nextTask()).toEqual(changed);
    expect(await onB.nextTask()).toEqual(changed);

    expect((await a.setState(task.id, 'level2')).status).toBe(200);
    expect(await onB.nextTask()).toMatchObject({ kind: 'changed', id: task.id, state: 'level2' });
    expect(await onA.nextTask()).toMatchObject({ kind: 'changed', id: task.id, state: 'level2' });
  });

  test('closing one instance does not stop the live updates of another on the same database', async () => {
    const s = await setupDatabase();
    const a = await startServer(s);
    const b = await startServer(s);
    const onA = await readyStream(a.base, s.cookie);
    await b.app.close(); // stops B's listening (on PGlite: the same instance A listens on)

    const task = await a.createTask();
    expect(await onA.nextTask()).toMatchObject({ kind: 'created', id: task.id });
  });

  test('a stream ends at the next heartbeat after its session ends; the same person\'s other stream goes on', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s, { eventHeartbeatMs: 150 });
    const { token } = await signIn(s.database, s.config, { username: 'mia', password: 'member-password-1', ip: '127.0.0.1' });
    const ending = await readyStream(srv.base, s.cookie);
    const staying = await readyStream(srv.base, `ti_session=${token}`);
    await sleep(400); // heartbeats while the session lives keep the stream open
    expect(ending.events.map((e) => e.event)).toEqual(['ready']);
    const out = await fetch(`${srv.base}/api/v1/auth/logout`, { method: 'POST', headers: { cookie: s.cookie } });
    expect(out.status).toBe(200);
    await within(3000, 'the signed-out session\'s stream to end', ending.ended);
    const task = await srv.createTask();
    expect((await staying.nextTask()).id).toBe(task.id);
  });

  test('closing the app ends open streams, and close() does not wait for them', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const streams = [await readyStream(srv.base, s.cookie), await readyStream(srv.base, s.cookie)];
    await within(3000, 'app.close() with open streams', srv.app.close());
    await within(3000, 'the streams to end', Promise.all(streams.map((x) => x.ended)));
    // Further events could not arrive any more: the stream reports its end instead of waiting.
    await expect(streams[0]!.next(1000)).rejects.toThrow(/ended/);
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(dbKind !== 'postgres')('on PostgreSQL', () => {
  test('streams hold no pool connection: with a pool of 2 and 20 open streams the API answers and every stream hears', async () => {
    const s = await setupDatabase({ poolSize: 2 });
    const srv = await startServer(s);
    const streams: EventStream[] = [];
    for (let i = 0; i < 20; i++) streams.push(await readyStream(srv.base, s.cookie));

    const pool = s.database.pool!;
    expect(pool.totalCount).toBeLessThanOrEqual(2);
    expect(pool.totalCount - pool.idleCount, 'pool connections checked out while 20 streams are open').toBe(0);

    const count = await srv.api('GET', '/api/v1/tasks/count?resolved=all');
    expect(count).toEqual({ status: 200, json: { count: 0 } });
    const task = await srv.createTask('level1');
    expect((await srv.setState(task.id, 'block')).status).toBe(200);
    for (const stream of streams) {
      expect(await stream.nextTask()).toMatchObject({ kind: 'created', id: task.id });
      expect(await stream.nextTask()).toMatchObject({ kind: 'changed', id: task.id, state: 'block' });
    }
    expect((await srv.api('GET', '/api/v1/tasks/count?resolved=all')).json).toEqual({ count: 1 });
  });

  test('each instance listens on one connection of its own, outside its pool, and lets go of it on close', async () => {
    const s = await setupDatabase({ poolSize: 2 });
    const listeners = async () =>
      (await s.database.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query = $1`, [`LISTEN ${TASK_EVENTS_CHANNEL}`]))[0]!.n;
    expect(await listeners()).toBe(0);
    const a = await startServer(s);
    const b = await startServer(s);
    await readyStream(a.base, s.cookie);
    await readyStream(b.base, s.cookie);
    expect(await listeners()).toBe(2);
    await b.app.close();
    await until('the closed instance to stop listening', async () => (await listeners()) === 1);
  });

  test('a lost listening connection is re-established and open streams are told to resync', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const stream = await readyStream(srv.base, s.cookie);
    const [killed] = await s.database.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND query = $1`,
      [`LISTEN ${TASK_EVENTS_CHANNEL}`],
    );
    expect(killed?.ok).toBe(true);
    expect(await stream.next()).toEqual({ event: 'resync', data: '{"kind":"resync"}' });
    const task = await srv.createTask();
    expect(await stream.nextTask()).toMatchObject({ kind: 'created', id: task.id });
  });
});

// ---------------------------------------------------------------------------------------------

/** One backend protocol message: type byte, length, body. */
function backendMessage(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'ascii');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

/** A NotificationResponse ('A'): sender pid, channel, payload. */
function notification(pid: number, channel: string, payload: string): Buffer {
  const pidBytes = Buffer.alloc(4);
  pidBytes.writeInt32BE(pid);
  return backendMessage('A', Buffer.concat([pidBytes, Buffer.from(`${channel}\0${payload}\0`, 'utf8')]));
}

describe('notificationsIn (embedded socket relay)', () => {
  test('finds every NotificationResponse among other messages', () => {
    const out = Buffer.concat([
      backendMessage('C', Buffer.from('SELECT 1\0')),
      notification(42, 'task_inbox_events', '{"kind":"created"}'),
      backendMessage('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x41])), // a data row that happens to hold an 'A'
      notification(7, 'other', 'été ✓'),
      backendMessage('Z', Buffer.from('I')),
    ]);
    expect(notificationsIn(out)).toEqual([
      { channel: 'task_inbox_events', payload: '{"kind":"created"}' },
      { channel: 'other', payload: 'été ✓' },
    ]);
  });

  test('an empty payload; no notification at all; a truncated last message is not read', () => {
    expect(notificationsIn(notification(1, 'c', ''))).toEqual([{ channel: 'c', payload: '' }]);
    expect(notificationsIn(Buffer.concat([backendMessage('C', Buffer.from('COMMIT\0')), backendMessage('Z', Buffer.from('I'))]))).toEqual([]);
    const whole = notification(1, 'c', 'first');
    const cut = notification(2, 'c', 'second').subarray(0, 12);
    expect(notificationsIn(Buffer.concat([whole, cut]))).toEqual([{ channel: 'c', payload: 'first' }]);
  });
});

describe.skipIf(dbKind !== 'pglite')('embedded database: CLI commands through the server socket', () => {
  /** The test database served on a Unix socket, as `serve` does, and a CLI-side connection to it. */
  async function served(s: Setup) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-live-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socket = await servePglite(s.database.pglite!, { path: path.join(dir, '.s.PGSQL.5432') });
    cleanups.push(() => socket.close());
    const connection = { host: dir, port: 5432, user: 'postgres', database: 'postgres' };
    // What a CLI command opens while the server runs (src/db/embedded.ts openEmbeddedForCli).
    const cli = openPostgres({ connection, poolSize: 1 });
    cleanups.push(() => cli.close());
    return { cli, connection };
  }

  test('a task created and changed by a CLI command reaches the streams of the running server, once each', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const { cli } = await served(s);
    const stream = await readyStream(srv.base, s.cookie);

    const { task } = await createTask(cli, { kind: 'cli' }, { schema_name: SCHEMA, task: 'flag-content', state: 'level2' });
    expect(await stream.nextTask()).toEqual({ kind: 'created', id: task.id, schema: SCHEMA, state: 'level2', resolved: false });
    await setTaskState(cli, { kind: 'cli' }, task.id, 'allow');
    expect(await stream.nextTask()).toEqual({ kind: 'changed', id: task.id, schema: SCHEMA, state: 'allow', resolved: true });

    // The next event is the server's own change: nothing above was delivered twice.
    expect((await srv.setState(task.id, 'level1')).status).toBe(200);
    expect(await stream.nextTask()).toEqual({ kind: 'changed', id: task.id, schema: SCHEMA, state: 'level1', resolved: false });
  });

  test("a CLI client's rolled-back notification is not relayed; a committed one is, after the commit", async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const { connection } = await served(s);
    const stream = await readyStream(srv.base, s.cookie);
    const event = (id: string) => JSON.stringify({ kind: 'created', id, schema: SCHEMA, state: null, resolved: false });

    const client = new pg.Client(connection);
    await client.connect();
    cleanups.push(() => client.end());
    await client.query('BEGIN');
    await client.query('SELECT pg_notify($1, $2)', [TASK_EVENTS_CHANNEL, event('00000000-0000-4000-8000-00000000000a')]);
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await client.query('SELECT pg_notify($1, $2)', [TASK_EVENTS_CHANNEL, event('00000000-0000-4000-8000-00000000000b')]);
    await sleep(200);
    expect(stream.events.filter((e) => e.event === 'task')).toEqual([]); // not before the commit
    await client.query('COMMIT');
    expect(await stream.nextTask()).toMatchObject({ id: '00000000-0000-4000-8000-00000000000b' });
  });

  // PGlite hands the backend output to the relay in chunks of at most 8192 bytes, split anywhere:
  // a notification after a message that straddles a chunk boundary must still be found.
  test('a notification that follows more than 8 KB of output in the same message is still relayed', async () => {
    const s = await setupDatabase();
    const srv = await startServer(s);
    const { connection } = await served(s);
    const stream = await readyStream(srv.base, s.cookie);
    const client = new pg.Client(connection);
    await client.connect();
    cleanups.push(() => client.end());
    const id = '00000000-0000-4000-8000-0000000000cc';
    const payload = JSON.stringify({ kind: 'created', id, schema: SCHEMA, state: null, resolved: false });
    // One simple query (no parameters): a ~8.2 KB row, then the notification at commit.
    await client.query(`SELECT pg_notify('${TASK_EVENTS_CHANNEL}', '${payload}'), repeat('x', 8150)`);
    expect(await stream.nextTask(3000)).toMatchObject({ id });
  });
});
