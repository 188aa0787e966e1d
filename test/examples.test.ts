import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { createWebhookKey, generateHeaderKey, generateStandardSecret, webhookHeaders } from '../src/core/webhooks/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { dbKind } from './helpers/db.js';
import { deadPort } from './helpers/receiver.js';

/*
 * The example receivers (examples/receiver.ts and examples/receiver.py), run for real as
 * processes, get real sync deliveries from a task-inbox app: a right key lets the change through,
 * a wrong one makes the receiver answer 401 and the person get 502. Once is enough: PGlite only.
 */

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const hasPython = python.error === undefined && python.status === 0;
if (!hasPython && dbKind === 'pglite') console.warn('\n  ⚠ python3 is not on PATH: the tests of examples/receiver.py are SKIPPED.\n');

const receivers = [
  { lang: 'Python', command: 'python3', args: ['examples/receiver.py'], skip: hasPython ? null : 'python3 is not on PATH' },
  { lang: 'TypeScript', command: process.execPath, args: ['--import', 'tsx', 'examples/receiver.ts'], skip: null },
] as const;
const kinds = ['head', 'standard'] as const;

/** A receiver process with what it printed so far. */
interface Running {
  child: ChildProcess;
  out: string;
  err: string;
  url: string;
  /** Waits until stdout matches (or fails, showing what was printed). */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  stop(): Promise<void>;
}

