import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { InvalidSchemaFile, type SchemaFileIssue } from '../../errors.js';

/** A task schema file (SPEC §2.1) after validation. */
export interface SchemaFile {
  name: string;
  semver: string;
  defaultHookUrl: string | null;
  /** `sync`: a change commits only if the receiver accepts it; `async`: through the outbox. */
  hookMode: 'sync' | 'async';
  hookAuth: HookAuth | null;
  types: { name: string; pendingStates: string[]; resolvedStates: string[]; hookUrl: string | null }[];
  /** The YAML text itself. */
  source: string;
  /** Line of `semver`, to point at it when the (name, semver) pair already exists. */
  semverLine: number;
}

export interface ParsedSchemaFile {
  schema: SchemaFile;
  /** Fields the format does not know: ignored, but worth telling about (often a typo). */
  warnings: SchemaFileIssue[];
}

/** How webhooks authenticate: `head` puts the webhook key in header `val`; `standard` signs (Standard Webhooks). */
export interface HookAuth {
  kind: 'head' | 'standard';
  val?: string;
  args?: Record<string, unknown>;
}

const Name = z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty');
const HookUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });
const StateList = z.array(Name, { error: 'must be a list of state names' });

const FileShape = z.object(
  {
    name: Name,
    // Version labels like `semver: 1` are read by YAML as numbers; they mean the label "1".
    semver: z
      .union([z.string(), z.number()], { error: 'must be a string such as "1" or "1.2.0"' })
      .transform(String)
      .pipe(z.string().trim().min(1, 'must not be empty')),
    default_hook_url: HookUrl.nullish(),
    hook_mode: z.enum(['sync', 'async'], { error: "must be 'sync' or 'async'" }).nullish(),
    hook_auth: z
      .object(
        {
          kind: z.enum(['head', 'standard'], { error: "must be 'head' (the webhook key in a header) or 'standard' (Standard Webhooks signatures)" }),
          val: Name.optional(),
          args: z.record(z.string(), z.unknown(), { error: 'must be a map' }).optional(),
        },
        { error: 'must be a map with kind and val' },
      )
      .refine((a) => a.kind !== 'head' || a.val !== undefined, { message: "is required for kind 'head': the header's name", path: ['val'] })
      .nullish(),
    tasktypes: z
      .array(
        z.object(
          {
            name: Name,
            pending_states: StateList.nullish().transform((v) => v ?? []),
            resolved_states: StateList,
            hook_url: HookUrl.nullish(),
          },
          { error: 'must be a map with name, pending_states and resolved_states' },
        ),
        { error: 'must be a list of task types' },
      )
      .min(1, 'must list at least one task type'),
  },
  { error: 'the file must be a YAML map with name, semver and tasktypes' },
);

const knownKeys: Record<string, string[]> = {
  '': ['name', 'semver', 'default_hook_url', 'hook_mode', 'hook_auth', 'tasktypes'],
  hook_auth: ['kind', 'val', 'args'],
  tasktype: ['name', 'pending_states', 'resolved_states', 'hook_url'],
};

type Path = (string | number)[];

function fieldName(path: Path): string {
  if (path.length === 0) return '(file)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/**
 * Parses and validates a task schema file. Every problem names its line and field; the whole
 * list is thrown at once as InvalidSchemaFile.
 */
export function parseSchemaFile(source: string, label = 'the schema file'): ParsedSchemaFile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  if (doc.errors.length > 0) {
    // Only the first: later syntax errors are usually echoes of it.
    throw new InvalidSchemaFile(
      doc.errors.slice(0, 1).map((e) => {
        const where = at(e.pos[0]);
        const opened = unclosedOpener(source, e.message, where.line);
        if (opened) return { line: opened.line, column: opened.column, field: '(yaml)', message: `not valid YAML: this ${opened.what} is never closed` };
        return { ...where, field: '(yaml)', message: `not valid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}` };
      }),
      label,
    );
  }

  /**
   * Position of `path`: a map entry's key (not its value, which may start on the next line), a
   * list item, or — for a missing field — the deepest parent that exists.
   */
  const positionOf = (path: Path) => {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n);
      const parent = (sub.length <= 1 ? doc.contents : doc.getIn(sub.slice(0, -1), true)) as unknown;
      const last = sub[sub.length - 1];
      if (sub.length > 0 && isMap(parent)) {
        const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
        const keyNode = pair?.key as YamlNode | undefined;
        if (keyNode?.range) return at(keyNode.range[0]);
        continue;
      }
      const node = (sub.length === 0 ? doc.contents : isSeq(parent) ? parent.items[last as number] : undefined) as YamlNode | null | undefined;
      if (node && node.range) return at(node.range[0]);
    }
    return { line: 1, column: 1 };
  };

  // A version label written as a number keeps its text: `semver: 1.10` is "1.10", not "1.1".
  const semverNode = doc.get('semver', true);
  const data: unknown = doc.toJS();
  if (isScalar(semverNode) && typeof semverNode.value === 'number' && semverNode.source && data && typeof data === 'object') {
    (data as Record<string, unknown>).semver = semverNode.source;
  }
  const parsed = FileShape.safeParse(data);
  const issues: SchemaFileIssue[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path as Path;
      const present = path.length === 0 || doc.hasIn(path);
      issues.push({
        ...positionOf(path),
        field: fieldName(path),
        message: present ? issue.message : 'is required but missing',
      });
    }
  } else {
    issues.push(...crossFieldIssues(parsed.data.tasktypes, positionOf));
  }
  if (issues.length > 0) throw new InvalidSchemaFile(sortByLine(issues), label);

  const file = parsed.data!;
  return {
    schema: {
      name: file.name,
      semver: file.semver,
      defaultHookUrl: file.default_hook_url ?? null,
      hookMode: file.hook_mode ?? 'sync',
      // `val` means nothing to signatures; dropping it keeps the key's (schema, hook_auth) pair stable.
      hookAuth: file.hook_auth ? (file.hook_auth.kind === 'standard' ? { kind: 'standard', ...(file.hook_auth.args ? { args: file.hook_auth.args } : {}) } : file.hook_auth) : null,
      types: file.tasktypes.map((t) => ({ name: t.name, pendingStates: t.pending_states, resolvedStates: t.resolved_states, hookUrl: t.hook_url ?? null })),
      source,
      semverLine: positionOf(['semver']).line,
    },
    warnings: unknownFields(doc, positionOf),
  };
}

