import { createReadStream, createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import { Readable, Writable, pipeline as pipelineCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip, createGzip } from 'node:zlib';
import { AppError } from '../errors.js';

/*
 * Export files on disk (or on standard input and output): gzip-compressed when the name ends in
 * .gz; read back whichever way they were written (gzip is recognised by its first bytes).
 */

/**
 * Writes `lines` to `file` (`-`: to `stdout`), compressed when it ends in .gz. The file appears
 * only once complete (written beside it, then renamed), readable by its owner only: it holds
 * password hashes and sealed secrets.
 */
export async function writeExportFile(file: string, lines: AsyncIterable<string>, stdout: (text: string) => void): Promise<void> {
  const source = Readable.from(lines);
  if (file === '-') {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        stdout(chunk.toString('utf8'));
        done();
      },
    });
    return pipeline(source, sink);
  }
  const partial = `${file}.partial-${process.pid}`;
  try {
    const sink = createWriteStream(partial, { flags: 'wx', mode: 0o600 });
    await (file.endsWith('.gz') ? pipeline(source, createGzip(), sink) : pipeline(source, sink));
    renameSync(partial, file);
  } catch (err) {
    rmSync(partial, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOSPC') {
      throw new AppError('bad-request', `Cannot write ${file}: ${(err as Error).message}.`);
    }
    throw err;
  }
}

/** The lines of an export file (`-`: of `stdin`), decompressed if it is gzip. Read errors become a message for people. */
export async function* readExportFile(file: string, stdin: NodeJS.ReadableStream | undefined): AsyncGenerator<string> {
  let input: NodeJS.ReadableStream;
  if (file === '-') {
    if (!stdin || (stdin as { isTTY?: boolean }).isTTY) throw new AppError('bad-request', 'Nothing to read: give a file name, or pipe the export into standard input.');
    input = stdin;
  } else {
    if (!existsSync(file)) throw new AppError('bad-request', `There is no file ${file}.`);
    input = createReadStream(file);
  }
  try {
    yield* splitLines(await decompressed(input));
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError('bad-request', `The file could not be read: ${(err as Error).message} (is it cut short or damaged?). Nothing was imported.`);
  } finally {
    (input as Readable).destroy?.();
  }
}

/** The bytes of `input`, through gunzip when they start with gzip's magic number. */
async function decompressed(input: NodeJS.ReadableStream): Promise<AsyncIterable<Buffer>> {
  const source = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  while (head.length < 2) {
    const next = await source.next();
    if (next.done) break;
    head = Buffer.concat([head, Buffer.from(next.value)]);
  }
  async function* all() {
    if (head.length > 0) yield head;
    for (let next = await source.next(); !next.done; next = await source.next()) yield Buffer.from(next.value);
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b) return all();
  // The callback form returns the last stream and destroys it with any error, which ends its reader's loop.
  return pipelineCallback(Readable.from(all()), createGunzip(), () => {});
}

async function* splitLines(bytes: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of bytes) {
    const parts = (rest + decoder.write(chunk)).split('\n');
    rest = parts.pop()!;
    yield* parts;
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}
