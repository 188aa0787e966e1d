import type { FastifyServerOptions } from 'fastify';
import { Writable } from 'node:stream';
import type { Config } from '../config.js';

const levelNames: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const skip = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'reqId']);

/** One readable line per log record, for people at a terminal. */
function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      try {
        const rec = JSON.parse(chunk.toString()) as Record<string, unknown>;
        const time = new Date(rec.time as number).toISOString().slice(11, 19);
        const extra = Object.entries(rec)
          .filter(([k]) => !skip.has(k))
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        out.write(`${time} ${(levelNames[rec.level as number] ?? 'LOG').padEnd(5)} ${String(rec.msg ?? '')}${extra ? `  ${extra}` : ''}\n`);
      } catch {
        out.write(chunk);
      }
      done();
    },
  });
}

/** Logger options: JSON lines, or one-line text on a terminal; secrets in headers are never logged. */
export function loggerOptions(config: Config, stream?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  if (config.logLevel === 'silent') return false;
  return {
    level: config.logLevel,
    redact: { paths: ['req.headers["api-key"]', 'req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
    ...(config.logPretty ? { stream: prettyStream(stream ?? process.stdout) } : stream ? { stream } : {}),
  };
}
