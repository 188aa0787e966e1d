import nodemailer from 'nodemailer';
import { Agent, request } from 'undici';
import type { Config } from '../../config.js';
import { fail, mapLimited, messageOf, ok, redactUrl, skip, warn, type CheckResult } from './check.js';
import type { HookUse } from './doctor.repo.js';

/*
 * Checks that go over the network: the mail server of SMTP_URL, and the application servers'
 * hook URLs. Each has its own timeout; none sends anything that could act on the other side.
 */

/** Connects to SMTP_URL and says EHLO (and logs in, when the URL has credentials). */
export async function checkSmtp(config: Config, timeoutMs: number): Promise<CheckResult> {
  if (!config.smtpUrl) return skip('smtp', 'SMTP_URL is not set', 'email notifications are off; set SMTP_URL to offer them');
  const shown = redactUrl(config.smtpUrl);
  const transport = nodemailer.createTransport({ url: config.smtpUrl, connectionTimeout: timeoutMs, greetingTimeout: timeoutMs, socketTimeout: timeoutMs, dnsTimeout: timeoutMs });
  try {
    await transport.verify();
    return ok('smtp', `SMTP server ${shown} answers`);
  } catch (err) {
    return fail(
      'smtp',
      `SMTP server ${shown}: ${messageOf(err)}`,
      'Check the host, port, user and password in SMTP_URL (smtps:// for port 465, smtp:// with STARTTLS for 587), and that this machine may reach the mail server.',
      { error: messageOf(err) },
    );
  } finally {
    transport.close();
  }
}

interface ProbeResult {
  status?: number;
  location?: string;
  error?: string;
}

/** Connection-level failures: the URL is not reachable, whatever the method. */
const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

async function probe(agent: Agent, url: string, method: 'HEAD' | 'OPTIONS', timeoutMs: number): Promise<ProbeResult & { code?: string }> {
  try {
    const res = await request(url, { method, dispatcher: agent, signal: AbortSignal.timeout(timeoutMs), headersTimeout: timeoutMs, headers: { 'user-agent': 'task-inbox doctor' } });
    res.body.resume();
    const location = res.headers.location;
    return { status: res.statusCode, location: Array.isArray(location) ? location[0] : location };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT';
    if (timedOut) return { error: `no answer within ${timeoutMs / 1000} s`, code: 'TIMEOUT' };
    if (e.code === 'UND_ERR_CONNECT_TIMEOUT') return { error: `could not connect within ${timeoutMs / 1000} s`, code: e.code };
    const code = e.cause?.code ?? e.code;
    const message = e.cause?.message || e.message;
    return { error: code && !message.includes(code) ? `${code}: ${message}` : message, code };
  }
}

/**
 * Whether an application server answers at `url`: a HEAD request, any HTTP status counting as an
 * answer. A server that drops HEAD without answering gets an OPTIONS request too.
 */
async function reach(agent: Agent, url: string, timeoutMs: number): Promise<ProbeResult> {
  const head = await probe(agent, url, 'HEAD', timeoutMs);
  if (head.status !== undefined || head.code === 'TIMEOUT' || unreachableCodes.has(head.code ?? '')) return head;
  const options = await probe(agent, url, 'OPTIONS', timeoutMs);
  return options.status !== undefined ? options : head;
}

/** One line per hook URL (several schemas may share one), checked concurrently. */
export async function checkHooks(uses: HookUse[], timeoutMs: number): Promise<CheckResult[]> {
  if (uses.length === 0) return [ok('hook', 'Hook URLs: no installed schema has one (no webhooks are sent)')];
  const byUrl = new Map<string, { schemas: string[]; disabledReason: string | null }>();
  for (const use of uses) {
    const entry = byUrl.get(use.url) ?? { schemas: [], disabledReason: use.disabledReason };
    const label = `${use.schema} (semver ${use.semver})`;
    if (!entry.schemas.includes(label)) entry.schemas.push(label);
    byUrl.set(use.url, entry);
  }
  const agent = new Agent({ connect: { timeout: timeoutMs }, keepAliveTimeout: 1 });
  try {
    return await mapLimited([...byUrl], 8, async ([url, { schemas, disabledReason }]) => {
      const of = `Hook of ${schemas.join(', ')}: ${url}`;
      const data = { url, schemas };
      const answer = await reach(agent, url, timeoutMs);
      if (answer.status === undefined) {
        return fail(
          'hook',
          `${of} is not reachable: ${answer.error}`,
          'Start the application server, or check that this machine reaches it at that address (DNS, firewall, proxy). ' +
            'To send to another URL, install a new version of the schema with that default_hook_url or hook_url (`task-inbox taskschema FILE`).',
          { ...data, error: answer.error },
        );
      }
      if (disabledReason !== null) {
        return warn('hook', `${of} answers (${answer.status}), but deliveries to it are paused: ${disabledReason}`, `Once the receiver is back for good: \`task-inbox endpoints enable ${url}\`.`, {
          ...data,
          status: answer.status,
        });
      }
      if (answer.status >= 300 && answer.status < 400) {
        return warn('hook', `${of} answers with a redirect (${answer.status}${answer.location ? ` to ${answer.location}` : ''})`, 'Webhooks do not follow redirects: put the final URL in the schema.', {
          ...data,
          status: answer.status,
        });
      }
      return ok('hook', `${of} answers (HTTP ${answer.status})`, { ...data, status: answer.status });
    });
  } finally {
    await agent.destroy();
  }
}
