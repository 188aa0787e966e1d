/*
 * SPEC §2.1, task schema YAML files. The acceptance point tested here, for each kind of error:
 * "A schema file with an error at line N gives a message that names line N and the field, and
 * nothing is written."
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseSchemaFile } from '../src/core/schemas/schema-file.js';
import { installSchema } from '../src/core/schemas/schemas.service.js';
import type { Database } from '../src/db/index.js';
import { AppError, InvalidSchemaFile, type SchemaFileIssue } from '../src/errors.js';
import { createTestDatabase } from './helpers/db.js';

/** The example of SPEC §2.1, comments included. */
const specExample = `name: 'acme:moderation'          # unique schema name
semver: '1'                      # version label chosen by the author; unique per schema
default_hook_url: http://localhost:5001/api/v1/tihook   # optional
hook_auth:                       # optional: how webhooks authenticate to the application server
  kind: head                     # 'head': send the webhook key in a header...
  val: ti-key                    # ...whose name is this
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  pending_states: ['level1', 'level2']     # optional, default []
  resolved_states: ['block', 'allow']
`;

let database: Database;
beforeAll(async () => {
  ({ database } = await createTestDatabase());
});
afterAll(() => database?.close());

const tables = ['task_schemas', 'schema_versions', 'task_types'] as const;
type Counts = Record<(typeof tables)[number], number>;

async function counts(): Promise<Counts> {
  const out = {} as Counts;
  for (const table of tables) {
    const rows = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    out[table] = rows[0]!.n;
  }
  return out;
}

/** Runs `fn`, which must throw; returns the error. */
async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but none was thrown');
}

/** Runs `fn`, which must throw; returns the error. */
function thrownSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but none was thrown');
}

interface Expected {
  line: number;
  field: string;
  /** Part of the issue's message. */
  message: RegExp;
  code?: 'invalid-schema-file' | 'schema-version-exists';
}

/** Checks that the error names the line and the field, in its issues and in its detail text. */
function expectNamesLineAndField(err: unknown, e: Expected): void {
  expect(err).toBeInstanceOf(AppError);
  const appError = err as AppError;
  const code = e.code ?? 'invalid-schema-file';
  expect(appError.code).toBe(code);
  expect(appError.status).toBe(code === 'invalid-schema-file' ? 400 : 409);

  const issues = (appError.extra.errors ?? []) as SchemaFileIssue[];
  if (code === 'invalid-schema-file') {
    expect(appError).toBeInstanceOf(InvalidSchemaFile);
    expect((appError as InvalidSchemaFile).issues).toEqual(issues);
  }
  expect(issues).toContainEqual(expect.objectContaining({ line: e.line, field: e.field, message: expect.stringMatching(e.message) }));

  // The text people read (CLI output, problem+json detail) says `line N` and the field on one line.
  const lineRe = new RegExp(`\\bline ${e.line}\\b`);
  expect(appError.detail).toMatch(lineRe);
  expect(appError.detail).toContain(e.field);
  const detailLines = appError.detail.split('\n');
  expect(detailLines.some((l) => lineRe.test(l) && l.includes(e.field) && e.message.test(l)), appError.detail).toBe(true);
}

/** Installing `source` must fail naming line and field, and must leave every table as it was. */
async function expectRefused(source: string, e: Expected, opts: { dryRun?: boolean } = {}): Promise<AppError> {
  const before = await counts();
  const err = await thrown(() => installSchema(database, source, { ...opts, label: 'test.yml' }));
  expectNamesLineAndField(err, e);
  expect(await counts()).toEqual(before);
  return err as AppError;
}

/** The parser alone must report the same issue (no database involved). */
function expectParseError(source: string, e: Expected): void {
  expectNamesLineAndField(thrownSync(() => parseSchemaFile(source)), e);
}

