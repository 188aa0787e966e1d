import { Webhook } from 'standardwebhooks';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { createWebhookKey, signStandard, verifyStandard } from '../src/core/webhooks/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { deadPort, startReceiver, type Receiver, type Received } from './helpers/receiver.js';

// Issue 3 and SPEC §2.5: sync webhooks (the default hook_mode) — signatures, header keys, the veto,
// the delivery log, and a hanging receiver slowing only its own task.

interface Task {
  id: string;
  state: string | null;
  resolved: boolean;
  [k: string]: unknown;
}
interface Delivery {
  id: number;
  webhook_id: string;
  mode: string;
  task_id: string;
  history_id: number | null;
  url: string;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
}

const SAMPLE_TYPES = `tasktypes:
- name: review
  pending_states: [open, waiting]
  resolved_states: [done, rejected]
`;

/** A schema file; `head` is YAML for the top-level hook fields. */
const schemaYaml = (name: string, head: string, types = SAMPLE_TYPES) => `name: '${name}'\nsemver: '1'\n${head}${types}`;

const receivers: Receiver[] = [];
async function receiver(respond?: Parameters<typeof startReceiver>[0]) {
  const r = await startReceiver(respond);
  receivers.push(r);
  return r;
}

function helpers(t: () => TestApp) {
  const post = async (schema: string, task = 'review', meta?: object, state?: string) => {
    const res = await t().call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: schema, task, meta, state } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().task as Task;
  };
  const patch = (id: string, state: string) => t().call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=${encodeURIComponent(state)}` });
  const getTask = async (id: string) => (await t().call({ method: 'GET', url: `/api/v1/tasks/${id}` })).json().task as Task;
  const history = async (id: string) => (await t().call({ method: 'GET', url: `/api/v1/tasks/${id}/history` })).json().history as { id: number; state: string | null }[];
  const deliveriesOf = async (id: string) => {
    const res = await t().call({ method: 'GET', url: `/api/v1/deliveries/?task=${id}` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().deliveries as Delivery[];
  };
  const attemptsOf = async (deliveryId: number) => {
    const res = await t().call({ method: 'GET', url: `/api/v1/deliveries/${deliveryId}` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().attempts as { status_code: number | null; error: string | null; latency_ms: number }[];
  };
  const newKey = (schemaName: string, key?: string) => createWebhookKey(t().database, loadSecretBox(t().config), { schemaName, key, graceMs: 0 });
  /** Checks a refused change: a 502 problem, and the task and its history exactly as before. */
  const expectRefused = async (id: string, state: string, before: Task, historyLength: number) => {
    const res = await patch(id, state);
    expect(res.statusCode, res.body).toBe(502);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = res.json();
    expect(problem).toMatchObject({ status: 502, type: expect.stringContaining('webhook-refused') });
    expect(await getTask(id)).toEqual(before);
    expect(await history(id)).toHaveLength(historyLength);
    return problem as { detail: string; status: number };
  };
  return { post, patch, getTask, history, deliveriesOf, attemptsOf, newKey, expectRefused };
}

afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
});

const has = (r: Received, name: string) => Object.prototype.hasOwnProperty.call(r.headers, name);

/** Every delivery carries webhook-id and a current webhook-timestamp, whatever the kind. */
function expectIdAndTimestamp(r: Received) {
  expect(r.headers['webhook-id']).toMatch(/^msg_[A-Za-z0-9_-]+$/);
  const ts = Number(r.headers['webhook-timestamp']);
  expect(Number.isInteger(ts)).toBe(true);
  expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(120);
}

describe('signature (unit)', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
  const body = '{"test": 2432232314}';

  test('golden vector of Standard Webhooks', () => {
    expect(signStandard(secret, id, 1614265330, body)).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  test('verifyStandard accepts the vector among several signatures and refuses tampering', () => {
    const good = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
    expect(verifyStandard([secret], id, 1614265330, body, `v1,AAAA ${good}`)).toBe(true);
    expect(verifyStandard([secret], id, 1614265331, body, good)).toBe(false);
    expect(verifyStandard([secret], id, 1614265330, '{"test": 2432232315}', good)).toBe(false);
    expect(verifyStandard(['whsec_' + Buffer.alloc(24, 1).toString('base64')], id, 1614265330, body, good)).toBe(false);
  });
});

describe('sync webhooks (WEBHOOK_TIMEOUT 1s)', () => {
  let t: TestApp;
  const h = helpers(() => t);
  beforeAll(async () => {
    t = await createTestApp({ env: { WEBHOOK_TIMEOUT: '1s' } });
  });
  afterAll(() => t.close());

  test('standard: a real delivery passes Webhook.verify of the standardwebhooks package', async () => {
    const r = await receiver();
    await installSchema(t.database, schemaYaml('std', `default_hook_url: ${r.url}\nhook_auth:\n  kind: standard\n`));
    const { key } = await h.newKey('std');
    expect(key).toMatch(/^whsec_/);
    const task = await h.post('std');
    const res = await h.patch(task.id, 'open');
    expect(res.statusCode, res.body).toBe(200);
    expect(r.received).toHaveLength(1);
    const got = r.received[0]!;
    expectIdAndTimestamp(got);
    expect(got.headers['webhook-signature']).toMatch(/^v1,/);
    const verified = new Webhook(key).verify(got.body, got.headers as Record<string, string>) as { task: Task };
    expect(verified.task).toMatchObject({ id: task.id, state: 'open' });
    // …and it really checks: another secret or another body is refused.
    expect(() => new Webhook('whsec_' + Buffer.alloc(24, 7).toString('base64')).verify(got.body, got.headers as Record<string, string>)).toThrow();
    expect(() => new Webhook(key).verify(got.body.replace('open', 'done'), got.headers as Record<string, string>)).toThrow();
  });

  describe('head', () => {
    let r: Receiver;
    let accepted = '';
    beforeAll(async () => {
      r = await receiver((req) => (req.headers['ti-key'] === accepted ? { status: 200 } : { status: 403, body: 'forbidden: ti-key does not match' }));
      await installSchema(t.database, schemaYaml('head-ok', `default_hook_url: ${r.url}\nhook_auth:\n  kind: head\n  val: ti-key\n`));
      await installSchema(t.database, schemaYaml('head-bad', `default_hook_url: ${r.url}\nhook_auth: {kind: head, val: ti-key}\n`));
      accepted = (await h.newKey('head-ok')).key;
      await h.newKey('head-bad', 'a-wrong-key-given-by-the-admin');
    });

    test('the key goes in the named header and the receiver accepts the change', async () => {
      const task = await h.post('head-ok');
      const n = r.received.length;
      const res = await h.patch(task.id, 'open');
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().task).toMatchObject({ id: task.id, state: 'open' });
      const got = r.received[n]!;
      expect(got.headers['ti-key']).toBe(accepted);
      expectIdAndTimestamp(got);
      expect(has(got, 'webhook-signature')).toBe(false);
      expect((await h.getTask(task.id)).state).toBe('open');
      expect(await h.history(task.id)).toHaveLength(2);
    });

    test("a wrong key: the receiver's 403 comes back as a 502 naming 403 and quoting its body; nothing changes", async () => {
      const task = await h.post('head-bad');
      const before = await h.getTask(task.id);
      const n = r.received.length;
      const problem = await h.expectRefused(task.id, 'open', before, 1);
      expect(r.received).toHaveLength(n + 1);
      expect(r.received[n]!.headers['ti-key']).toBe('a-wrong-key-given-by-the-admin');
      expect(problem.detail).toContain('403');
      expect(problem.detail).toContain('forbidden: ti-key does not match');
      const [d] = await h.deliveriesOf(task.id);
      expect(d).toMatchObject({ status: 'failed', last_status: 403, mode: 'sync' });
    });
  });

  describe('the veto', () => {
    test('receiver down → 502, nothing changes, the attempt is logged', async () => {
      const url = `http://127.0.0.1:${await deadPort()}/hook`;
      await installSchema(t.database, schemaYaml('down', `default_hook_url: ${url}\n`));
      const task = await h.post('down');
      const before = await h.getTask(task.id);
      const problem = await h.expectRefused(task.id, 'open', before, 1);
      expect(problem.detail).toContain(url);
      const ds = await h.deliveriesOf(task.id);
      expect(ds).toHaveLength(1);
      expect(ds[0]).toMatchObject({ status: 'failed', last_status: null, task_id: task.id, history_id: null, url });
      expect(ds[0]!.last_error).toBeTruthy();
      const attempts = await h.attemptsOf(ds[0]!.id);
      expect(attempts).toHaveLength(1);
      expect(attempts[0]).toMatchObject({ status_code: null });
      expect(attempts[0]!.error).toBeTruthy();
    });

    test('receiver answers 500 → 502 naming 500 with the first 500 bytes of its body; nothing changes', async () => {
      const r = await receiver(() => ({ status: 500, body: 'x'.repeat(500) + 'TAIL-BEYOND-500' }));
      await installSchema(t.database, schemaYaml('err500', `default_hook_url: ${r.url}\n`));
      const task = await h.post('err500');
      const before = await h.getTask(task.id);
      const problem = await h.expectRefused(task.id, 'open', before, 1);
      expect(r.received).toHaveLength(1);
      expect(problem.detail).toContain('500');
      expect(problem.detail).toContain('x'.repeat(500));
      expect(problem.detail).not.toContain('TAIL-BEYOND-500');
      expect(await h.deliveriesOf(task.id)).toMatchObject([{ status: 'failed', last_status: 500 }]);
    });

    test('a change made elsewhere while the webhook was out → 409, nothing written, and the accepted attempt stays in the log', async () => {
      let taskId = '';
      // The receiver accepts, but meanwhile the task changes behind this process's back (as another instance would).
      const r = await receiver(async () => {
        await t.database.query("UPDATE tasks SET state = 'open', updated = now() + interval '1 second' WHERE id = $1", [taskId]);
        return { status: 200 };
      });
      await installSchema(t.database, schemaYaml('raced', `default_hook_url: ${r.url}\n`));
      taskId = (await h.post('raced')).id;
      const res = await h.patch(taskId, 'done');
      expect(res.statusCode, res.body).toBe(409);
      expect(res.json().type).toBe('urn:task-inbox:problem:task-changed');
      expect((await h.getTask(taskId)).state).toBe('open');
      expect(await h.history(taskId)).toHaveLength(1);
      const [d] = await h.deliveriesOf(taskId);
      expect(d).toMatchObject({ status: 'failed', last_status: 200, history_id: null });
      expect(d!.last_error).toMatch(/accepted, but the change was not written/);
    });

    test('the quote is 500 bytes, not characters, and ends on a whole character', async () => {
      const r = await receiver(() => ({ status: 500, body: 'é'.repeat(400) }));
      await installSchema(t.database, schemaYaml('err500b', `default_hook_url: ${r.url}\n`));
      const task = await h.post('err500b');
      const before = await h.getTask(task.id);
      const problem = (await h.expectRefused(task.id, 'open', before, 1)) as unknown as { receiver: { body: string } };
      expect(problem.receiver.body).toBe('é'.repeat(250));
    });

    test('receiver times out (WEBHOOK_TIMEOUT 1s) → 502 after about 1 s; nothing changes', async () => {
      const r = await receiver(() => 'hang');
      await installSchema(t.database, schemaYaml('slow', `default_hook_url: ${r.url}\n`));
      const task = await h.post('slow');
      const before = await h.getTask(task.id);
      const started = Date.now();
      await h.expectRefused(task.id, 'open', before, 1);
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(8_000);
      const ds = await h.deliveriesOf(task.id);
      expect(ds).toMatchObject([{ status: 'failed', last_status: null }]);
      expect(ds[0]!.last_error).toBeTruthy();
    });

    test('receiver 2xx → changed, with the full payload; failed and successful attempts are all logged; same state sends nothing', async () => {
      let answer = 500;
      const r = await receiver(() => ({ status: answer, body: answer === 200 ? 'ok' : 'not now' }));
      await installSchema(t.database, schemaYaml('ok', `default_hook_url: ${r.url}\n`));
      const task = await h.post('ok', 'review', { user: 7, tags: ['a'] }, 'open');
      expect(task).toMatchObject({ state: 'open', resolved: false });

      // First a refusal, then acceptance.
      const before = await h.getTask(task.id);
      await h.expectRefused(task.id, 'done', before, 1);
      answer = 201;
      const res = await h.patch(task.id, 'done');
      expect(res.statusCode, res.body).toBe(200);
      const changed = res.json().task as Task;
      expect(changed).toMatchObject({ id: task.id, state: 'done', resolved: true });
      expect(await h.getTask(task.id)).toEqual(changed);
      const hist = await h.history(task.id);
      expect(hist).toHaveLength(2);
      expect(hist[1]!.state).toBe('done');

      expect(r.received).toHaveLength(2);
      const payload = JSON.parse(r.received[1]!.body);
      expect(payload).toEqual({
        event: 'task.state_changed',
        task: changed,
        ttype: 'review',
        type: { schema_name: 'ok', name: 'review', semver: '1', version: 0 },
        previous: { state: 'open', resolved: false },
        history_id: hist[1]!.id,
        editor: null,
        meta: { user: 7, tags: ['a'] },
      });
      expect(r.received[1]!.headers['content-type']).toMatch(/^application\/json/);

      // The delivery log has both attempts, newest first, each with its status.
      const ds = await h.deliveriesOf(task.id);
      expect(ds).toHaveLength(2);
      expect(ds[0]).toMatchObject({ status: 'delivered', last_status: 201, history_id: hist[1]!.id, mode: 'sync', attempts: 1 });
      expect(ds[1]).toMatchObject({ status: 'failed', last_status: 500, history_id: null, mode: 'sync', attempts: 1 });
      expect(ds[0]!.webhook_id).toBe(r.received[1]!.headers['webhook-id']);
      expect(ds[1]!.webhook_id).toBe(r.received[0]!.headers['webhook-id']);
      expect(ds[0]!.webhook_id).not.toBe(ds[1]!.webhook_id);
      expect(await h.attemptsOf(ds[0]!.id)).toMatchObject([{ status_code: 201, error: null }]);
      expect(await h.attemptsOf(ds[1]!.id)).toMatchObject([{ status_code: 500, response_body: 'not now' }]);

      // Setting the same state again: 200, nothing sent, nothing logged, no history.
      const again = await h.patch(task.id, 'done');
      expect(again.statusCode).toBe(200);
      expect(again.json().task).toEqual(changed);
      expect(r.received).toHaveLength(2);
      expect(await h.deliveriesOf(task.id)).toHaveLength(2);
      expect(await h.history(task.id)).toHaveLength(2);
    });
  });

  describe('setup errors and targets', () => {
    test('a hooked schema with no webhook key → 501 saying how to create one; nothing sent or changed', async () => {
      const r = await receiver();
      await installSchema(t.database, schemaYaml('nokey', `default_hook_url: ${r.url}\nhook_auth: {kind: head, val: ti-key}\n`));
      await installSchema(t.database, schemaYaml('nokey-std', `default_hook_url: ${r.url}\nhook_auth: {kind: standard}\n`));
      for (const schema of ['nokey', 'nokey-std']) {
        const task = await h.post(schema);
        const before = await h.getTask(task.id);
        const res = await h.patch(task.id, 'open');
        expect(res.statusCode, res.body).toBe(501);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.json()).toMatchObject({ status: 501, type: expect.stringContaining('webhook-key-missing') });
        expect(res.json().detail).toContain(`task-inbox webhook_key ${schema}`);
        expect(await h.getTask(task.id)).toEqual(before);
        expect(await h.history(task.id)).toHaveLength(1);
      }
      expect(r.received).toHaveLength(0);
    });

    test('no hook_auth but a default_hook_url: webhooks go out without auth headers', async () => {
      const r = await receiver();
      await installSchema(t.database, schemaYaml('noauth', `default_hook_url: ${r.url}\n`));
      const task = await h.post('noauth');
      const res = await h.patch(task.id, 'open');
      expect(res.statusCode, res.body).toBe(200);
      expect(r.received).toHaveLength(1);
      const got = r.received[0]!;
      expectIdAndTimestamp(got);
      expect(has(got, 'webhook-signature')).toBe(false);
      expect(has(got, 'ti-key')).toBe(false);
      expect(has(got, 'authorization')).toBe(false);
      expect(JSON.parse(got.body).task).toMatchObject({ id: task.id, state: 'open' });
    });

    test("a task type's hook_url overrides default_hook_url", async () => {
      const byDefault = await receiver();
      const own = await receiver();
      await installSchema(
        t.database,
        schemaYaml(
          'targets',
          `default_hook_url: ${byDefault.url}\n`,
          `tasktypes:\n- name: special\n  resolved_states: [done]\n  hook_url: ${own.url}\n- name: plain\n  resolved_states: [done]\n`,
        ),
      );
      const special = await h.post('targets', 'special');
      const plain = await h.post('targets', 'plain');
      expect((await h.patch(special.id, 'done')).statusCode).toBe(200);
      expect(own.received).toHaveLength(1);
      expect(byDefault.received).toHaveLength(0);
      expect(JSON.parse(own.received[0]!.body)).toMatchObject({ ttype: 'special', task: { id: special.id } });
      expect((await h.patch(plain.id, 'done')).statusCode).toBe(200);
      expect(byDefault.received).toHaveLength(1);
      expect(own.received).toHaveLength(1);
      expect(JSON.parse(byDefault.received[0]!.body)).toMatchObject({ ttype: 'plain', task: { id: plain.id } });
      expect((await h.deliveriesOf(special.id))[0]!.url).toBe(own.url);
    });
  });

  test('two concurrent changes of one task are serialised: the second is sent after the first was accepted', async () => {
    const r = await receiver(async () => {
      await new Promise((res) => setTimeout(res, 300));
      return { status: 200 };
    });
    await installSchema(t.database, schemaYaml('serial', `default_hook_url: ${r.url}\n`));
    const task = await h.post('serial');
    const [a, b] = await Promise.all([h.patch(task.id, 'open'), h.patch(task.id, 'waiting')]);
    expect(a.statusCode, a.body).toBe(200);
    expect(b.statusCode, b.body).toBe(200);
    expect(r.received).toHaveLength(2);
    const first = JSON.parse(r.received[0]!.body);
    const second = JSON.parse(r.received[1]!.body);
    expect(first.previous).toEqual({ state: null, resolved: false });
    expect(second.previous.state).toBe(first.task.state);
    expect(second.task.state).not.toBe(first.task.state);
    // One after the other: the second arrived only once the first had been answered.
    expect(r.received[1]!.at - r.received[0]!.at).toBeGreaterThanOrEqual(250);
    const hist = await h.history(task.id);
    expect(hist.map((x) => x.state)).toEqual([null, first.task.state, second.task.state]);
    expect((await h.getTask(task.id)).state).toBe(second.task.state);
  });
});

