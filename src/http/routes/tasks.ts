import { metrics } from '../../core/metrics.js';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  CancelTaskBody,
  CountTasksQuery,
  CountTasksResponse,
  CreateTaskBody,
  CreateTaskResponse,
  GetTaskResponse,
  HistoryResponse,
  ListTasksQuery,
  ListTasksResponse,
  Problem,
  SetStateQuery,
  TaskIdParams,
  TaskDeliveriesResponse,
  TaskType,
  TaskResponse,
  UpdateTaskBody,
  WaitQuery,
} from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import * as tasks from '../../core/tasks/index.js';
import { apiKeyHeader, apiKeyOf, principalOf } from '../auth.js';
import { listAllTypes } from '../../core/schemas/index.js';
import { scopeOf } from '../../core/tasks/index.js';
import { listTaskDeliveries, type Webhooks } from '../../core/webhooks/index.js';
import type { TaskEventHub } from '../../core/events/task-events.js';

const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, 'must be 1–255 visible ASCII characters')
    .optional(),
});

const errors = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 422: Problem, 501: Problem };

/** `onTaskCreated` tells this process's notification worker that a new task may be due for notifying. */
export function taskRoutes(database: Database, webhooks: Webhooks, events: TaskEventHub, onTaskCreated: () => void = () => {}): FastifyPluginAsyncZod {
  return async (app) => {
    // Long polls end (answering the task as it is) when the server stops, instead of holding it up.
    const stopping = new AbortController();
    app.addHook('preClose', async () => stopping.abort());

    app.post(
      '/api/v1/tasks/',
      {
        config: { auth: 'api-key', apiKeyCheckedByRoute: true },
        schema: { body: CreateTaskBody, headers: IdempotencyHeaders, response: { 200: CreateTaskResponse, 409: Problem, ...errors } },
      },
      async (req, reply) => {
        const key = req.headers['idempotency-key'];
        if (key === undefined) {
          // The key is checked by the statement that creates the task (one round trip, not two).
          const { created, principal } = await tasks.createTaskCheckingKey(database, apiKeyHeader(req)!, req.body);
          req.principal = principal;
          onTaskCreated();
          return created;
        }
        const principal = apiKeyOf(req);
        const outcome = await tasks.createTaskIdempotent(database, principal, req.body, key);
        if (outcome.replayed) reply.header('idempotent-replayed', 'true');
        else onTaskCreated();
        return reply.code(outcome.status).send(outcome.body);
      },
    );

    app.get(
      '/api/v1/tasks/',
      {
        config: { auth: 'member-or-api-key' },
        schema: {
          querystring: ListTasksQuery.extend({ order: z.enum(['oldest', 'newest']).default('oldest') }),
          response: { 200: ListTasksResponse, ...errors },
        },
      },
      async (req) => tasks.listTasks(database, principalOf(req), req.query),
    );

    app.get(
      '/api/v1/types',
      { config: { auth: 'member-or-api-key' }, schema: { response: { 200: z.object({ types: z.array(TaskType) }), ...errors } } },
      async (req) => ({ types: await listAllTypes(database, scopeOf(principalOf(req)) ?? undefined) }),
    );

    app.get(
      '/api/v1/tasks/count',
      { config: { auth: 'member-or-api-key' }, schema: { querystring: CountTasksQuery, response: { 200: CountTasksResponse, ...errors } } },
      async (req) => ({ count: await tasks.countTasks(database, principalOf(req), req.query.resolved) }),
    );

    app.get(
      '/api/v1/tasks/:id/deliveries',
      { config: { auth: 'member-or-api-key' }, schema: { params: TaskIdParams, response: { 200: TaskDeliveriesResponse, ...errors } } },
      async (req) => {
        await tasks.getTask(database, principalOf(req), req.params.id); // 404 unless the principal may see the task
        return { deliveries: await listTaskDeliveries(database, principalOf(req), req.params.id) };
      },
    );

    app.get(
      '/api/v1/tasks/:id',
      { config: { auth: 'member-or-api-key' }, schema: { params: TaskIdParams, querystring: WaitQuery, response: { 200: GetTaskResponse, ...errors } } },
      async (req) => {
        const { wait, wait_for } = req.query;
        if (!wait) return tasks.getTask(database, principalOf(req), req.params.id);
        const gone = new AbortController();
        req.raw.once('close', () => gone.abort());
        return tasks.waitForTask(database, events, principalOf(req), req.params.id, {
          seconds: wait,
          until: wait_for,
          signal: AbortSignal.any([gone.signal, stopping.signal]),
        });
      },
    );

    app.patch(
      '/api/v1/tasks/:id',
      { config: { auth: 'api-key' }, schema: { params: TaskIdParams, body: UpdateTaskBody, response: { 200: TaskResponse, ...errors } } },
      async (req) => ({ task: (await tasks.updateTaskMeta(database, principalOf(req), req.params.id, req.body.meta)).task }),
    );

    app.post(
      '/api/v1/tasks/:id/cancel',
      { config: { auth: 'api-key' }, schema: { params: TaskIdParams, body: CancelTaskBody, response: { 200: TaskResponse, 409: Problem, ...errors } } },
      async (req) => ({ task: (await tasks.cancelTask(database, principalOf(req), req.params.id, req.body.reason, webhooks)).task }),
    );

    app.get(
      '/api/v1/tasks/:id/history',
      { config: { auth: 'member-or-api-key' }, schema: { params: TaskIdParams, response: { 200: HistoryResponse, ...errors } } },
      async (req) => ({ history: await tasks.getTaskHistory(database, principalOf(req), req.params.id) }),
    );

    app.patch(
      '/api/v1/tasks/:id/state',
      {
        config: { auth: 'member-or-api-key' },
        schema: { params: TaskIdParams, querystring: SetStateQuery, response: { 200: TaskResponse, 409: Problem, 502: Problem, ...errors } },
      },
      async (req) => {
        const state = req.query.state === undefined || req.query.state === '' ? null : req.query.state;
        const principal = principalOf(req);
        const { task, changed } = await tasks.setTaskState(database, principal, req.params.id, state, webhooks);
        if (changed) metrics.stateChanges.inc({ by: principal.kind });
        return { task };
      },
    );
  };
}
