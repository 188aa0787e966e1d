import { PGlite } from '@electric-sql/pglite';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { servePglite, type PgliteSocketServer } from './embedded-socket.js';
import { openPostgres, wrapPglite } from './open.js';
import { withoutNamedStatements } from './named-statement.js';
import type { Database } from './database.js';

/*
 * The embedded database is one PGlite instance, which only one process may open. The process
 * that opens it holds `task-inbox.lock` in the data folder. A running server also exposes the
 * instance on a Unix socket in the data folder (mode 0600), and a CLI command started meanwhile
 * connects through it with the PostgreSQL protocol instead of opening the files a second time.
 * Each such connection has the database to itself until it disconnects (see embedded-socket.ts).
 */

interface LockInfo {
  pid: number;
  role: 'server' | 'cli';
  /** Where the server's socket listens (pg connection options). */
  socket?: { host: string; port: number };
}

const lockPath = (dataDir: string) => path.join(dataDir, 'task-inbox.lock');
const pgdataPath = (dataDir: string) => path.join(dataDir, 'pgdata');
/** pg connects to `${host}/.s.PGSQL.${port}` when host is a folder. */
const SOCKET_PORT = 5432;
const socketFile = (dataDir: string) => path.join(dataDir, `.s.PGSQL.${SOCKET_PORT}`);

/** Whether the data folder holds an embedded database (without opening or creating anything). */
export function embeddedDatabaseExists(dataDir: string): boolean {
  return existsSync(pgdataPath(dataDir));
}

export class DataDirBusy extends Error {
  constructor(dataDir: string, holder: LockInfo) {
    super(
      `The data folder ${dataDir} is in use by process ${holder.pid} (task-inbox ${holder.role === 'server' ? 'serve' : 'command'}). ` +
        (holder.role === 'server'
          ? 'Stop that server first, or run this command against it as a CLI command.'
          : 'Wait for that command to finish and try again.'),
    );
    this.name = 'DataDirBusy';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(dataDir: string): LockInfo | undefined {
  try {
    return JSON.parse(readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
  } catch {
    return undefined;
  }
}

/** The live holder of the data folder, removing a lock left by a process that died. */
function currentHolder(dataDir: string): LockInfo | undefined {
  const holder = readLock(dataDir);
  if (holder && isAlive(holder.pid) && holder.pid !== process.pid) return holder;
  if (existsSync(lockPath(dataDir))) unlinkSync(lockPath(dataDir));
  return undefined;
}

function tryLock(dataDir: string, info: LockInfo): boolean {
  try {
    const fd = openSync(lockPath(dataDir), 'wx', 0o600);
    writeSync(fd, JSON.stringify(info));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function writeLock(dataDir: string, info: LockInfo) {
  const fd = openSync(lockPath(dataDir), 'w', 0o600);
  writeSync(fd, JSON.stringify(info));
  closeSync(fd);
}

function releaseLock(dataDir: string) {
  const holder = readLock(dataDir);
  if (holder?.pid === process.pid) unlinkSync(lockPath(dataDir));
}

/**
 * PostgreSQL settings for the embedded database. PGlite runs one backend in this process, and its
 * defaults (from initdb) size shared memory for a standalone server: shared_buffers of 128 MB,
 * which PostgreSQL zeroes at start, so all of it stays resident in the WebAssembly memory. Pages
 * that miss these buffers are read through the operating system's file cache. 16 MB: the POST
 * load of bench/memory-start.ts ran as fast as at 32 MB (582-630 against 598 req/s) with a peak
 * RSS about 15 MB lower; the hot paths read through indexes, so PostgreSQL's small ring for
 * sequential scans of tables over a quarter of the buffers does not slow them. The command line
 * wins over postgresql.conf, which is left as initdb wrote it.
 */
const EMBEDDED_SETTINGS = ['shared_buffers=16MB', 'max_connections=10', 'wal_buffers=512kB', 'temp_buffers=2MB'];

/** Opens (or creates) the PGlite instance in the data folder with the settings above. */
function createPglite(dataDir: string): Promise<PGlite> {
  return PGlite.create(pgdataPath(dataDir), { startParams: [...PGlite.defaultStartParams, ...EMBEDDED_SETTINGS.flatMap((s) => ['-c', s])] });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Takes the data folder's lock, waiting up to `waitMs` for a short CLI command to let go. */
async function acquire(dataDir: string, role: LockInfo['role'], waitMs: number): Promise<LockInfo | undefined> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + waitMs;
  for (;;) {
    const holder = currentHolder(dataDir);
    if (!holder) {
      if (tryLock(dataDir, { pid: process.pid, role })) return undefined;
      continue;
    }
    if (holder.role === 'server' || Date.now() > deadline) return holder;
    await sleep(100);
  }
}

/**
 * Opens the embedded database for the server: takes the lock, opens PGlite and serves it on a
 * socket for local CLI commands. Refuses when another process holds the folder.
 */
export async function openEmbeddedForServer(dataDir: string): Promise<Database> {
  const holder = await acquire(dataDir, 'server', 10_000);
  if (holder) throw new DataDirBusy(dataDir, holder);
  let client: PGlite | undefined;
  let socketServer: PgliteSocketServer | undefined;
  try {
    client = await createPglite(dataDir);
    const file = socketFile(dataDir);
    if (existsSync(file)) unlinkSync(file);
    // Unix socket paths are limited to about 100 bytes; past that, loopback TCP on a free port.
    const useUnix = Buffer.byteLength(file) < 100;
    socketServer = await servePglite(client, useUnix ? { path: file } : { host: '127.0.0.1', port: 0 });
    let socket: LockInfo['socket'];
    if (useUnix) {
      chmodSync(file, 0o600);
      socket = { host: dataDir, port: SOCKET_PORT };
    } else {
      socket = socketServer.address as { host: string; port: number };
    }
    writeLock(dataDir, { pid: process.pid, role: 'server', socket });
  } catch (err) {
    await socketServer?.close().catch(() => {});
    await client?.close().catch(() => {});
    releaseLock(dataDir);
    throw err;
  }
  const pglite = client;
  const sockets = socketServer;
  return wrapPglite(pglite, async () => {
    await sockets.close().catch(() => {});
    await pglite.close();
    releaseLock(dataDir);
  });
}

/**
 * Opens the embedded database for a CLI command: through the running server's socket when a
 * server holds the folder, otherwise directly (holding the lock until closed).
 */
export async function openEmbeddedForCli(dataDir: string): Promise<Database> {
  const holder = await acquire(dataDir, 'cli', 30_000);
  if (holder?.role === 'server' && holder.socket) {
    const database = openPostgres({
      connection: { host: holder.socket.host, port: holder.socket.port, user: 'postgres', database: 'postgres' },
      poolSize: 1,
    });
    withoutNamedStatements(database.pool!);
    return database;
  }
  if (holder) throw new DataDirBusy(dataDir, holder);
  try {
    const client = await createPglite(dataDir);
    return wrapPglite(client, async () => {
      await client.close();
      releaseLock(dataDir);
    });
  } catch (err) {
    releaseLock(dataDir);
    throw err;
  }
}