describe('a hanging receiver slows only its task (WEBHOOK_TIMEOUT 40s)', () => {
  let t: TestApp;
  const h = helpers(() => t);
  let base = '';
  beforeAll(async () => {
    t = await createTestApp({ env: { WEBHOOK_TIMEOUT: '40s' } });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => t.close());

  test('50 list requests, a change of an unhooked task and of another hooked task all answer while it hangs', async () => {
    let hungId = '';
    const r = await receiver((req) => (JSON.parse(req.body).task.id === hungId ? 'hang' : { status: 200 }));
    await installSchema(t.database, schemaYaml('hangs', `default_hook_url: ${r.url}\n`));
    const hung = await h.post('hangs');
    const sibling = await h.post('hangs');
    const unhooked = await h.post('acme:moderation', 'flag-content');
    hungId = hung.id;
    const before = await h.getTask(hung.id);

    const go = (method: string, path: string) => fetch(`${base}${path}`, { method, headers: { 'api-key': t.key } });
    let hungSettled = false;
    const hungPatch = go('PATCH', `/api/v1/tasks/${hung.id}/state?state=open`).finally(() => {
      hungSettled = true;
    });
    await r.waitFor(1, 10_000);

    const started = Date.now();
    const timed = async (method: string, path: string) => {
      const res = await go(method, path);
      const body = await res.text();
      return { status: res.status, body, ms: Date.now() - started, whileHung: !hungSettled };
    };
    const results = await Promise.all([
      ...Array.from({ length: 50 }, () => timed('GET', '/api/v1/tasks/')),
      timed('PATCH', `/api/v1/tasks/${unhooked.id}/state?state=level1`),
      timed('PATCH', `/api/v1/tasks/${sibling.id}/state?state=done`),
    ]);
    for (const res of results) {
      expect(res.status, res.body).toBe(200);
      expect(res.whileHung).toBe(true);
      expect(res.ms).toBeLessThan(5_000);
    }
    expect(JSON.parse(results[50]!.body).task).toMatchObject({ id: unhooked.id, state: 'level1' });
    expect(JSON.parse(results[51]!.body).task).toMatchObject({ id: sibling.id, state: 'done' });
    expect(hungSettled).toBe(false);

    // Closing the receiver ends the hung change: refused, nothing changed.
    await r.close();
    const res = await hungPatch;
    expect(res.status).toBe(502);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await h.getTask(hung.id)).toEqual(before);
    expect(await h.history(hung.id)).toHaveLength(1);
  });
});