describe('a valid file', () => {
  test('the SPEC §2.1 example parses', () => {
    const { schema, warnings } = parseSchemaFile(specExample);
    expect(warnings).toEqual([]);
    expect(schema).toMatchObject({
      name: 'acme:moderation',
      semver: '1',
      defaultHookUrl: 'http://localhost:5001/api/v1/tihook',
      hookAuth: { kind: 'head', val: 'ti-key' },
      types: [
        { name: 'delete-acct', pendingStates: [], resolvedStates: ['deleted'] },
        { name: 'flag-content', pendingStates: ['level1', 'level2'], resolvedStates: ['block', 'allow'] },
      ],
      source: specExample,
      semverLine: 2,
    });
  });

  test('the SPEC §2.1 example installs as version 0 with its two types', async () => {
    const before = await counts();
    const res = await installSchema(database, specExample);
    expect(res).toMatchObject({ name: 'acme:moderation', version: 0, semver: '1', isNewSchema: true, dryRun: false, warnings: [] });
    expect(res.types.map((t) => t.name)).toEqual(['delete-acct', 'flag-content']);
    expect(await counts()).toEqual({
      task_schemas: before.task_schemas + 1,
      schema_versions: before.schema_versions + 1,
      task_types: before.task_types + 2,
    });
  });

  test('`semver: 1` (a YAML number) is accepted as the label "1"', () => {
    const { schema } = parseSchemaFile(`name: numeric
semver: 1
tasktypes:
- name: t
  resolved_states: [done]
`);
    expect(schema.semver).toBe('1');
    expect(typeof schema.semver).toBe('string');
  });

  test('a numeric semver keeps its text: 1.10 is "1.10", not "1.1"', () => {
    const file = (v: string) => `name: n\nsemver: ${v}\ntasktypes:\n- name: t\n  resolved_states: [x]\n`;
    expect(parseSchemaFile(file('1.10')).schema.semver).toBe('1.10');
    expect(parseSchemaFile(file('1.0')).schema.semver).toBe('1.0');
  });

  test('problems with a block value point at the key line, not the value line', () => {
    const warnings = parseSchemaFile("name: n\nsemver: '1'\nextra:\n  a: 1\ntasktypes:\n- name: t\n  resolved_states: [x]\n").warnings;
    expect(warnings).toEqual([expect.objectContaining({ line: 3, field: 'extra' })]);
    try {
      parseSchemaFile("name: n\nsemver: '1'\nhook_auth:\n  - head\ntasktypes:\n- name: t\n  resolved_states: [x]\n");
      expect.unreachable();
    } catch (err) {
      expect((err as InvalidSchemaFile).issues).toEqual([expect.objectContaining({ line: 3, field: 'hook_auth' })]);
    }
  });

  test('an unclosed quote or bracket is reported on the line that opened it', () => {
    const lineOf = (source: string) => {
      try {
        parseSchemaFile(source);
      } catch (err) {
        return (err as InvalidSchemaFile).issues.map((i) => [i.line, i.field]);
      }
      return [];
    };
    const rest = "- name: b\n  resolved_states: [c]\n";
    expect(lineOf(`name: x\nsemver: '1'\ntasktypes:\n- name: a\n  resolved_states: ['block, allow]\n${rest}`)).toEqual([[5, '(yaml)']]);
    expect(lineOf(`name: x\nsemver: '1'\ntasktypes:\n- name: a\n  resolved_states: [block, allow\n${rest}`)).toEqual([[5, '(yaml)']]);
  });

  test('hook_auth args is an optional free-form map', () => {
    const { schema, warnings } = parseSchemaFile(`name: with-args
semver: '1'
hook_auth:
  kind: head
  val: ti-key
  args: {anything: [1, 2], nested: {a: b}}
tasktypes:
- name: t
  resolved_states: [done]
`);
    expect(warnings).toEqual([]);
    expect(schema.hookAuth).toEqual({ kind: 'head', val: 'ti-key', args: { anything: [1, 2], nested: { a: 'b' } } });
  });

  test('an unknown field gives a warning naming its line, and the file still installs', async () => {
    const source = `name: 'warn:unknown'
semver: '1'
descripton: typo of a field nobody knows
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  colour: red
  resolved_states: ['block', 'allow']
hook_auth:
  kind: head
  val: ti-key
  extra: 1
`;
    const expected = [
      { line: 3, field: 'descripton', message: expect.stringMatching(/unknown field/) },
      { line: 8, field: 'tasktypes[1].colour', message: expect.stringMatching(/unknown field/) },
      { line: 13, field: 'hook_auth.extra', message: expect.stringMatching(/unknown field/) },
    ];
    const { warnings } = parseSchemaFile(source);
    expect(warnings).toHaveLength(3);
    for (const w of expected) expect(warnings).toContainEqual(expect.objectContaining(w));

    const res = await installSchema(database, source);
    expect(res.version).toBe(0);
    expect(res.warnings).toHaveLength(3);
    for (const w of expected) expect(res.warnings).toContainEqual(expect.objectContaining(w));
  });
});