async function startExample(r: (typeof receivers)[number], env: Record<string, string>, port?: number): Promise<Running> {
  port ??= await deadPort();
  const child = spawn(r.command, [...r.args], {
    cwd: process.cwd(),
    env: { ...process.env, PYTHONUNBUFFERED: '1', PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const running: Running = {
    child,
    out: '',
    err: '',
    url: `http://127.0.0.1:${port}/api/v1/tihook`,
    async waitFor(re, ms = 20_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = running.out.match(re);
        if (m) return m;
        if (child.exitCode !== null) throw new Error(`${r.lang} receiver exited (${child.exitCode}); stdout:\n${running.out}\nstderr:\n${running.err}`);
        if (Date.now() > deadline) throw new Error(`${r.lang} receiver never printed ${re}; stdout:\n${running.out}\nstderr:\n${running.err}`);
        await new Promise((res) => setTimeout(res, 25));
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((res) => child.once('exit', res));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (running.out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (running.err += s));
  await running.waitFor(/listening on http/);
  return running;
}

const schemaYaml = (name: string, kind: 'head' | 'standard', url: string) => `name: '${name}'
semver: '1'
default_hook_url: ${url}
hook_auth:
  kind: ${kind}
  val: ti-key
tasktypes:
- name: flag-content
  pending_states: ['level1']
  resolved_states: ['block', 'allow']
`;

describe.skipIf(dbKind !== 'pglite')('example receivers get real deliveries', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  for (const r of receivers) {
    for (const kind of kinds) {
      const title = `${r.lang} receiver, hook_auth kind ${kind}: accepts a real sync delivery, refuses a wrong key (→ 502)`;
      test.skipIf(r.skip !== null)(r.skip ? `${title} — SKIPPED: ${r.skip}` : title, async () => {
        const schemaName = `rx:${r.lang.toLowerCase()}-${kind}`;
        const secrets = loadSecretBox(t.config);
        // The port comes first: the schema names the receiver's URL, the receiver needs the key.
        const port = await deadPort();
        const url = `http://127.0.0.1:${port}/api/v1/tihook`;
        await installSchema(t.database, schemaYaml(schemaName, kind, url));
        const { key } = await createWebhookKey(t.database, secrets, { schemaName, graceMs: 0 });
        const rx = await startExample(r, { TI_HOOK_KIND: kind, TI_HOOK_KEY: key, TI_HOOK_HEADER: 'ti-key' }, port);
        try {
          expect(rx.url).toBe(url);
          const created = await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: schemaName, task: 'flag-content' } });
          expect(created.statusCode).toBe(200);
          const taskId = created.json<{ task: { id: string } }>().task.id;

          // The right key: the receiver accepts, prints the event, and the change is made.
          const ok = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${taskId}/state?state=block` });
          expect(ok.statusCode, ok.body).toBe(200);
          expect(ok.json<{ task: { state: string; resolved: boolean } }>().task).toMatchObject({ state: 'block', resolved: true });
          const printed = await rx.waitFor(new RegExp(`task\\.state_changed ${schemaName}/flag-content task=${taskId} \\(none\\) -> block \\(resolved\\) history_id=\\d+ webhook-id=(msg_\\S+)`));
          const log = await t.call({ method: 'GET', url: `/api/v1/deliveries/?task=${taskId}` });
          const [delivery] = log.json<{ deliveries: { webhook_id: string; status: string; mode: string; last_status: number }[] }>().deliveries;
          expect(delivery).toMatchObject({ webhook_id: printed[1], status: 'delivered', mode: 'sync', last_status: 204 });

          // A key the receiver does not know (a rotation with no grace): it answers 401, the person gets 502.
          await createWebhookKey(t.database, secrets, { schemaName, graceMs: 0 });
          const refused = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${taskId}/state?state=allow` });
          expect(refused.statusCode, refused.body).toBe(502);
          const problem = refused.json<{ type: string; detail: string; receiver?: { status: number | null; body: string | null } }>();
          expect(problem.type).toBe('urn:task-inbox:problem:webhook-refused');
          expect(problem.receiver).toMatchObject({ status: 401, body: kind === 'head' ? 'wrong webhook key\n' : 'bad signature\n' });
          expect(problem.detail).toContain(`${url} answered 401`);
          expect(problem.detail).toContain(kind === 'head' ? 'wrong webhook key' : 'bad signature');
          await expect.poll(() => rx.err).toMatch(/rejected msg_\S+: /);
          const after = await t.call({ method: 'GET', url: `/api/v1/tasks/${taskId}` });
          expect(after.json<{ task: { state: string } }>().task.state).toBe('block');
          const history = await t.call({ method: 'GET', url: `/api/v1/tasks/${taskId}/history` });
          expect(history.json<{ history: unknown[] }>().history).toHaveLength(2);
          expect(rx.out.match(/task\.state_changed/g)).toHaveLength(1);
        } finally {
          await rx.stop();
        }
      });
    }
  }

  for (const r of receivers) {
    const title = `${r.lang} receiver: drops a repeated webhook-id, refuses a bad signature or a missing key`;
    test.skipIf(r.skip !== null)(r.skip ? `${title} — SKIPPED: ${r.skip}` : title, async () => {
      const secret = generateStandardSecret();
      const headKey = generateHeaderKey();
      const body = JSON.stringify({
        event: 'task.state_changed',
        task: { id: randomUUID(), state: 'allow', resolved: true },
        ttype: 'flag-content',
        type: { schema_name: 'rx:direct', name: 'flag-content', semver: '1', version: 0 },
        previous: { state: null, resolved: false },
        history_id: 7,
        editor: null,
        meta: { note: 'ünïcödé' },
      });
      const post = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', body, headers });
      const now = () => Math.floor(Date.now() / 1000);

      const std = await startExample(r, { TI_HOOK_KIND: 'standard', TI_HOOK_KEY: secret });
      const head = await startExample(r, { TI_HOOK_KIND: 'head', TI_HOOK_KEY: headKey, TI_HOOK_HEADER: 'x-ti-key' });
      try {
        // standard: signed by an old and the current key at once (a rotation) → accepted, once.
        const signed = webhookHeaders({ kind: 'standard' }, [generateStandardSecret(), secret], 'msg_direct1', now(), body);
        expect(signed['webhook-signature']!.split(' ')).toHaveLength(2);
        expect((await post(std.url, signed)).status).toBe(204);
        expect((await post(std.url, { ...signed })).status).toBe(204);
        await std.waitFor(/duplicate msg_direct1: already handled, ignored/);
        expect(std.out.match(/webhook-id=msg_direct1/g)).toHaveLength(1);
        // A signature by another key, an old timestamp, a tampered body: 401.
        expect((await post(std.url, webhookHeaders({ kind: 'standard' }, [generateStandardSecret()], 'msg_direct2', now(), body))).status).toBe(401);
        expect((await post(std.url, webhookHeaders({ kind: 'standard' }, [secret], 'msg_direct3', now() - 3600, body))).status).toBe(401);
        const tampered = webhookHeaders({ kind: 'standard' }, [secret], 'msg_direct4', now(), body.replace('allow', 'block'));
        expect((await post(std.url, tampered)).status).toBe(401);

        // head: the key in the configured header → accepted once; wrong or missing → 401.
        const withKey = webhookHeaders({ kind: 'head', val: 'x-ti-key' }, [headKey], 'msg_direct5', now(), body);
        expect(withKey['x-ti-key']).toBe(headKey);
        expect((await post(head.url, withKey)).status).toBe(204);
        expect((await post(head.url, withKey)).status).toBe(204);
        await head.waitFor(/duplicate msg_direct5/);
        expect(head.out.match(/webhook-id=msg_direct5/g)).toHaveLength(1);
        expect((await post(head.url, webhookHeaders({ kind: 'head', val: 'x-ti-key' }, ['not-the-key-at-all'], 'msg_direct6', now(), body))).status).toBe(401);
        expect((await post(head.url, webhookHeaders(null, [], 'msg_direct7', now(), body))).status).toBe(401);
      } finally {
        await Promise.all([std.stop(), head.stop()]);
      }
    });
  }
});
