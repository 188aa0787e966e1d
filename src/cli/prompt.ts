import readline from 'node:readline';
import { Writable } from 'node:stream';

/** Asks questions on standard input; answers to `secret` questions are not echoed on a terminal. */
export function createPrompter(input: NodeJS.ReadableStream, output: (s: string) => void) {
  let muted = false;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (!muted) output(chunk.toString());
      done();
    },
  });
  const rl = readline.createInterface({ input, output: sink, terminal: Boolean((input as { isTTY?: boolean }).isTTY) });
  const lines: string[] = [];
  const waiting: ((line: string | null) => void)[] = [];
  let closed = false;
  rl.on('line', (line) => (waiting.length ? waiting.shift()!(line) : lines.push(line)));
  rl.on('close', () => {
    closed = true;
    while (waiting.length) waiting.shift()!(null);
  });
  const next = () => new Promise<string | null>((resolve) => (lines.length ? resolve(lines.shift()!) : closed ? resolve(null) : waiting.push(resolve)));
  return {
    async ask(question: string, opts: { secret?: boolean } = {}): Promise<string> {
      output(question);
      muted = Boolean(opts.secret);
      const answer = await next();
      muted = false;
      if (opts.secret) output('\n');
      if (answer === null) throw new Error('standard input ended before every question was answered');
      return answer;
    },
    close: () => rl.close(),
  };
}
