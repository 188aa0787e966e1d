import type { Agent } from 'undici';

/** What came back from one POST to a receiver. */
export interface SendResult {
  ok: boolean;
  status: number | null;
  /** The answer's first bytes (up to `maxBody`). */
  body: string | null;
  /** Network error or timeout, when there was no answer. */
  error: string | null;
  latencyMs: number;
  /** From a `Retry-After` header, in ms. */
  retryAfterMs: number | null;
}

/**
 * undici and its connection pool, loaded at the first webhook: a server that sends none (or not
 * yet) starts faster and smaller without it.
 */
let client: Promise<{ agent: Agent; request: typeof import('undici').request }> | undefined;
const undici = () =>
  (client ??= import('undici').then(({ Agent, request }) => ({ agent: new Agent({ connect: { timeout: 5_000 }, keepAliveTimeout: 10_000 }), request })));

/** Loads the HTTP client now (the workers do when they start), so that the first webhook does not wait for it. */
export const loadWebhookClient = async (): Promise<void> => void (await undici());

function parseRetryAfter(value: string | string[] | undefined): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/**
 * POSTs a webhook. 2xx is success; anything else, including 3xx (redirects are not followed),
 * is a failure. Never throws.
 */
export async function postWebhook(opts: {
  url: string;
  body: string | Buffer;
  headers: Record<string, string>;
  timeoutMs: number;
  maxBody: number;
  /** Ends the request early (the server is stopping). */
  signal?: AbortSignal;
}): Promise<SendResult> {
  const { agent, request } = await undici();
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    const res = await request(opts.url, {
      method: 'POST',
      body: opts.body,
      headers: opts.headers,
      dispatcher: agent,
      signal: opts.signal ? AbortSignal.any([AbortSignal.timeout(opts.timeoutMs), opts.signal]) : AbortSignal.timeout(opts.timeoutMs),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      if (size < opts.maxBody) chunks.push(buf.subarray(0, opts.maxBody - size));
      size += buf.length;
      if (size >= opts.maxBody) break;
    }
    if (size >= opts.maxBody) res.body.destroy();
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    return {
      ok,
      status: res.statusCode,
      body: Buffer.concat(chunks).toString('utf8'),
      error: null,
      latencyMs: latency(),
      retryAfterMs: parseRetryAfter(res.headers['retry-after']),
    };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT';
    const message = opts.signal?.aborted
      ? 'the server stopped before an answer came'
      : timedOut
      ? `no answer within ${opts.timeoutMs} ms`
      : e.code === 'UND_ERR_CONNECT_TIMEOUT'
        ? 'could not connect within 5 s'
        : [e.code ?? e.cause?.code, e.cause?.message ?? e.message].filter(Boolean).join(': ');
    return { ok: false, status: null, body: null, error: message, latencyMs: latency(), retryAfterMs: null };
  }
}
