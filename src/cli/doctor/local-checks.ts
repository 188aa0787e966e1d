import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from '../../config.js';
import { packageRoot } from '../../paths.js';
import { fail, ok, warn, type CheckResult } from './check.js';

/*
 * Checks that need nothing but this process: the Node.js version, the configuration, and what the
 * configuration says about how people reach the server.
 */

type Version = [number, number, number];

function parseVersion(text: string): Version | undefined {
  const m = /^v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?/.exec(text.trim());
  if (!m) return undefined;
  const n = (s: string | undefined) => (s === undefined || s === 'x' || s === '*' ? 0 : Number(s));
  return [n(m[1]), n(m[2]), n(m[3])];
}

const compare = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/**
 * Whether `version` is in an npm `engines` range: `||`-separated sets of comparators
 * (`>=20.19.0`, `<23`, `^20.19.0`, `~20.19`, `20.x`). Undefined when the range is beyond this reading.
 */
export function satisfies(version: string, range: string): boolean | undefined {
  const v = parseVersion(version);
  if (!v) return undefined;
  let result: boolean | undefined = false;
  for (const set of range.split('||')) {
    let inSet = true;
    for (const comparator of set.trim().split(/\s+/).filter(Boolean)) {
      const m = /^(>=|<=|>|<|=|\^|~)?\s*(v?[\d.x*]+)$/.exec(comparator);
      const bound = m && parseVersion(m[2]!);
      if (!m || !bound) return undefined;
      const c = compare(v, bound);
      const parts = m[2]!.replace(/^v/, '').split('.').filter((p) => /^\d+$/.test(p)).length;
      const upper: Version = m[1] === '^' ? (bound[0] > 0 ? [bound[0] + 1, 0, 0] : [0, bound[1] + 1, 0]) : parts >= 2 ? [bound[0], bound[1] + 1, 0] : [bound[0] + 1, 0, 0];
      const within =
        m[1] === '>=' ? c >= 0
        : m[1] === '>' ? c > 0
        : m[1] === '<=' ? c <= 0
        : m[1] === '<' ? c < 0
        : m[1] === '^' || m[1] === '~' || parts < 3 ? c >= 0 && compare(v, upper) < 0
        : c === 0;
      inSet &&= within;
    }
    if (inSet) result = true;
  }
  return result;
}

function enginesRange(): string | undefined {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { engines?: { node?: string } };
  return pkg.engines?.node;
}

export function checkNode(version = process.versions.node, range = enginesRange()): CheckResult {
  if (!range) return ok('node', `Node.js ${version} (package.json names no required version)`);
  const fits = satisfies(version, range);
  if (fits === undefined) return warn('node', `Node.js ${version}; cannot read the required range "${range}"`, `Make sure Node.js satisfies "${range}" (package.json engines).`);
  if (!fits) {
    return fail('node', `Node.js ${version} does not satisfy ${range} (package.json engines)`, `Install a Node.js version in ${range}, e.g. the current LTS from https://nodejs.org or your package manager.`, { version, range });
  }
  return ok('node', `Node.js ${version} satisfies ${range}`, { version, range });
}

/** The configuration, or a ✗ listing every problem instead of a crash. */
export function checkConfig(env: Record<string, string | undefined> | undefined): { config?: Config; result: CheckResult } {
  try {
    const config = loadConfig(env);
    return { config, result: ok('config', 'Configuration is valid') };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { result: fail('config', `Configuration is invalid (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'})`, err.problems.join('\n'), { problems: err.problems }) };
  }
}

const isLocalHost = (host: string) => host === 'localhost' || host.endsWith('.localhost') || /^127\./.test(host) || host === '[::1]' || host === '::1';

export function checkPublicUrl(config: Config): CheckResult {
  if (!config.publicUrl) {
    return warn(
      'public-url',
      'PUBLIC_URL is not set',
      'Set PUBLIC_URL to the address people open (e.g. https://inbox.example.org). Links in emails and chat messages, the setup link ' +
        'and the check of cookie-authenticated changes use it; without it, the address of each request is used.',
    );
  }
  const url = new URL(config.publicUrl);
  if (url.protocol === 'http:' && !isLocalHost(url.hostname)) {
    return warn(
      'public-url',
      `PUBLIC_URL ${config.publicUrl} is plain http on a host other than localhost`,
      'Browsers offer web push and keep cookies safe only over https: serve the inbox through a proxy that terminates TLS and set PUBLIC_URL to its https:// address.',
    );
  }
  return ok('public-url', `PUBLIC_URL is ${config.publicUrl}`);
}

export function checkProxy(config: Config): CheckResult {
  const described = Array.isArray(config.trustProxy) ? config.trustProxy.join(',') : String(config.trustProxy);
  const https = config.publicUrl?.startsWith('https:') ?? false;
  if (config.trustProxy === false && https) {
    return warn(
      'proxy',
      'TRUST_PROXY is off while PUBLIC_URL is https',
      'Behind the proxy that terminates TLS, the server then sees plain http (so the session cookie is not marked Secure) and every ' +
        "request seems to come from the proxy's address (sign-in throttling, audit). Set TRUST_PROXY to the proxy's address or hop count " +
        '(e.g. TRUST_PROXY=loopback or TRUST_PROXY=1), then compare GET /health through the proxy.',
    );
  }
  if (config.trustProxy === true && !isLocalHost(config.host)) {
    return warn(
      'proxy',
      `TRUST_PROXY=true while listening on ${config.host}`,
      `Any client that reaches port ${config.port} directly can then claim any address and protocol in X-Forwarded-* headers. ` +
        "Set TRUST_PROXY to the proxy's address or CIDR (e.g. TRUST_PROXY=10.0.0.5) or the number of proxies in front (TRUST_PROXY=1).",
    );
  }
  return ok('proxy', config.trustProxy === false ? 'TRUST_PROXY is off (requests reach task-inbox directly)' : `TRUST_PROXY=${described}`);
}