describe('versions', () => {
  test('installing twice with different semvers creates versions 0 and 1', async () => {
    const v = (semver: string, extraType = '') => `name: 'versions:two'
semver: '${semver}'
tasktypes:
- name: a
  resolved_states: [done]
${extraType}`;
    const before = await counts();
    const first = await installSchema(database, v('1.0.0'));
    expect(first).toMatchObject({ version: 0, semver: '1.0.0', isNewSchema: true });
    const second = await installSchema(database, v('1.1.0', '- name: b\n  resolved_states: [done]\n'));
    expect(second).toMatchObject({ version: 1, semver: '1.1.0', isNewSchema: false });
    expect(await counts()).toEqual({
      task_schemas: before.task_schemas + 1,
      schema_versions: before.schema_versions + 2,
      task_types: before.task_types + 3,
    });
    const rows = await database.query<{ version: number; semver: string }>(
      `SELECT v.version, v.semver FROM schema_versions v JOIN task_schemas s ON s.id = v.schema_id
       WHERE s.name = 'versions:two' ORDER BY v.version`,
    );
    expect(rows).toEqual([
      { version: 0, semver: '1.0.0' },
      { version: 1, semver: '1.1.0' },
    ]);
  });

  test('dryRun writes nothing, for a new schema and for a new version of an existing one', async () => {
    const file = (semver: string) => `name: 'dry:run'
semver: '${semver}'
tasktypes:
- name: a
  resolved_states: [done]
`;
    let before = await counts();
    const fresh = await installSchema(database, file('1'), { dryRun: true });
    expect(fresh).toMatchObject({ name: 'dry:run', version: 0, isNewSchema: true, dryRun: true });
    expect(await counts()).toEqual(before);

    await installSchema(database, file('1'));
    before = await counts();
    const next = await installSchema(database, file('2'), { dryRun: true });
    expect(next).toMatchObject({ version: 1, isNewSchema: false, dryRun: true });
    expect(await counts()).toEqual(before);
  });
});

