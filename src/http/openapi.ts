import { STATUS_CODES } from 'node:http';
import fastifySwagger, { type SwaggerTransform, type SwaggerTransformObject } from '@fastify/swagger';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { createJsonSchemaTransform, createJsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { $ZodType } from 'zod/v4/core';
import { nameComponentSchemas } from '../contract/components.js';
import { WebhookPayload } from '../contract/webhooks.js';
import { Problem } from '../contract/common.js';
import { version } from '../paths.js';
import type { AuthRule } from './auth.js';
import { OPERATIONS, TAGS } from './openapi-operations.js';

/*
 * The OpenAPI 3.1 document, generated from the routes as they are registered: their zod schemas
 * (through fastify-type-provider-zod's transforms), their auth rules (security), and the table of
 * names and summaries in openapi-operations.ts. Nothing in it is written by hand but the prose.
 */

type Json = Record<string, unknown>;
type Security = { [scheme: string]: string[] }[];

const API_KEY = 'apiKey';
const SESSION = 'sessionCookie';

/** Who may call an operation, from its route's auth rule. The `admin` role marks admin-only operations (OpenAPI 3.1 allows roles for non-OAuth schemes). */
const SECURITY: Record<AuthRule, Security> = {
  public: [],
  'api-key': [{ [API_KEY]: [] }],
  member: [{ [SESSION]: [] }],
  admin: [{ [SESSION]: ['admin'] }],
  'member-or-api-key': [{ [SESSION]: [] }, { [API_KEY]: [] }],
};

const SECURITY_SCHEMES = {
  [API_KEY]: {
    type: 'apiKey',
    in: 'header',
    name: 'api-key',
    description:
      'An API key for application servers (`task-inbox api_key`, or `POST /api/v1/api-keys`). It reaches only the integration routes (tasks); ' +
      'a key limited to one schema sees only that schema’s tasks. Missing: 401; unknown or revoked: 403; no key exists on the server: 501.',
  },
  [SESSION]: {
    type: 'apiKey',
    in: 'cookie',
    name: 'ti_session',
    description:
      'A signed-in person’s session, set by `POST /api/v1/auth/login` (named `__Host-ti_session` over https). Changes it authenticates must come ' +
      'from the server’s own origin. Operations that require the `admin` role refuse members with 403.',
  },
};

const PROBLEM = 'application/problem+json';

const DESCRIPTION = `A self-hosted human-in-the-loop inbox: application servers post tasks, people decide, webhooks report back.

Application servers send an API key in the \`api-key\` header; people use the session cookie that \`POST /api/v1/auth/login\` sets.
Bodies are JSON (at most 1 MiB); paths work with and without a trailing slash. Every error is an RFC 9457 problem document
(\`application/problem+json\`) whose \`type\` is \`urn:task-inbox:problem:<code>\`. The webhooks task-inbox sends to application
servers are described under \`webhooks\`.`;

/** The OpenAPI form of a Fastify path: `{id}` parameters, no trailing slash. */
export const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}').replace(/(.)\/$/, '$1');

/** A stable camelCase fallback: `POST /api/v1/tasks/{id}/cancel` → `postTasksIdCancel`. */
function derivedOperationId(method: string, path: string): string {
  const words = [method.toLowerCase(), ...path.replace(/^\/api\/v\d+/, '').split(/[^A-Za-z0-9]+/).filter(Boolean)];
  return words.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
}

const tagOf = (path: string) => TAGS.find((t) => t.prefixes.some((p) => path === p || path.startsWith(`${p}/`)))?.name;

/**
 * Each response gets its status text as description; errors are problem documents, answered as
 * `application/problem+json`. Responses already given per content type are kept as they are.
 */
function describeResponses(response: unknown): Json | undefined {
  if (!response || typeof response !== 'object') return undefined;
  return Object.fromEntries(
    Object.entries(response).map(([status, schema]) => {
      if (!(schema instanceof $ZodType)) return [status, schema];
      const type = Number(status) >= 400 ? PROBLEM : 'application/json';
      return [status, { description: STATUS_CODES[Number(status)] ?? status, content: { [type]: { schema } } }];
    }),
  );
}

