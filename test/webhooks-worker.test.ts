import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTask, setTaskState } from '../src/core/tasks/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { Webhooks } from '../src/core/webhooks/index.js';
import { startDeliveryWorker } from '../src/worker/delivery-worker.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

// A slow receiver holds up only its own deliveries: the worker keeps other slots busy.
let t: TestApp;
let rx: Receiver;
beforeAll(async () => {
  t = await createTestApp();
  rx = await startReceiver();
});
afterAll(async () => {
  await rx.close();
  await t.close();
});

test("a delivery that hangs does not hold up another task's delivery", async () => {
  await installSchema(t.database, `name: w\nsemver: '1'\nhook_mode: async\ndefault_hook_url: ${rx.url}\ntasktypes:\n- name: a\n  resolved_states: [done]\n`);
  const webhooks = new Webhooks({ database: t.database, config: t.config, secrets: loadSecretBox(t.config) });
  let release: () => void = () => {};
  const released = new Promise<void>((r) => (release = r));
  rx.setAnswer(async (_req, n) => {
    if (n === 1) await released; // the first delivery hangs until the second has arrived
    return { status: 200 };
  });
  const worker = startDeliveryWorker(webhooks, { pollMs: 50 });
  try {
    const slow = (await createTask(t.database, { kind: 'cli' }, { schema_name: 'w', task: 'a' })).task.id;
    await setTaskState(t.database, { kind: 'cli' }, slow, 'done', webhooks);
    await rx.waitFor(1);
    const fast = (await createTask(t.database, { kind: 'cli' }, { schema_name: 'w', task: 'a' })).task.id;
    await setTaskState(t.database, { kind: 'cli' }, fast, 'done', webhooks);
    const [, second] = await rx.waitFor(2, 5_000);
    expect(JSON.parse(second!.body).task.id).toBe(fast);
  } finally {
    release();
    await worker.stop();
  }
  const rows = await t.database.query<{ status: string; attempts: number }>('SELECT status, attempts FROM webhook_deliveries ORDER BY id');
  expect(rows).toEqual([
    { status: 'delivered', attempts: 1 },
    { status: 'delivered', attempts: 1 },
  ]);
});