describe('an error at line N names line N and the field, and nothing is written', () => {
  // Every file below has its error on a known line, never line 1.
  const cases: { kind: string; source: string; expected: Expected }[] = [
    {
      kind: 'bad YAML: tab indentation',
      source: `name: 'err:yaml-tab'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
\tresolved_states: [block]
`,
      expected: { line: 7, field: '(yaml)', message: /not valid YAML: .*[Tt]ab/ },
    },
    {
      kind: 'bad YAML: the same key twice in one map',
      source: `name: 'err:yaml-dupkey'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  resolved_states: [block]
  resolved_states: [allow]
`,
      expected: { line: 8, field: '(yaml)', message: /not valid YAML: .*unique/ },
    },
    {
      kind: 'bad YAML: mapping items not aligned',
      source: `name: 'err:yaml-indent'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
   pending_states: [a]
`,
      expected: { line: 6, field: '(yaml)', message: /not valid YAML/ },
    },
    {
      kind: 'missing field: a task type without resolved_states',
      source: `name: 'err:missing'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  pending_states: ['level1']
`,
      // A missing field has no line of its own: the error points at the map that lacks it.
      expected: { line: 6, field: 'tasktypes[1].resolved_states', message: /required but missing/ },
    },
    {
      kind: 'missing field: a task type without name',
      source: `name: 'err:missing-name'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- pending_states: ['level1']
  resolved_states: ['block']
`,
      expected: { line: 6, field: 'tasktypes[1].name', message: /required but missing/ },
    },
    {
      kind: 'missing field: no semver (file starts with comments)',
      source: `# A schema file
# without a semver
name: 'err:missing-semver'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
`,
      expected: { line: 3, field: 'semver', message: /required but missing/ },
    },
    {
      kind: 'wrong type: resolved_states is a string, not a list',
      source: `name: 'err:type-list'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  pending_states: ['level1']
  resolved_states: 'block'
`,
      expected: { line: 8, field: 'tasktypes[1].resolved_states', message: /must be a list/ },
    },
    {
      kind: 'wrong type: a state that is a number',
      source: `name: 'err:type-state'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  pending_states:
  - level1
  - 42
  resolved_states: ['block']
`,
      expected: { line: 9, field: 'tasktypes[1].pending_states[1]', message: /must be a string/ },
    },
    {
      kind: 'wrong type: semver is a list',
      source: `name: 'err:type-semver'
semver: [1, 2]
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
`,
      expected: { line: 2, field: 'semver', message: /must be a string/ },
    },
    {
      kind: 'wrong type: default_hook_url is not an http URL',
      source: `name: 'err:type-url'
semver: '1'
default_hook_url: ftp://example.com/hook
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
`,
      expected: { line: 3, field: 'default_hook_url', message: /http/ },
    },
    {
      kind: 'duplicate task type name',
      source: `name: 'err:dup-type'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  resolved_states: ['block']
- name: delete-acct
  resolved_states: ['gone']
`,
      expected: { line: 8, field: 'tasktypes[2].name', message: /duplicate task type name 'delete-acct' \(first at line 4\)/ },
    },
    {
      kind: 'a state listed twice in the same list',
      source: `name: 'err:dup-state'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  resolved_states:
  - block
  - allow
  - block
`,
      expected: { line: 10, field: 'tasktypes[1].resolved_states[2]', message: /state 'block' already listed at line 8/ },
    },
    {
      kind: 'a state in both pending_states and resolved_states',
      source: `name: 'err:both-lists'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  pending_states: ['level1', 'level2']
  resolved_states:
  - block
  - level2
`,
      expected: {
        line: 10,
        field: 'tasktypes[1].resolved_states[1]',
        message: /state 'level2' already listed in pending_states at line 7/,
      },
    },
    {
      kind: 'empty task type name',
      source: `name: 'err:empty-type'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: ''
  resolved_states: ['block']
`,
      expected: { line: 6, field: 'tasktypes[1].name', message: /must not be empty/ },
    },
    {
      kind: 'empty schema name (blanks only)',
      source: `semver: '1'
name: '   '
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
`,
      expected: { line: 2, field: 'name', message: /must not be empty/ },
    },
    {
      kind: 'empty state name',
      source: `name: 'err:empty-state'
semver: '1'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted', '']
`,
      expected: { line: 5, field: 'tasktypes[0].resolved_states[1]', message: /must not be empty/ },
    },
    {
      kind: 'empty semver',
      source: `name: 'err:empty-semver'
semver: ''
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
`,
      expected: { line: 2, field: 'semver', message: /must not be empty/ },
    },
  ];

  test.each(cases)('$kind', async ({ source, expected }) => {
    expectParseError(source, expected);
    await expectRefused(source, expected);
    await expectRefused(source, expected, { dryRun: true });
  });

  test('several errors are all reported, sorted by line', () => {
    const err = thrownSync(() =>
      parseSchemaFile(`name: 'err:several'
semver: '1'
tasktypes:
- name: ''
  resolved_states: ['a', 'a']
- name: b
  resolved_states: 'x'
`),
    ) as InvalidSchemaFile;
    expect(err).toBeInstanceOf(InvalidSchemaFile);
    // Schema errors are reported first; cross-field ones (the repeated 'a') only once the shape is right.
    expect(err.issues.map((i) => [i.line, i.field])).toEqual([
      [4, 'tasktypes[0].name'],
      [7, 'tasktypes[1].resolved_states'],
    ]);
    expect(err.detail).toMatch(/has 2 errors/);
  });

  describe('an existing (name, semver) pair', () => {
    const first = `name: 'err:semver-exists'
semver: '2.0'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
`;
    // Same name and semver, different types; the semver is on line 4.
    const second = `# second file
name: 'err:semver-exists'
default_hook_url: http://localhost:5001/api/v1/tihook
semver: '2.0'
tasktypes:
- name: delete-acct
  resolved_states: ['deleted']
- name: flag-content
  resolved_states: ['block', 'allow']
`;

    test('is refused naming the semver line, and nothing is written', async () => {
      await installSchema(database, first);
      const expected: Expected = {
        line: 4,
        field: 'semver',
        message: /already has semver '2\.0' \(version 0\)/,
        code: 'schema-version-exists',
      };
      await expectRefused(second, expected);
      await expectRefused(second, expected, { dryRun: true });
      const versions = await database.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM schema_versions v JOIN task_schemas s ON s.id = v.schema_id WHERE s.name = 'err:semver-exists'`,
      );
      expect(versions[0]!.n).toBe(1);
    });

    test('`semver: 1` clashes with an installed semver \'1\'', async () => {
      await installSchema(database, `name: 'err:semver-number'\nsemver: '1'\ntasktypes:\n- name: a\n  resolved_states: [done]\n`);
      await expectRefused(`name: 'err:semver-number'\ntasktypes:\n- name: a\n  resolved_states: [done]\nsemver: 1\n`, {
        line: 5,
        field: 'semver',
        message: /already has semver '1'/,
        code: 'schema-version-exists',
      });
    });
  });
});
