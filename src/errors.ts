/**
 * The error catalogue. Services throw these; the HTTP layer turns them into RFC 9457
 * problem+json (src/http/problems.ts) and the CLI prints their detail.
 */
export const errorCatalogue = {
  'bad-request': { status: 400, title: 'The request is malformed' },
  'invalid-schema-file': { status: 400, title: 'The task schema file is invalid' },
  'api-key-missing': { status: 401, title: 'An API key is required' },
  'not-signed-in': { status: 401, title: 'Sign in first' },
  'sign-in-failed': { status: 401, title: 'Wrong username or password' },
  'api-key-invalid': { status: 403, title: 'The API key is unknown or revoked' },
  'api-key-wrong-schema': { status: 403, title: 'The API key is limited to another schema' },
  forbidden: { status: 403, title: 'Not allowed' },
  'cross-site-request': { status: 403, title: 'Cross-site request refused' },
  'setup-link-invalid': { status: 403, title: 'The setup link is invalid, used or expired' },
  'not-found': { status: 404, title: 'No such resource' },
  'schema-not-found': { status: 404, title: 'No such task schema' },
  'task-type-not-found': { status: 404, title: 'No such task type in the schema' },
  'task-not-found': { status: 404, title: 'No such task' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'idempotency-in-flight': { status: 409, title: 'A request with this Idempotency-Key is still in progress' },
  'task-changed': { status: 409, title: 'The task changed meanwhile' },
  'task-cancelled': { status: 409, title: 'The task was cancelled' },
  'task-resolved': { status: 409, title: 'The task is already resolved' },
  'schema-version-exists': { status: 409, title: 'This schema version is already installed' },
  'user-exists': { status: 409, title: 'That username is taken' },
  'body-too-large': { status: 413, title: 'The request body is too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported content type' },
  'state-not-in-type': { status: 422, title: 'The state is not one of the task type’s states' },
  'idempotency-key-reused': { status: 422, title: 'The Idempotency-Key was used with a different request' },
  'too-many-requests': { status: 429, title: 'Too many requests' },
  internal: { status: 500, title: 'Internal server error' },
  'no-api-keys': { status: 501, title: 'No API key is configured on this server' },
  'webhook-key-missing': { status: 501, title: 'The schema sends webhooks but has no webhook key' },
  'not-ready': { status: 503, title: 'Not ready: the database is unreachable or not migrated' },
  'webhook-refused': { status: 502, title: 'The application server did not accept the change' },
  unavailable: { status: 503, title: 'Service unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/** The problem `type` URI of a code; stable, documented in docs/api.md (errors). */
export const problemType = (code: ErrorCode): string => `urn:task-inbox:problem:${code}`;

/** An expected failure with a code from the catalogue and a detail that tells the caller how to fix it. */
export class AppError extends Error {
  readonly status: number;
  readonly title: string;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    /** Extra members of the problem document (e.g. `errors` with positions). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = new.target.name;
    this.status = errorCatalogue[code].status;
    this.title = errorCatalogue[code].title;
  }
}

export class SchemaNotFound extends AppError {
  constructor(name: string) {
    super('schema-not-found', `No task schema named '${name}' is installed. Install it with: task-inbox taskschema FILE.yml`);
  }
}

export class TaskTypeNotFound extends AppError {
  constructor(schemaName: string, typeName: string, known: string[]) {
    super(
      'task-type-not-found',
      `The latest version of schema '${schemaName}' has no task type '${typeName}'. Its types are: ${known.join(', ') || '(none)'}.`,
    );
  }
}

export class TaskNotFound extends AppError {
  constructor(id: string) {
    super('task-not-found', `No task with id '${id}'.`);
  }
}

export class StateNotInType extends AppError {
  constructor(state: string, typeName: string, states: string[]) {
    super('state-not-in-type', `'${state}' is not a state of task type '${typeName}'. Use one of: ${states.join(', ')}, or an empty state to unset it.`);
  }
}

/** One problem in a task schema file, located by line and field path. */
export interface SchemaFileIssue {
  line: number;
  column: number;
  field: string;
  message: string;
}

export class InvalidSchemaFile extends AppError {
  constructor(readonly issues: SchemaFileIssue[], source = 'the schema file') {
    super(
      'invalid-schema-file',
      `${source} has ${issues.length === 1 ? 'an error' : `${issues.length} errors`}:\n` +
        issues.map((i) => `  line ${i.line}, ${i.field}: ${i.message}`).join('\n'),
      { errors: issues },
    );
  }
}
