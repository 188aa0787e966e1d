/*
 * The command line (SPEC §2.6), run in-process with `runCli` against a real database (PGlite or
 * PostgreSQL, injected through `io.database`). `serve` and `migrate` as processes are covered in
 * cli-embedded.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import { loadConfig } from '../src/config.js';
import type { Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { createTestDatabase } from './helpers/db.js';

let database: Database;
let tmp: string;

beforeAll(async () => {
  ({ database } = await createTestDatabase());
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ti-cli-test-'));
});

afterAll(async () => {
  await database?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs one command line in-process against the test database. */
async function cli(args: string[], opts: { env?: Record<string, string>; database?: Database } = {}): Promise<CliRun> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    env: { LOG_LEVEL: 'silent', ...opts.env },
    database: opts.database ?? database,
  });
  return { code, out, err };
}

/** Like `cli`, but fails the test with the output when the exit code is not 0. */
async function ok(args: string[], opts: { env?: Record<string, string>; database?: Database } = {}): Promise<CliRun> {
  const r = await cli(args, opts);
  expect(r.code, `task-inbox ${args.join(' ')}\nstdout: ${r.out}\nstderr: ${r.err}`).toBe(0);
  return r;
}

let fileCount = 0;
function yamlFile(text: string): string {
  const file = path.join(tmp, `schema-${++fileCount}.yml`);
  writeFileSync(file, text);
  return file;
}

function schemaYaml(name: string, semver: string, extraType = false): string {
  return (
    `name: '${name}'\n` +
    `semver: '${semver}'\n` +
    'tasktypes:\n' +
    '- name: delete-acct\n' +
    "  resolved_states: ['deleted', 'refused']\n" +
    '- name: flag-content\n' +
    "  pending_states: ['level1', 'level2']\n" +
    "  resolved_states: ['block', 'allow']\n" +
    (extraType ? "- name: refund\n  resolved_states: ['paid']\n" : '')
  );
}

async function install(name: string, semver = '1', extraType = false) {
  await ok(['taskschema', yamlFile(schemaYaml(name, semver, extraType))]);
}

const count = async (sql: string, params: unknown[] = []) => Number((await database.query<{ n: number | string }>(sql, params))[0]!.n);
const schemaCount = (name: string) => count('SELECT count(*) AS n FROM task_schemas WHERE name = $1', [name]);
const taskCount = () => count('SELECT count(*) AS n FROM tasks');
const keyCount = () => count('SELECT count(*) AS n FROM api_keys');

/**
 * Reads an aligned table: column starts come from the header line, and each cell is the text from
 * its column's start to the next column's start. Cells read this way are only right when the
 * columns really line up.
 */