function crossFieldIssues(
  types: { name: string; pending_states: string[]; resolved_states: string[] }[],
  positionOf: (path: Path) => { line: number; column: number },
): SchemaFileIssue[] {
  const issues: SchemaFileIssue[] = [];
  const firstTypeIndex = new Map<string, number>();
  types.forEach((t, i) => {
    const first = firstTypeIndex.get(t.name);
    if (first !== undefined) {
      const path = ['tasktypes', i, 'name'];
      issues.push({
        ...positionOf(path),
        field: fieldName(path),
        message: `duplicate task type name '${t.name}' (first at line ${positionOf(['tasktypes', first, 'name']).line})`,
      });
    } else firstTypeIndex.set(t.name, i);

    const seen = new Map<string, Path>();
    for (const list of ['pending_states', 'resolved_states'] as const) {
      t[list].forEach((state, j) => {
        const path = ['tasktypes', i, list, j];
        const earlier = seen.get(state);
        if (earlier) {
          const where = earlier[2] === list ? `already listed at line ${positionOf(earlier).line}` : `already listed in pending_states at line ${positionOf(earlier).line}; a state is either pending or resolved`;
          issues.push({ ...positionOf(path), field: fieldName(path), message: `state '${state}' ${where}` });
        } else seen.set(state, path);
      });
    }
  });
  return issues;
}

function unknownFields(doc: Document, positionOf: (path: Path) => { line: number; column: number }): SchemaFileIssue[] {
  const warnings: SchemaFileIssue[] = [];
  const check = (path: Path, known: string[]) => {
    const value = path.length === 0 ? doc.toJS() : doc.getIn(path);
    const obj = path.length === 0 ? value : (doc.getIn(path, true) as { toJSON?: () => unknown } | undefined)?.toJSON?.();
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return;
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) {
        const p = [...path, key];
        warnings.push({ ...positionOf(p), field: fieldName(p), message: 'unknown field, ignored' });
      }
    }
  };
  check([], knownKeys['']!);
  check(['hook_auth'], knownKeys.hook_auth!);
  const types = doc.getIn(['tasktypes']);
  const count = (types as { items?: unknown[] } | undefined)?.items?.length ?? 0;
  for (let i = 0; i < count; i++) check(['tasktypes', i], knownKeys.tasktype!);
  return warnings;
}

const sortByLine = (issues: SchemaFileIssue[]) => [...issues].sort((a, b) => a.line - b.line || a.column - b.column);

/**
 * The YAML parser notices an unclosed quote or bracket where the file ends or the next item
 * starts; the mistake is on the line that opened it, so point there instead.
 */
function unclosedOpener(source: string, message: string, errorLine: number): { line: number; column: number; what: string } | undefined {
  const kind = /closing (['"])quote/.exec(message)?.[1] ?? /end with a ([\]}])/.exec(message)?.[1];
  if (!kind) return undefined;
  const open = kind === ']' ? '[' : kind === '}' ? '{' : kind;
  const lines = source.split('\n');
  for (let i = Math.min(errorLine, lines.length) - 1; i >= 0; i--) {
    const text = lines[i]!.replace(/^\s*#.*$/, '');
    const unbalanced = open === kind ? text.split(open).length % 2 === 0 : text.split(open).length > text.split(kind).length;
    if (unbalanced) return { line: i + 1, column: text.indexOf(open) + 1, what: open === kind ? `${open} quote` : `'${open}'` };
  }
  return undefined;
}
