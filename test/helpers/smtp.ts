import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';

/** One message the test mail server accepted: the parsed mail and the SMTP envelope. */
export interface ReceivedMail {
  mail: ParsedMail;
  envelope: { from: string | null; to: string[] };
}

/**
 * A real local SMTP server (plain, no STARTTLS, any or no login) standing in for the mail relay
 * of SMTP_URL. It records every message, parsed by mailparser.
 */
export async function startSmtp() {
  const received: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((mail) => {
          const addr = (a: SMTPServerAddress | false) => (a ? a.address : null);
          received.push({ mail, envelope: { from: addr(session.envelope.mailFrom), to: session.envelope.rcptTo.map((r) => r.address) } });
          callback();
        })
        .catch((err: Error) => callback(err));
    },
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    received,
    /** Waits until at least `n` messages arrived (or fails after `ms`). */
    async waitFor(n: number, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (received.length < n) {
        if (Date.now() > deadline) throw new Error(`the mail server got ${received.length} of ${n} messages within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return received;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
export type SmtpSink = Awaited<ReturnType<typeof startSmtp>>;
