import type { PGlite } from '@electric-sql/pglite';
import net from 'node:net';

/*
 * Serves an in-process PGlite to local PostgreSQL clients (our own CLI commands), speaking the
 * wire protocol by handing each message to PGlite.
 *
 * PGlite is one database session shared by everyone. So a client takes PGlite's transaction lock
 * for each unit of work — from its first message up to a Sync or simple Query that leaves no
 * transaction open — and the server's own queries (and other clients) wait meanwhile. Nobody can
 * run inside someone else's transaction or between the steps of their extended-protocol query;
 * an idle connection holds nothing, and further connections queue instead of being refused.
 * Session settings are reset after each unit, so every unit runs with the server's settings.
 */

interface PgliteLocks {
  /** PGlite's lock around whole transactions (`query`, `exec` and `transaction` take it). */
  _runExclusiveTransaction<T>(fn: () => Promise<T>): Promise<T>;
}

const PROTOCOL_3 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

/** A simple-query protocol message. */
function simpleQuery(sql: string): Uint8Array {
  const text = Buffer.from(sql + '\0', 'utf8');
  const msg = Buffer.alloc(5 + text.length);
  msg.write('Q', 0, 'ascii');
  msg.writeInt32BE(4 + text.length, 1);
  text.copy(msg, 5);
  return msg;
}

export interface PgliteSocketServer {
  /** `{path}` for a Unix socket, or the TCP address. */
  address: { path: string } | { host: string; port: number };
  close(): Promise<void>;
}

export async function servePglite(pglite: PGlite, listen: { path: string } | { host: string; port: number }): Promise<PgliteSocketServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    void serveConnection(pglite, socket).finally(() => {
      sockets.delete(socket);
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in listen) server.listen(listen.path, resolve);
    else server.listen(listen.port, listen.host, resolve);
  });
  const addr = server.address();
  return {
    address: typeof addr === 'string' || addr === null ? { path: String(addr) } : { host: addr.address, port: addr.port },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function serveConnection(pglite: PGlite, socket: net.Socket): Promise<void> {
  let buffer = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | undefined;
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    wake?.();
  });
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  socket.on('error', () => socket.destroy());

  let started = false;
  /** The next complete message, or undefined when more bytes are needed. */
  const nextMessage = (): Buffer | undefined => {
    const headerSize = started ? 5 : 4;
    if (buffer.length < headerSize) return undefined;
    const size = started ? 1 + buffer.readInt32BE(1) : buffer.readInt32BE(0);
    if (buffer.length < size) return undefined;
    const msg = buffer.subarray(0, size);
    buffer = buffer.subarray(size);
    return msg;
  };

  const locks = pglite as unknown as PgliteLocks;
  const heard: { channel: string; payload: string }[] = [];
  let unread: Buffer = Buffer.alloc(0);
  let skip = 0;
  let release: (() => void) | undefined;
  const acquire = () =>
    new Promise<void>((held) => {
      void locks._runExclusiveTransaction(
        () =>
          new Promise<void>((done) => {
            release = done;
            held();
          }),
      );
    });

  try {
    while (!closed) {
      const msg = nextMessage();
      if (!msg) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (closed) resolve();
        });
        wake = undefined;
        continue;
      }
      let endsUnit = false;
      if (!started) {
        const code = msg.readInt32BE(4);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          socket.write('N'); // no encryption on a local socket; the client goes on in plain text
          continue;
        }
        if (code === CANCEL_REQUEST || code !== PROTOCOL_3) return;
        started = true;
        endsUnit = true;
      } else if (msg[0] === 0x58 /* 'X': Terminate */) {
        return;
      } else {
        endsUnit = msg[0] === 0x53 /* 'S': Sync */ || msg[0] === 0x51 /* 'Q': simple query */;
      }
      if (!release) await acquire();
      await pglite.runExclusive(() =>
        pglite.execProtocolRawStream(new Uint8Array(msg), {
          onRawData: (data) => {
            if (data.length === 0) return;
            const out = Buffer.from(data);
            if (socket.writable) socket.write(out);
            // Chunks split messages anywhere: read whole messages and keep a partial one for the
            // next chunk, unless it is no notification (a large row, say): that is skipped unread.
            let chunk = out;
            if (skip > 0) {
              const n = Math.min(skip, chunk.length);
              skip -= n;
              chunk = chunk.subarray(n);
            }
            unread = unread.length > 0 ? Buffer.concat([unread, chunk]) : chunk;
            const read = readNotifications(unread);
            heard.push(...read.found);
            unread = unread.subarray(read.consumed);
            if (unread.length >= 5 && unread[0] !== 0x41) {
              skip = 1 + unread.readInt32BE(1) - unread.length;
              unread = Buffer.alloc(0);
            }
          },
        }),
      );
      if (endsUnit && !pglite.isInTransaction()) {
        // Settings belong to the one session everybody shares: what a client SET (pg_dump empties
        // search_path) must not change how the server's own queries run.
        await pglite.runExclusive(() => pglite.execProtocolRawStream(simpleQuery('RESET ALL'), { onRawData: () => {} }));
        release!();
        release = undefined;
        // A notification committed by this client went to its socket only; tell the server's listeners too.
        for (const n of heard.splice(0)) await pglite.query('SELECT pg_notify($1, $2)', [n.channel, n.payload]);
      }
    }
  } finally {
    if (release) {
      // A client that vanished mid-transaction must not leave it open for the next user.
      if (pglite.isInTransaction()) {
        await pglite.runExclusive(() => pglite.execProtocolRawStream(simpleQuery('ROLLBACK'), { onRawData: () => {} }));
      }
      release();
    }
  }
}

/** The NotificationResponse ('A') messages among the whole messages at the start of `out`. */
export function notificationsIn(out: Buffer): { channel: string; payload: string }[] {
  return readNotifications(out).found;
}

/** The notifications among the whole backend messages at the start of `out`, and how many bytes those take. */
function readNotifications(out: Buffer): { found: { channel: string; payload: string }[]; consumed: number } {
  const found: { channel: string; payload: string }[] = [];
  let at = 0;
  while (at + 5 <= out.length) {
    const size = out.readInt32BE(at + 1);
    if (size < 4 || at + 1 + size > out.length) break;
    if (out[at] === 0x41 /* 'A' */) {
      const body = out.subarray(at + 9, at + 1 + size); // after type, length and the sender's pid
      const end = body.indexOf(0);
      found.push({ channel: body.subarray(0, end).toString('utf8'), payload: body.subarray(end + 1, body.indexOf(0, end + 1)).toString('utf8') });
    }
    at += 1 + size;
  }
  return { found, consumed: at };
}