function parseTable(text: string): { headers: string[]; rows: Record<string, string>[] } {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const header = lines[0]!;
  const starts: { name: string; at: number }[] = [];
  // Header names are upper-case words, possibly two words with one space ("LAST USED").
  for (const m of header.matchAll(/[A-Z]+(?: [A-Z]+)*/g)) starts.push({ name: m[0], at: m.index });
  const rows = lines.slice(1).map((line) => {
    const row: Record<string, string> = {};
    starts.forEach((s, i) => {
      const end = i + 1 < starts.length ? starts[i + 1]!.at : undefined;
      if (s.at > 0) expect(line[s.at - 1], `a space before column ${s.name} in: ${line}`).toBe(' ');
      row[s.name] = line.slice(s.at, end).trim();
    });
    return row;
  });
  return { headers: starts.map((s) => s.name), rows };
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

describe('help', () => {
  test('-h on the program lists every command', async () => {
    for (const flag of ['-h', '--help']) {
      const r = await ok([flag]);
      expect(r.out).toMatch(/^Usage: task-inbox /);
      for (const cmd of ['serve', 'migrate', 'taskschema', 'rmschema', 'schemas', 'tasktypes', 'tasks', 'mktask', 'post-task|post_task', 'api-key|api_key']) {
        expect(r.out).toContain(`  ${cmd} `);
      }
    }
  });

  test.each([
    ['serve'],
    ['migrate'],
    ['taskschema'],
    ['rmschema'],
    ['schemas'],
    ['tasktypes'],
    ['tasks'],
    ['mktask'],
    ['post-task'],
    ['post_task'],
    ['api-key'],
    ['api_key'],
    ['api-key', 'create'],
    ['api_key', 'list'],
    ['api-key', 'revoke'],
  ])('%s … -h prints its usage and exits 0', async (...cmd) => {
    const r = await ok([...cmd, '-h']);
    const shown = cmd[0]!.replace('_', '-');
    expect(r.out).toMatch(new RegExp(`^Usage: task-inbox ${shown}`));
    expect(r.out).toContain('-h, --help');
    expect(r.err).toBe('');
  });

  test('help COMMAND works too', async () => {
    const r = await ok(['help', 'mktask']);
    expect(r.out).toContain('Usage: task-inbox mktask [options] <schema_name> <task_name>');
    expect(r.out).toContain('--meta <json>');
  });

  test('an unknown command or option is refused with exit 1', async () => {
    const a = await cli(['nosuchcommand']);
    expect(a.code).toBe(1);
    expect(a.err).toContain("unknown command 'nosuchcommand'");
    const b = await cli(['schemas', '--nosuchoption']);
    expect(b.code).toBe(1);
    expect(b.err).toContain("unknown option '--nosuchoption'");
  });
});

describe('taskschema', () => {
  test('installs a new schema, then its next version', async () => {
    const first = await ok(['taskschema', yamlFile(schemaYaml('cli:install', '1'))]);
    expect(first.out).toContain("Installed new schema 'cli:install' version 0 (semver '1') with 2 task types:");
    expect(first.out).toContain('  delete-acct: pending [], resolved [deleted, refused]');
    expect(first.out).toContain('  flag-content: pending [level1, level2], resolved [block, allow]');

    const second = await ok(['taskschema', yamlFile(schemaYaml('cli:install', '2', true))]);
    expect(second.out).toContain("Installed schema 'cli:install' version 1 (semver '2') with 3 task types:");
    expect(second.out).toContain('  refund: pending [], resolved [paid]');
    expect(await count("SELECT count(*) AS n FROM schema_versions v JOIN task_schemas s ON s.id = v.schema_id WHERE s.name = 'cli:install'")).toBe(2);
  });

  test('--json gives the result as JSON', async () => {
    const r = await ok(['taskschema', yamlFile(schemaYaml('cli:install-json', '1')), '--json']);
    const result = JSON.parse(r.out);
    expect(result).toMatchObject({ name: 'cli:install-json', version: 0, semver: '1', isNewSchema: true, dryRun: false });
    expect(result.types.map((t: { name: string }) => t.name)).toEqual(['delete-acct', 'flag-content']);
  });

  test('--dryrun says what would happen and writes nothing', async () => {
    const file = yamlFile(schemaYaml('cli:dry', '1'));
    const dry = await ok(['taskschema', file, '--dryrun']);
    expect(dry.out).toContain("Dry run: would install new schema 'cli:dry' version 0");
    expect(await schemaCount('cli:dry')).toBe(0);

    await ok(['taskschema', file]);
    const versions = () => count("SELECT count(*) AS n FROM schema_versions v JOIN task_schemas s ON s.id = v.schema_id WHERE s.name = 'cli:dry'");
    expect(await versions()).toBe(1);
    const dry2 = await ok(['taskschema', yamlFile(schemaYaml('cli:dry', '2')), '--dryrun']);
    expect(dry2.out).toContain("Dry run: would install schema 'cli:dry' version 1 (semver '2')");
    expect(await versions()).toBe(1);
  });

  test('an invalid file exits 1 with the line of the problem and writes nothing', async () => {
    const file = yamlFile(
      [
        "name: 'cli:bad'", //            line 1
        "semver: '1'", //                line 2
        'tasktypes:', //                 line 3
        '- name: delete-acct', //        line 4
        "  resolved_states: ['done']", // line 5
        '- name: flag-content', //       line 6
        '  pending_states: [a]', //      line 7: resolved_states missing from this type
      ].join('\n') + '\n',
    );
    const r = await cli(['taskschema', file]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^error: /);
    expect(r.err).toContain(file);
    expect(r.err).toMatch(/line 6, tasktypes\[1\]\.resolved_states: is required but missing/);
    expect(await schemaCount('cli:bad')).toBe(0);
  });

  test('a YAML syntax error names its line', async () => {
    const file = yamlFile("name: 'cli:bad-yaml'\nsemver: '1'\ntasktypes: [\n  - name: x\n");
    const r = await cli(['taskschema', file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/line \d+, \(yaml\): not valid YAML/);
    expect(await schemaCount('cli:bad-yaml')).toBe(0);
  });

  test('a semver already installed is refused, pointing at the semver line', async () => {
    const file = yamlFile(schemaYaml('cli:twice', '7'));
    await ok(['taskschema', file]);
    const r = await cli(['taskschema', file]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("line 2, semver: schema 'cli:twice' already has semver '7' (version 0)");
  });

  test('a missing file exits 1 and says so', async () => {
    const r = await cli(['taskschema', path.join(tmp, 'nope.yml')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('Cannot read');
    expect(r.err).toContain('ENOENT');
  });
});

describe('rmschema', () => {
  test('deletes the schema, its versions and tasks, and keeps the history rows with task_id NULL', async () => {
    await install('cli:rm', '1');
    await install('cli:rm', '2');
    const ids: string[] = [];
    for (const args of [['mktask', 'cli:rm', 'delete-acct'], ['mktask', 'cli:rm', 'flag-content', '--state', 'level1']]) {
      const r = await ok([...args, '--json']);
      ids.push(JSON.parse(r.out).task.id);
    }
    const historyIds = (await database.query<{ id: number }>('SELECT id FROM task_history WHERE task_id = ANY($1::uuid[]) ORDER BY id', [ids])).map((h) => Number(h.id));
    expect(historyIds).toHaveLength(2);

    const dry = await ok(['rmschema', 'cli:rm', '--dryrun']);
    expect(dry.out).toBe("Dry run: would delete schema 'cli:rm': 2 version(s), 2 task(s); 2 history row(s) would be kept.\n");
    expect(await schemaCount('cli:rm')).toBe(1);
    expect(await count('SELECT count(*) AS n FROM tasks WHERE id = ANY($1::uuid[])', [ids])).toBe(2);
    expect(await count('SELECT count(*) AS n FROM task_history WHERE task_id = ANY($1::uuid[])', [ids])).toBe(2);

    const r = await ok(['rmschema', 'cli:rm']);
    expect(r.out).toBe("Deleted schema 'cli:rm': 2 version(s), 2 task(s); 2 history row(s) were kept.\n");
    expect(await schemaCount('cli:rm')).toBe(0);
    expect(await count('SELECT count(*) AS n FROM tasks WHERE id = ANY($1::uuid[])', [ids])).toBe(0);
    const kept = await database.query<{ id: number; task_id: string | null; state: string | null }>(
      'SELECT id, task_id, state FROM task_history WHERE id = ANY($1::bigint[]) ORDER BY id',
      [historyIds],
    );
    expect(kept.map((h) => ({ ...h, id: Number(h.id) }))).toEqual([
      { id: historyIds[0], task_id: null, state: null },
      { id: historyIds[1], task_id: null, state: 'level1' },
    ]);
  });

  test('--json, and an unknown schema exits 1', async () => {
    await install('cli:rm-json');
    const r = await ok(['rmschema', 'cli:rm-json', '--dryrun', '--json']);
    expect(JSON.parse(r.out)).toEqual({ name: 'cli:rm-json', versions: 1, tasks: 0, historyKept: 0, dryRun: true });
    expect(await schemaCount('cli:rm-json')).toBe(1);

    const missing = await cli(['rmschema', 'cli:never-installed']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("No task schema named 'cli:never-installed'");
  });
});

describe('schemas', () => {
  test('prints an aligned table whose columns line up with the values, and --json', async () => {
    await install('cli:list-a-rather-long-schema-name', '1');
    await install('cli:list-a-rather-long-schema-name', '2.0.0-beta');
    await install('cli:ls', '1');
    await ok(['mktask', 'cli:ls', 'delete-acct']);
    await ok(['mktask', 'cli:ls', 'delete-acct', '--state', 'deleted']);

    const json = await ok(['schemas', '--json']);
    const list = JSON.parse(json.out) as Record<string, unknown>[];
    const long = list.find((s) => s.name === 'cli:list-a-rather-long-schema-name');
    const short = list.find((s) => s.name === 'cli:ls');
    expect(long).toMatchObject({ latest_version: 1, semver: '2.0.0-beta', versions: 2, tasks: 0, unresolved: 0 });
    expect(short).toMatchObject({ latest_version: 0, semver: '1', versions: 1, tasks: 2, unresolved: 1 });

    const r = await ok(['schemas']);
    const table = parseTable(r.out);
    expect(table.headers).toEqual(['NAME', 'VERSION', 'SEMVER', 'VERSIONS', 'TASKS', 'UNRESOLVED', 'CREATED']);
    expect(table.rows).toHaveLength(list.length);
    for (const s of list) {
      const row = table.rows.find((x) => x.NAME === s.name);
      expect(row, `row of ${String(s.name)} in:\n${r.out}`).toEqual({
        NAME: s.name,
        VERSION: String(s.latest_version),
        SEMVER: s.semver,
        VERSIONS: String(s.versions),
        TASKS: String(s.tasks),
        UNRESOLVED: String(s.unresolved),
        CREATED: s.created,
      });
    }
  });

  test('with no schemas: nothing on stdout, a hint on stderr, [] with --json', async () => {
    const { database: empty } = await createTestDatabase();
    try {
      const r = await ok(['schemas'], { database: empty });
      expect(r.out).toBe('');
      expect(r.err).toContain('No schemas installed');
      expect(JSON.parse((await ok(['schemas', '--json'], { database: empty })).out)).toEqual([]);
    } finally {
      await empty.close();
    }
  });
});

describe('tasktypes', () => {
  test("lists the latest version's types with their states", async () => {
    await install('cli:types', '1');
    await install('cli:types', '2', true);
    const r = await ok(['tasktypes', 'cli:types']);
    const table = parseTable(r.out);
    expect(table.headers).toEqual(['ID', 'NAME', 'VERSION', 'PENDING', 'RESOLVED']);
    expect(table.rows.map(({ ID, ...rest }) => (expect(ID).toMatch(/^\d+$/), rest))).toEqual([
      { NAME: 'delete-acct', VERSION: '1', PENDING: '-', RESOLVED: 'deleted, refused' },
      { NAME: 'flag-content', VERSION: '1', PENDING: 'level1, level2', RESOLVED: 'block, allow' },
      { NAME: 'refund', VERSION: '1', PENDING: '-', RESOLVED: 'paid' },
    ]);

    const json = JSON.parse((await ok(['tasktypes', 'cli:types', '--json'])).out) as Record<string, unknown>[];
    expect(json.map((t) => [t.name, t.version, t.pending_states, t.resolved_states])).toEqual([
      ['delete-acct', 1, [], ['deleted', 'refused']],
      ['flag-content', 1, ['level1', 'level2'], ['block', 'allow']],
      ['refund', 1, [], ['paid']],
    ]);
  });

  test('an unknown schema exits 1', async () => {
    const r = await cli(['tasktypes', 'cli:no-such-schema']);
    expect(r.code).toBe(1);
    expect(r.err).toContain("No task schema named 'cli:no-such-schema'");
  });
});

describe('mktask and tasks', () => {
  test('mktask creates a task with --meta and --state; tasks lists it', async () => {
    await install('cli:mk');
    const r = await ok(['mktask', 'cli:mk', 'flag-content', '--meta', '{"user": 42, "post": "p-1"}', '--state', 'level2']);
    const id = r.out.match(UUID)?.[0];
    expect(r.out).toBe(`Created flag-content task ${id} (state: level2).\n`);
    const [row] = await database.query<{ state: string; resolved: boolean; meta: unknown }>('SELECT state, resolved, meta FROM tasks WHERE id = $1', [id]);
    expect(row).toEqual({ state: 'level2', resolved: false, meta: { user: 42, post: 'p-1' } });
    const history = await database.query<{ state: string; update_meta: unknown; api_key_id: string | null }>(
      'SELECT state, update_meta, api_key_id FROM task_history WHERE task_id = $1',
      [id],
    );
    expect(history).toEqual([{ state: 'level2', update_meta: { user: 42, post: 'p-1' }, api_key_id: null }]);

    const resolved = JSON.parse((await ok(['mktask', 'cli:mk', 'delete-acct', '--state', 'deleted', '--json'])).out);
    expect(resolved).toMatchObject({ ttype: 'delete-acct', task: { state: 'deleted', resolved: true } });

    const none = await ok(['mktask', 'cli:mk', 'delete-acct']);
    expect(none.out).toMatch(/^Created delete-acct task [0-9a-f-]{36} \(state: none\)\.\n$/);
    const empty = await ok(['mktask', 'cli:mk', 'delete-acct', '--state', '']);
    expect(empty.out).toMatch(/\(state: none\)\.\n$/);
  });

  test('bad --meta JSON exits 1 and writes nothing', async () => {
    await install('cli:mk-bad');
    const before = await taskCount();
    const r = await cli(['mktask', 'cli:mk-bad', 'delete-acct', '--meta', '{user: 42']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain('--meta must be JSON');

    const array = await cli(['mktask', 'cli:mk-bad', 'delete-acct', '--meta', '[1, 2]']);
    expect(array.code).toBe(1);
    expect(array.err).toContain('--meta must be a JSON object');
    expect(await taskCount()).toBe(before);
  });

  test('an unknown state, type or schema exits 1 and writes nothing', async () => {
    await install('cli:mk-refuse');
    const before = await taskCount();
    const state = await cli(['mktask', 'cli:mk-refuse', 'flag-content', '--state', 'level9']);
    expect(state.code).toBe(1);
    expect(state.err).toContain("'level9' is not a state of task type 'flag-content'");
    const type = await cli(['mktask', 'cli:mk-refuse', 'nope']);
    expect(type.code).toBe(1);
    expect(type.err).toContain("has no task type 'nope'. Its types are: delete-acct, flag-content.");
    const schema = await cli(['mktask', 'cli:mk-missing', 'delete-acct']);
    expect(schema.code).toBe(1);
    expect(schema.err).toContain("No task schema named 'cli:mk-missing'");
    expect(await taskCount()).toBe(before);
  });

  test('tasks lists the tasks of a type across all versions of its schema', async () => {
    await install('cli:across', '1');
    const v0 = JSON.parse((await ok(['mktask', 'cli:across', 'delete-acct', '--meta', '{"n": 1}', '--json'])).out).task.id;
    await install('cli:across', '2', true);
    const v1 = JSON.parse((await ok(['mktask', 'cli:across', 'delete-acct', '--state', 'refused', '--json'])).out).task.id;
    await ok(['mktask', 'cli:across', 'refund']); // another type: not listed

    const json = JSON.parse((await ok(['tasks', 'cli:across', 'delete-acct', '--json'])).out) as Record<string, unknown>[];
    expect(json.map((t) => [t.id, t.version, t.state, t.resolved])).toEqual([
      [v0, 0, null, false],
      [v1, 1, 'refused', true],
    ]);

    const r = await ok(['tasks', 'cli:across', 'delete-acct']);
    const table = parseTable(r.out);
    expect(table.headers).toEqual(['ID', 'CREATED', 'VERSION', 'STATE', 'RESOLVED', 'META']);
    expect(table.rows.map((x) => [x.ID, x.VERSION, x.STATE, x.RESOLVED, x.META])).toEqual([
      [v0, '0', '-', 'false', '{"n":1}'],
      [v1, '1', 'refused', 'true', '-'],
    ]);
  });

  test('tasks: no tasks, unknown type, unknown schema', async () => {
    await install('cli:empty-type');
    const none = await ok(['tasks', 'cli:empty-type', 'flag-content']);
    expect(none.out).toBe('');
    expect(none.err).toContain("No tasks of type 'flag-content' in schema 'cli:empty-type'.");
    const type = await cli(['tasks', 'cli:empty-type', 'nope']);
    expect(type.code).toBe(1);
    expect(type.err).toContain("No version of schema 'cli:empty-type' has a task type 'nope'.");
    const schema = await cli(['tasks', 'cli:no-such', 'delete-acct']);
    expect(schema.code).toBe(1);
    expect(schema.err).toContain("No task schema named 'cli:no-such'");
  });
});

describe('API keys', () => {
  test('api_key prints a new key once on stdout and stores only its hash', async () => {
    await install('cli:keys');
    const r = await ok(['api_key', '--name', 'cli-key-1', '--schema_name', 'cli:keys', '--keylen', '16']);
    expect(r.out).toMatch(/^ti_[A-Za-z0-9_-]{22}\n$/); // 16 bytes → 22 base64url characters
    const key = r.out.trim();
    expect(r.out.split(key)).toHaveLength(2); // once
    expect(r.err).not.toContain(key);
    expect(r.err).toContain("'cli-key-1' for schema 'cli:keys'");
    expect(r.err).toContain('cannot be shown again');

    const rows = await database.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE name = $1', ['cli-key-1']);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ schema_name: 'cli:keys', prefix: key.slice(0, 9), key_hash: createHash('sha256').update(key).digest('hex') });
    expect(JSON.stringify(rows[0])).not.toContain(key);
  });

  test('api_key without options makes a 24-byte key with no schema limit', async () => {
    const r = await ok(['api_key']);
    expect(r.out).toMatch(/^ti_[A-Za-z0-9_-]{32}\n$/);
  });

  test('--keylen below 16, not a number, or an unknown schema is refused and writes nothing', async () => {
    const before = await keyCount();
    const short = await cli(['api_key', '--name', 'too-short', '--keylen', '8']);
    expect(short.code).toBe(1);
    expect(short.out).toBe('');
    expect(short.err).toContain('from 16');
    const nan = await cli(['api_key', '--keylen', 'lots']);
    expect(nan.code).toBe(1);
    expect(nan.err).toContain("--keylen must be a whole number, not 'lots'");
    expect((await cli(['api_key', '--keylen', '0x10'])).code).toBe(1);
    const schema = await cli(['api_key', '--schema_name', 'cli:no-such-schema']);
    expect(schema.code).toBe(1);
    expect(schema.err).toContain("No task schema named 'cli:no-such-schema'");
    expect(await keyCount()).toBe(before);
  });

  test('api-key list shows prefixes and never the keys', async () => {
    const key = (await ok(['api-key', 'create', '--name', 'cli-listed'])).out.trim();
    const r = await ok(['api-key', 'list']);
    expect(r.out).not.toContain(key);
    const table = parseTable(r.out);
    expect(table.headers).toEqual(['ID', 'NAME', 'PREFIX', 'SCHEMA', 'CREATED', 'LAST USED', 'REVOKED']);
    const row = table.rows.find((x) => x.NAME === 'cli-listed');
    expect(row).toMatchObject({ PREFIX: key.slice(0, 9), SCHEMA: '-', 'LAST USED': '-', REVOKED: '-' });
    expect(row!.ID).toMatch(UUID);

    const json = await ok(['api_key', 'list', '--json']);
    expect(json.out).not.toContain(key);
    expect(json.out).not.toContain(createHash('sha256').update(key).digest('hex'));
    const listed = (JSON.parse(json.out) as Record<string, unknown>[]).find((k) => k.name === 'cli-listed');
    expect(listed).toMatchObject({ prefix: key.slice(0, 9), schema_name: null, revoked: null });
    expect(Object.keys(listed!).sort()).toEqual(['created', 'id', 'last_used', 'name', 'prefix', 'revoked', 'schema_name']);
  });

  test('api-key revoke by name, prefix or id; the key then stops working', async () => {
    const app = await buildApp({ config: loadConfig({ LOG_LEVEL: 'silent' }, { stdoutIsTty: false }), database });
    try {
      const tasksWith = (k: string) => app.inject({ method: 'GET', url: '/api/v1/tasks/', headers: { 'api-key': k } });
      const byName = (await ok(['api_key', '--name', 'cli-revoke-me'])).out.trim();
      expect((await tasksWith(byName)).statusCode).toBe(200);
      const r = await ok(['api-key', 'revoke', 'cli-revoke-me']);
      expect(r.out).toMatch(new RegExp(`^Revoked API key ${UUID.source} 'cli-revoke-me' \\(${byName.slice(0, 9)}…\\)\\.\\n$`));
      expect((await tasksWith(byName)).statusCode).toBe(403);

      const byPrefix = (await ok(['api_key', '--name', 'cli-revoke-prefix'])).out.trim();
      const p = await ok(['api_key', 'revoke', byPrefix.slice(0, 9), '--json']);
      expect(JSON.parse(p.out)).toMatchObject({ name: 'cli-revoke-prefix', prefix: byPrefix.slice(0, 9) });
      expect(JSON.parse(p.out).revoked).toEqual(expect.any(String));

      const byId = JSON.parse((await ok(['api_key', '--name', 'cli-revoke-id', '--json'])).out) as { id: string; key: string };
      await ok(['api-key', 'revoke', byId.id]);
      expect((await tasksWith(byId.key)).statusCode).toBe(403);

      const list = JSON.parse((await ok(['api-key', 'list', '--json'])).out) as { name: string; revoked: string | null }[];
      for (const name of ['cli-revoke-me', 'cli-revoke-prefix', 'cli-revoke-id']) expect(list.find((k) => k.name === name)!.revoked).not.toBeNull();
    } finally {
      await app.close();
    }
  });

  test('api-key revoke of an unknown or ambiguous reference exits 1', async () => {
    const unknown = await cli(['api-key', 'revoke', 'no-such-key']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain("No API key with id, name or prefix 'no-such-key'");
    await ok(['api_key', '--name', 'cli-dup']);
    await ok(['api_key', '--name', 'cli-dup']);
    const dup = await cli(['api-key', 'revoke', 'cli-dup']);
    expect(dup.code).toBe(1);
    expect(dup.err).toContain("'cli-dup' matches 2 keys");
  });

  test('api_key --json includes the key, once', async () => {
    const r = await ok(['api-key', '--name', 'cli-json', '--json']);
    const created = JSON.parse(r.out);
    expect(created).toMatchObject({ name: 'cli-json', schema_name: null, revoked: null });
    expect(created.key).toMatch(/^ti_/);
    expect(created.prefix).toBe(created.key.slice(0, 9));
  });
});

describe('post_task against a listening server', () => {
  let app: FastifyInstance;
  let host: string;
  let key: string;

  beforeAll(async () => {
    app = await buildApp({ config: loadConfig({ LOG_LEVEL: 'silent' }, { stdoutIsTty: false }), database });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    host = `http://127.0.0.1:${address.port}`;
    await install('cli:post');
    key = (await ok(['api_key', '--name', 'cli-poster', '--schema_name', 'cli:post'])).out.trim();
  });
  afterAll(() => app?.close());

  test('post_task creates a task over HTTP with the key from --key_var', async () => {
    const r = await ok(['post_task', '--host', host, '--schema_name', 'cli:post', '--task_name', 'flag-content', '--key_var', 'MY_KEY', '--state', 'level1', '--meta', '{"post": 7}'], {
      env: { MY_KEY: key },
    });
    const id = r.out.match(UUID)?.[0];
    expect(r.out).toBe(`Created flag-content task ${id} (state: level1).\n`);
    const [row] = await database.query<{ state: string; meta: unknown }>('SELECT state, meta FROM tasks WHERE id = $1', [id]);
    expect(row).toEqual({ state: 'level1', meta: { post: 7 } });
    // Made by the key, not by the CLI directly.
    const [history] = await database.query<{ name: string }>('SELECT k.name FROM task_history h JOIN api_keys k ON k.id = h.api_key_id WHERE h.task_id = $1', [id]);
    expect(history?.name).toBe('cli-poster');
  });

  test('post-task with dash spellings, --json, and a trailing slash on --host', async () => {
    const r = await ok(['post-task', '--host', `${host}/`, '--schema-name', 'cli:post', '--task-name', 'delete-acct', '--key-var', 'OTHER_VAR', '--json'], {
      env: { OTHER_VAR: key },
    });
    const answer = JSON.parse(r.out);
    expect(answer).toMatchObject({ ttype: 'delete-acct', task: { state: null, resolved: false } });
    expect(await count('SELECT count(*) AS n FROM tasks WHERE id = $1', [answer.task.id])).toBe(1);
  });

  test('--schema_name=S and --key_var=VAR forms are accepted too', async () => {
    const r = await ok(['post_task', `--host=${host}`, '--schema_name=cli:post', '--task_name=delete-acct', '--key_var=EQ_KEY'], { env: { EQ_KEY: key } });
    expect(r.out).toMatch(/^Created delete-acct task /);
  });

  test('an empty key variable, a wrong key, a refused body, or no server: exit 1 with the reason', async () => {
    const before = await taskCount();
    const empty = await cli(['post_task', '--host', host, '--schema_name', 'cli:post', '--key_var', 'UNSET_VAR']);
    expect(empty.code).toBe(1);
    expect(empty.err).toContain('Environment variable UNSET_VAR is empty');

    const wrong = await cli(['post_task', '--host', host, '--schema_name', 'cli:post', '--key_var', 'K'], { env: { K: 'ti_not-a-real-key' } });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('The server answered 403: This API key is not known to the server');

    const type = await cli(['post_task', '--host', host, '--schema_name', 'cli:post', '--task_name', 'nope', '--key_var', 'K'], { env: { K: key } });
    expect(type.code).toBe(1);
    expect(type.err).toContain("The server answered 404: The latest version of schema 'cli:post' has no task type 'nope'");

    const otherSchema = await cli(['post_task', '--host', host, '--schema_name', 'cli:other', '--key_var', 'K'], { env: { K: key } });
    expect(otherSchema.code).toBe(1);
    expect(otherSchema.err).toContain("The server answered 403: This API key is limited to schema 'cli:post'");

    const badMeta = await cli(['post_task', '--host', host, '--schema_name', 'cli:post', '--key_var', 'K', '--meta', 'nope'], { env: { K: key } });
    expect(badMeta.code).toBe(1);
    expect(badMeta.err).toContain('--meta must be JSON');

    const down = await cli(['post_task', '--host', 'http://127.0.0.1:1', '--schema_name', 'cli:post', '--key_var', 'K'], { env: { K: key } });
    expect(down.code).toBe(1);
    expect(down.err).toContain('Cannot reach http://127.0.0.1:1');
    expect(await taskCount()).toBe(before);
  });

  test('without --host it posts to 127.0.0.1:$PORT', async () => {
    const port = new URL(host).port;
    const r = await ok(['post_task', '--schema_name', 'cli:post', '--key_var', 'K'], { env: { K: key, PORT: port } });
    expect(r.out).toMatch(/^Created delete-acct task /);
  });
});

describe('underscore and dash spellings', () => {
  test('api_key and api-key, --schema_name and --schema-name, both work', async () => {
    await install('cli:spell');
    const a = await ok(['api_key', '--schema_name', 'cli:spell', '--name', 'spell-1']);
    const b = await ok(['api-key', '--schema-name', 'cli:spell', '--name', 'spell-2']);
    const c = await ok(['api_key', 'create', '--schema-name', 'cli:spell', '--name', 'spell-3']);
    const d = await ok(['api-key', 'create', '--schema_name', 'cli:spell', '--name', 'spell-4']);
    for (const r of [a, b, c, d]) expect(r.out).toMatch(/^ti_/);
    const rows = await database.query<{ name: string; schema_name: string }>("SELECT name, schema_name FROM api_keys WHERE name LIKE 'spell-%' ORDER BY name");
    expect(rows).toEqual(['spell-1', 'spell-2', 'spell-3', 'spell-4'].map((name) => ({ name, schema_name: 'cli:spell' })));
  });

  test('values are not rewritten: only option names are', async () => {
    // A --meta value with underscores keeps them.
    const r = await ok(['mktask', 'cli:spell', 'delete-acct', '--meta', '{"user_id": "a_b"}', '--json']);
    expect(JSON.parse(r.out).task).toBeDefined();
    const [row] = await database.query<{ meta: unknown }>('SELECT meta FROM tasks WHERE id = $1', [JSON.parse(r.out).task.id]);
    expect(row!.meta).toEqual({ user_id: 'a_b' });
  });
});

describe('configuration and setup failures are one clear line, not a stack trace', () => {
  test('an unreachable PostgreSQL', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['schemas'], {
      out: (s) => out.push(s),
      err: (s) => err.push(s),
      env: { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', SECRET_KEY: 'x'.repeat(32), LOG_LEVEL: 'silent' },
    });
    expect(code).toBe(1);
    expect(err.join('')).toMatch(/^error: Cannot reach the database \(ECONNREFUSED at 127\.0\.0\.1:1\)\. Check DATABASE_URL/);
    expect(err.join('')).not.toMatch(/\n\s+at /);
  });

  test('bad configuration lists every problem', async () => {
    const err: string[] = [];
    const code = await runCli(['schemas'], { out: () => {}, err: (s) => err.push(s), env: { PORT: 'x', LOG_LEVEL: 'loud' } });
    expect(code).toBe(1);
    expect(err.join('')).toContain('PORT');
    expect(err.join('')).toContain('LOG_LEVEL');
  });
});

test('serve on a port in use says so, and lets go of the data folder', async () => {
  const net = await import('node:net');
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ti-serve-'));
  try {
    const err: string[] = [];
    const code = await runCli(['serve'], { out: () => {}, err: (s) => err.push(s), env: { TI_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'silent' } });
    expect(code).toBe(1);
    expect(err.join('')).toContain(`error: Port ${port} is already in use`);
    const { existsSync } = await import('node:fs');
    expect(existsSync(path.join(dataDir, 'task-inbox.lock'))).toBe(false);
  } finally {
    blocker.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