const zodTransform = createJsonSchemaTransform({ skipList: [] });
const zodTransformObject = createJsonSchemaTransformObject({});

/** Turns one route into its operation: names, tags and security first, then the zod schemas into JSON Schema. */
const describeRoute: SwaggerTransform = (input) => {
  const { route } = input;
  const schema: FastifySchema = input.schema ?? {};
  if (schema.hide) return { schema: { hide: true }, url: input.url };
  const path = openApiPath(input.url);
  const method = [route.method].flat().find((m) => m !== 'HEAD') ?? 'GET';
  const text = OPERATIONS[`${method} ${path}`];
  const tag = tagOf(path);
  const rule = (route.config as { auth?: AuthRule } | undefined)?.auth;
  const described: FastifySchema = {
    ...schema,
    operationId: schema.operationId ?? text?.operationId ?? derivedOperationId(method, path),
    summary: schema.summary ?? text?.summary,
    description: schema.description ?? text?.description,
    tags: schema.tags ?? (tag ? [tag] : undefined),
    security: schema.security ?? (rule ? SECURITY[rule] : undefined),
    // Any body may be too large (413) or not JSON (415): the app refuses those before the route runs.
    response: describeResponses(schema.body ? { 413: Problem, 415: Problem, ...(schema.response as object) } : schema.response),
  };
  for (const key of Object.keys(described) as (keyof FastifySchema)[]) if (described[key] === undefined) delete described[key];
  const out = zodTransform({ ...input, schema: described } as Parameters<typeof zodTransform>[0]);
  return { schema: out.schema, url: input.url.replace(/(.)\/$/, '$1') };
};

const WEBHOOK_SUMMARIES: Record<string, string> = {
  'task.state_changed': 'A task’s state changed',
  'task.cancelled': 'The application server cancelled a task',
};

/** The events WebhookPayload can carry, read from its `event` field (a literal or an enum). */
function webhookEvents(): string[] {
  const json = z.toJSONSchema(WebhookPayload.shape.event) as { const?: string; enum?: string[] };
  return json.enum ?? (json.const === undefined ? [] : [json.const]);
}

/** What task-inbox POSTs to the application server's hook URL, one entry per event. */
function webhooks(): Json {
  const camel = (event: string) => event.replace(/[._](\w)/g, (_, c: string) => c.toUpperCase());
  const header = (name: string, required: boolean, description: string, schema: Json) => ({ in: 'header', name, required, description, schema });
  return Object.fromEntries(
    webhookEvents().map((event) => [
      event,
      {
        post: {
          operationId: `${camel(event)}Webhook`,
          summary: WEBHOOK_SUMMARIES[event] ?? `The ${event} event`,
          description:
            'POSTed as compact JSON to the hook URL of the task’s schema version (a task type’s `hook_url`, else `default_hook_url`). ' +
            'With `hook_auth.kind: head` the webhook key is sent in the header named by `hook_auth.val` (e.g. `ti-key`); with `kind: standard` ' +
            'the body is signed the Standard Webhooks way. In sync mode the change is made only if the answer is 2xx in time; in async mode ' +
            'every other answer is retried with backoff, and 410 Gone disables the endpoint. Redirects are never followed.',
          tags: ['webhooks'],
          security: [],
          parameters: [
            header('webhook-id', true, '`msg_` and 22 characters, unique per event; the same on every retry and redelivery: drop repeats.', { type: 'string', pattern: '^msg_' }),
            header('webhook-timestamp', true, 'Unix time in seconds of this attempt.', { type: 'integer' }),
            header(
              'webhook-signature',
              false,
              'With `hook_auth.kind: standard`: `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`; during a key rotation one per live key, separated by spaces.',
              { type: 'string' },
            ),
          ],
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/WebhookPayload' } } } },
          responses: {
            '2XX': { description: 'Accepted. The body is ignored.' },
            '410': { description: 'Gone: the endpoint is disabled; nothing more is sent to it until an admin re-enables it (async mode).' },
            '4XX': { description: 'Refused: in sync mode the change is not made and the person sees this answer; in async mode it is retried.' },
            '5XX': { description: 'Failed: as 4XX.' },
          },
        },
      },
    ]),
  );
}

/** Every `$ref` target under `node`. */
function refsIn(node: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const item of node) refsIn(item, into);
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') into.add(value.replace('#/components/schemas/', ''));
      else refsIn(value, into);
    }
  }
  return into;
}

/**
 * Two things zod writes into every schema that would mislead a reader: `additionalProperties:
 * false` on answers, which may gain fields (SPEC §2.4: fields are added, never removed), so
 * clients must not reject unknown ones; and the safe-integer bounds of every `.int()`.
 */
function loosen(node: unknown): void {
  if (Array.isArray(node)) for (const item of node) loosen(item);
  else if (node && typeof node === 'object') {
    const schema = node as Json;
    if (schema.additionalProperties === false) delete schema.additionalProperties;
    if (schema.type === 'integer' && schema.minimum === Number.MIN_SAFE_INTEGER && schema.maximum === Number.MAX_SAFE_INTEGER) {
      delete schema.minimum;
      delete schema.maximum;
    }
    for (const value of Object.values(schema)) loosen(value);
  }
}

const sortedKeys = <T>(obj: Record<string, T>, order: (a: string, b: string) => number = (a, b) => (a < b ? -1 : a > b ? 1 : 0)) =>
  Object.fromEntries(Object.entries(obj).sort(([a], [b]) => order(a, b)));
const METHOD_ORDER = ['get', 'put', 'post', 'patch', 'delete', 'options', 'head', 'trace'];

/**
 * Completes the document: component schemas from the zod registry (only those something refers
 * to: the registry holds an input and an output form of each), paths and components sorted so
 * the committed copy changes only where the API does.
 */
const finishDocument: SwaggerTransformObject = (input) => {
  const doc = zodTransformObject(input) as Json & { paths: Record<string, Json>; components: Json & { schemas?: Record<string, unknown> } };
  const all = doc.components.schemas ?? {};
  const used = refsIn([doc.paths, doc.webhooks]);
  for (const name of used) refsIn(all[name], used); // a Set visits what is added while iterating
  const schemas = Object.fromEntries(Object.entries(all).filter(([name]) => used.has(name)));
  const paths = Object.fromEntries(
    Object.entries(sortedKeys(doc.paths)).map(([path, item]) => [path, sortedKeys(item, (a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b))]),
  );
  const finished = { ...doc, paths, components: { ...doc.components, schemas: sortedKeys(schemas) } };
  loosen(finished);
  return finished;
};

/**
 * Registers the generator (before the routes: it collects them as they are added) and serves the
 * document at `GET /openapi.json`. Routes with `schema: { hide: true }` are left out.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  nameComponentSchemas();
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      // Relative: the API is on the server that serves the document.
      servers: [{ url: '/', description: 'This server' }],
      info: { title: 'task-inbox', version, description: DESCRIPTION, license: { name: 'MIT', identifier: 'MIT' } },
      tags: TAGS.map(({ name, description }) => ({ name, description })),
      components: { securitySchemes: SECURITY_SCHEMES as never },
      webhooks: webhooks() as never,
    },
    transform: describeRoute,
    transformObject: finishDocument,
  });
  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async (_req, reply) =>
    reply.header('cache-control', 'no-cache').type('application/json; charset=utf-8').send(app.swagger()),
  );
}

/** The document as committed in docs/openapi.json: two-space indented, with a final newline. */
export const formatOpenApiDocument = (doc: unknown) => `${JSON.stringify(doc, null, 2)}\n`;
