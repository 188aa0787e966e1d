/*
 * The container image, docker-compose.yml and the Helm chart, checked as far as a machine without
 * Docker or helm allows: the files parse, everything they copy, run, set or probe exists, and the
 * image's runtime stage — rebuilt as a folder from its COPY lines — starts, migrates, answers its
 * health check and probes, and stops cleanly on SIGTERM. Needs the build (`npm run build`), no
 * database of its own: it runs once, in the PGlite project.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isMap, isScalar, parse, parseDocument, type Node as YamlNode } from 'yaml';
import { createProgram } from '../src/cli/index.js';
import { configVariables } from '../src/config.js';
import { dbKind } from './helpers/db.js';
import { freePort, root } from './helpers/processes.js';

const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const chartDir = 'deploy/helm/task-inbox';

/** Variables task-inbox reads (config.ts), and the one Node itself reads. */
const knownVariables = new Set<string>([...configVariables.map(([name]) => name), 'NODE_ENV']);
const cliCommands = new Set(
  createProgram({ out: () => {}, err: () => {} }).commands.flatMap((c) => [c.name(), ...c.aliases()]),
);
const packageJson = JSON.parse(read('package.json')) as { name: string; version: string; scripts: Record<string, string>; dependencies: Record<string, string>; engines: { node: string } };

// ---- Dockerfile ----

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions per stage, with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.trimStart().startsWith('#') || (pending === '' && line.trim() === '')) continue;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const whole = (pending + line).trim();
    pending = '';
    const [, keyword, args] = /^(\w+)\s+(.*)$/s.exec(whole)!;
    if (keyword!.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args!.trim())!;
      stages.push({ image: m[1]!, name: m[2], instructions: [] });
    } else stages.at(-1)!.instructions.push({ keyword: keyword!.toUpperCase(), args: args!.trim() });
  }
  return stages;
}

const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
const last = (stage: Stage, keyword: string) => all(stage, keyword).at(-1);
/** `ENV A=1 B=2` (and the old `ENV A 1`) as a map. */
const envOf = (stage: Stage) =>
  Object.fromEntries(
    all(stage, 'ENV').flatMap((args) => (args.includes('=') ? [...args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')]) : [args.split(/\s+/, 2)])),
  ) as Record<string, string>;
const execForm = (args: string) => JSON.parse(args) as string[];

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}
const copiesOf = (stage: Stage): Copy[] =>
  all(stage, 'COPY').map((args) => {
    const words = args.split(/\s+/);
    const flags = words.filter((w) => w.startsWith('--'));
    const paths = words.filter((w) => !w.startsWith('--'));
    return { from: flags.find((f) => f.startsWith('--from='))?.slice(7), sources: paths.slice(0, -1), dest: paths.at(-1)! };
  });

/** .dockerignore patterns as tests on context-relative paths (a pattern also excludes what is under it). */
function dockerignore(): (file: string) => boolean {
  const patterns = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  expect(patterns.some((p) => p.startsWith('!')), 'keep .dockerignore free of exceptions so this check stays simple').toBe(false);
  const regexes = patterns.map((pattern) => {
    const p = pattern.replace(/^\/+|\/+$/g, '');
    let body = '';
    for (let i = 0; i < p.length; i++) {
      if (p.startsWith('**/', i)) {
        body += '(?:.*/)?';
        i += 2;
      } else if (p.startsWith('**', i)) {
        body += '.*';
        i += 1;
      } else if (p[i] === '*') body += '[^/]*';
      else if (p[i] === '?') body += '[^/]';
      else body += p[i]!.replace(/[.+^${}()|[\]\\]/, '\\$&');
    }
    return new RegExp(`^${body}(?:/.*)?$`);
  });
  return (file) => regexes.some((r) => r.test(file.replace(/^\.\/|\/$/g, '')));
}

const dockerfile = parseDockerfile(read('deploy/Dockerfile'));
const buildStage = dockerfile[0]!;
const runtimeStage = dockerfile.at(-1)!;
const runtimeWorkdir = last(runtimeStage, 'WORKDIR')!;

// ---- Helm chart ----

const templateFiles = readdirSync(path.join(root, chartDir, 'templates')).sort();
const templates = Object.fromEntries(templateFiles.map((f) => [f, read(`${chartDir}/templates/${f}`)]));
const valuesText = read(`${chartDir}/values.yaml`);
const values = parse(valuesText) as Record<string, unknown>;

/** Every leaf of values.yaml (a scalar, a list or an empty map) with its dotted path and line. */
function valueLeaves(): { path: string; value: unknown; line: number }[] {
  const lineOf = (offset: number) => valuesText.slice(0, offset).split('\n').length - 1;
  const leaves: { path: string; value: unknown; line: number }[] = [];
  const walk = (node: YamlNode | null, prefix: string) => {
    if (!isMap(node)) return;
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const full = prefix ? `${prefix}.${key}` : key;
      const value = pair.value as YamlNode | null;
      if (isMap(value) && value.items.length > 0) walk(value, full);
      else leaves.push({ path: full, value: value && 'toJSON' in value ? value.toJSON() : value, line: lineOf((pair.key as YamlNode).range![0]) });
    }
  };
  walk(parseDocument(valuesText).contents as YamlNode, '');
  return leaves;
}

const hasPath = (dotted: string) => {
  let at: unknown = values;
  for (const part of dotted.split('.')) {
    if (at === null || typeof at !== 'object' || !(part in at)) return false;
    at = (at as Record<string, unknown>)[part];
  }
  return true;
};

/** `.Values.a.b` paths the templates use. */
const valuePathsUsed = [...new Set(Object.values(templates).flatMap((t) => [...t.matchAll(/\.Values((?:\.[A-Za-z_]\w*)+)/g)].map((m) => m[1]!.slice(1))))];

/** The template with its actions blanked: lines that are only an action go, inline ones become `x`. */
const skeleton = (text: string) =>
  text
    .split('\n')
    .filter((line) => !/^\s*\{\{.*\}\}\s*$/.test(line) || /\}\}.*\{\{/.test(line))
    .map((line) => line.replace(/\{\{.*?\}\}/g, 'x'))
    .join('\n');

// ---- docker-compose.yml ----

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  profiles?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  volumes?: string[];
  ports?: string[];
}
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
/** The services that run the task-inbox image. */
const appServices = Object.entries(compose.services).filter(([, s]) => s.build?.dockerfile === 'deploy/Dockerfile');

describe.skipIf(dbKind !== 'pglite')('container image (deploy/Dockerfile)', () => {
  test('two stages on node:20-bookworm-slim, the Node major that package.json asks for', () => {
    expect(dockerfile.length).toBe(2);
    const engineMajor = Number(/(\d+)/.exec(packageJson.engines.node)![1]);
    for (const stage of dockerfile) expect(stage.image).toBe(`node:${engineMajor}-bookworm-slim`);
    expect(buildStage.name).toBeTruthy();
  });

  test('the build stage installs, builds with scripts that exist, prunes dev dependencies, and can compile argon2', () => {
    const run = all(buildStage, 'RUN').join('\n');
    expect(run).toMatch(/\bnpm ci\b/);
    for (const [, script] of run.matchAll(/npm run (\S+)/g)) expect(packageJson.scripts, `npm run ${script}`).toHaveProperty(script!);
    // npm ci builds through `prepare`; otherwise the Dockerfile must run the build itself.
    if (!/npm run build\b/.test(run)) expect(packageJson.scripts.prepare).toMatch(/npm run build\b/);
    expect(packageJson.scripts.build).toMatch(/\btsc\b.*\bvite build\b/);
    expect(run).toMatch(/npm prune --omit=dev/);
    // argon2's prebuilt linux-x64 binary does not load in Node 20, so npm ci compiles it.
    if (packageJson.dependencies.argon2) for (const tool of ['python3', 'make', 'g++']) expect(run).toContain(` ${tool}`);
  });

  test('every COPY source exists, is in the build context or made by the build, and is not in .dockerignore', () => {
    const ignored = dockerignore();
    const buildWorkdir = last(buildStage, 'WORKDIR')!;
    const copiedIntoBuild = new Set<string>();
    for (const copy of copiesOf(buildStage)) {
      expect(copy.from).toBeUndefined();
      for (const source of copy.sources) {
        expect(existsSync(path.join(root, source)), source).toBe(true);
        expect(ignored(source), `${source} is excluded by .dockerignore`).toBe(false);
        copiedIntoBuild.add(copy.dest === './' ? source : copy.dest.replace(/^\.\//, ''));
      }
    }
    const runtimeCopies = copiesOf(runtimeStage);
    expect(runtimeCopies.length).toBeGreaterThan(0);
    for (const copy of runtimeCopies) {
      expect(copy.from).toBe(buildStage.name);
      for (const source of copy.sources) {
        const relative = path.posix.relative(buildWorkdir, source);
        const madeByBuild = relative === 'node_modules' || relative === 'dist';
        expect(copiedIntoBuild.has(relative) || madeByBuild, `${source} is neither copied into the build stage nor made by it`).toBe(true);
        expect(existsSync(path.join(root, relative)), `${relative} (run npm run build first)`).toBe(true);
      }
    }
    for (const must of ['node_modules', '.git', 'dist', 'data', '.env']) expect(ignored(must), `.dockerignore should exclude ${must}`).toBe(true);
  });

  test('the runtime stage runs as a non-root user, on 0.0.0.0, with its data folder a volume that user owns', () => {
    const env = envOf(runtimeStage);
    for (const name of Object.keys(env)) expect(knownVariables, `ENV ${name}`).toContain(name);
    expect(env.NODE_ENV).toBe('production');
    expect(configVariables.find(([name]) => name === 'HOST')![1]).toBe('127.0.0.1');
    expect(env.HOST).toBe('0.0.0.0');
    const user = last(runtimeStage, 'USER')!;
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    const dataDir = env.TI_DATA_DIR!;
    expect(dataDir).toMatch(/^\//);
    expect(all(runtimeStage, 'VOLUME').join(' ')).toContain(dataDir);
    expect(all(runtimeStage, 'RUN').join('\n')).toContain(`chown ${user} ${dataDir}`);
    expect(all(runtimeStage, 'EXPOSE').join(' ')).toContain(env.PORT ?? '8080');
  });

  test('ENTRYPOINT runs bin/task-inbox.js, which the image has, and CMD is a CLI command', () => {
    const entrypoint = execForm(last(runtimeStage, 'ENTRYPOINT')!);
    expect(entrypoint).toEqual(['node', 'bin/task-inbox.js']);
    expect(existsSync(path.join(root, entrypoint[1]!))).toBe(true);
    expect(copiesOf(runtimeStage).some((c) => c.dest.replace(/^\.\/|\/$/g, '') === 'bin')).toBe(true);
    for (const command of [execForm(last(runtimeStage, 'CMD')!)[0]!]) expect(cliCommands).toContain(command);
  });

  test('the compiled server imports only node built-ins and production dependencies', () => {
    const files = (readdirSync(path.join(root, 'dist/src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.js'));
    expect(files.length).toBeGreaterThan(10);
    // The package's own name appears in the client's documentation examples.
    const allowed = new Set([...builtinModules, ...Object.keys(packageJson.dependencies), packageJson.name]);
    for (const file of files) {
      const code = readFileSync(path.join(root, 'dist/src', file), 'utf8');
      for (const [, spec] of code.matchAll(/(?<!['"])(?:\bfrom|\bimport|\.resolve)\s*\(?\s*['"]([^'"./\s()][^'"\s()]*)['"]/g)) {
        if (spec!.startsWith('node:')) continue;
        const pkg = spec!.startsWith('@') ? spec!.split('/').slice(0, 2).join('/') : spec!.split('/')[0]!;
        expect(allowed, `dist/src/${file} imports ${spec}`).toContain(pkg);
      }
    }
  });
});

describe.skipIf(dbKind !== 'pglite')('docker-compose.yml', () => {
  test('PostgreSQL with a health check and a named volume; the app built from deploy/Dockerfile waits for it', () => {
    const db = compose.services.db!;
    expect(db.image).toMatch(/^postgres:1[56]\b/);
    expect(db.healthcheck?.test?.join(' ')).toContain('pg_isready');
    const volume = db.volumes![0]!.split(':')[0]!;
    expect(compose.volumes).toHaveProperty(volume);
    const app = compose.services.app!;
    expect(app.build).toEqual({ context: '.', dockerfile: 'deploy/Dockerfile' });
    expect(existsSync(path.join(root, app.build!.dockerfile))).toBe(true);
    expect(app.depends_on?.db?.condition).toBe('service_healthy');
    expect(app.ports!.some((p) => p.endsWith(':8080'))).toBe(true);
  });

  test('the app gets DATABASE_URL to that database and a SECRET_KEY that is never in the file', () => {
    const db = compose.services.db!.environment!;
    for (const [name, service] of appServices) {
      const env = service.environment!;
      expect(env.SECRET_KEY, name).toMatch(/^\$\{SECRET_KEY:\?[^}]+\}$/);
      expect(env.PUBLIC_URL, name).toBeTruthy();
      const url = new URL(env.DATABASE_URL!.replace(/\$\{[^}]+\}/g, 'x'));
      expect(url.hostname).toBe('db');
      expect(url.username).toBe(db.POSTGRES_USER);
      expect(url.pathname).toBe(`/${db.POSTGRES_DB}`);
      expect(env.DATABASE_URL).toContain(db.POSTGRES_PASSWORD!.replace(/:\?.*$/, ''));
    }
  });

  test('every variable set is one task-inbox knows, and every command is a CLI command', () => {
    expect(appServices.map(([name]) => name).sort()).toEqual(['app', 'worker']);
    for (const [name, service] of appServices) {
      for (const variable of Object.keys(service.environment ?? {})) expect(knownVariables, `${name}: ${variable}`).toContain(variable);
      expect(cliCommands, name).toContain(service.command![0]);
    }
  });

  test('the worker is optional and switches off the image health check (it has no HTTP server)', () => {
    const worker = compose.services.worker!;
    expect(worker.command).toEqual(['worker']);
    expect(worker.profiles).toContain('worker');
    expect(worker.healthcheck?.disable).toBe(true);
    expect(compose.services.app!.environment!.WORKER).toMatch(/^\$\{WORKER:-on\}$/);
  });
});

describe.skipIf(dbKind !== 'pglite')('Helm chart (deploy/helm/task-inbox)', () => {
  test('Chart.yaml is apiVersion v2 and deploys this version', () => {
    const chart = parse(read(`${chartDir}/Chart.yaml`)) as Record<string, string>;
    expect(chart.apiVersion).toBe('v2');
    expect(chart.name).toBe('task-inbox');
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(chart.appVersion).toBe(packageJson.version);
  });

  test('templates have balanced {{ }} and blocks, and include only defined templates', () => {
    const defined = new Set(Object.values(templates).flatMap((t) => [...t.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1]!)));
    for (const [file, text] of Object.entries(templates)) {
      expect(text.split('{{').length, `${file}: {{ vs }}`).toBe(text.split('}}').length);
      const stack: string[] = [];
      for (const [, action] of text.matchAll(/\{\{-?\s*(.*?)\s*-?\}\}/gs)) {
        const word = /^(\/\*|\w+)/.exec(action!)?.[1];
        if (word === 'if' || word === 'range' || word === 'with' || word === 'define' || word === 'block') stack.push(word);
        else if (word === 'else') expect(['if', 'with', 'range'], `${file}: else outside a block`).toContain(stack.at(-1));
        else if (word === 'end') expect(stack.pop(), `${file}: end without a block`).toBeDefined();
      }
      expect(stack, `${file}: blocks left open`).toEqual([]);
      for (const [, name] of text.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)) expect(defined, `${file}: include "${name}"`).toContain(name);
    }
  });

  test('each manifest template has apiVersion, kind and well-formed YAML around its actions', () => {
    const apiVersions: Record<string, string> = { Deployment: 'apps/v1', Service: 'v1', Ingress: 'networking.k8s.io/v1', Job: 'batch/v1', ConfigMap: 'v1', Secret: 'v1' };
    const kinds = [];
    for (const [file, text] of Object.entries(templates)) {
      if (!file.endsWith('.yaml')) continue;
      const doc = parseDocument(skeleton(text));
      expect(doc.errors.map((e) => e.message), file).toEqual([]);
      const manifest = doc.toJS() as { apiVersion: string; kind: string };
      expect(apiVersions[manifest.kind], `${file}: kind ${manifest.kind}`).toBe(manifest.apiVersion);
      kinds.push(manifest.kind);
    }
    expect(kinds.sort()).toEqual(['ConfigMap', 'Deployment', 'Deployment', 'Ingress', 'Job', 'Secret', 'Service']);
  });

  test('every .Values path the templates use exists, and every value is used', () => {
    expect(valuePathsUsed.length).toBeGreaterThan(20);
    for (const used of valuePathsUsed) expect(hasPath(used), `.Values.${used} is not in values.yaml`).toBe(true);
    for (const leaf of valueLeaves()) expect(valuePathsUsed.some((used) => leaf.path === used || leaf.path.startsWith(`${used}.`)), `${leaf.path} is used by no template`).toBe(true);
  });

  test('every value has a comment in values.yaml and a row in the chart README, with its default', () => {
    const lines = valuesText.split('\n');
    const readme = read(`${chartDir}/README.md`);
    const rows = new Map([...readme.matchAll(/^\| `([^`]+)` \| `([^`]*)` \|/gm)].map((m) => [m[1]!, m[2]!]));
    const shown = (v: unknown) => (typeof v === 'string' ? (v === '' || /^\d+$/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v));
    const leaves = valueLeaves();
    expect(leaves.length).toBeGreaterThan(40);
    for (const leaf of leaves) {
      const commented = lines[leaf.line - 1]!.trim().startsWith('#') || / #/.test(lines[leaf.line]!);
      expect(commented, `values.yaml: ${leaf.path} has no comment`).toBe(true);
      expect(rows.get(leaf.path), `chart README: row of ${leaf.path}`).toBe(shown(leaf.value));
    }
    expect([...rows.keys()].filter((p) => !hasPath(p)), 'README rows of values that do not exist').toEqual([]);
  });

  test('every variable the chart sets is one task-inbox knows; secrets are not plain settings', () => {
    const config = values.config as Record<string, unknown>;
    const named = Object.values(templates).flatMap((t) => [
      ...[...skeleton(t).matchAll(/^\s*-\s*name:\s*["']?([A-Z][A-Z0-9_]+)["']?\s*$/gm)].map((m) => m[1]!),
      ...[...skeleton(t).matchAll(/^\s*["']?([A-Z][A-Z0-9_]+)["']?\s*:/gm)].map((m) => m[1]!),
    ]);
    expect(named).toEqual(expect.arrayContaining(['HOST', 'DATABASE_URL', 'SECRET_KEY', 'WORKER', 'METRICS_PORT', 'METRICS_HOST']));
    for (const name of [...named, ...Object.keys(config)]) expect(knownVariables, name).toContain(name);
    for (const secret of ['DATABASE_URL', 'SECRET_KEY', 'SMTP_URL', 'METRICS_TOKEN']) expect(config).not.toHaveProperty(secret);
    expect(templates['secret.yaml']).toMatch(/DATABASE_URL: \{\{ required /);
  });

  test('web, worker and migration pods run serve, worker and migrate, without root, on a read-only file system', () => {
    const argsOf = (file: string) => [...templates[file]!.matchAll(/args: (\[.*\])/g)].map((m) => JSON.parse(m[1]!) as string[]);
    expect(argsOf('deployment.yaml')).toEqual([['serve']]);
    expect(argsOf('worker-deployment.yaml')).toEqual([['worker']]);
    expect(argsOf('migrate-job.yaml')).toEqual([['migrate']]);
    for (const [command] of [...argsOf('deployment.yaml'), ...argsOf('worker-deployment.yaml'), ...argsOf('migrate-job.yaml')]) expect(cliCommands).toContain(command);
    expect(templates['deployment.yaml']).toMatch(/if \.Values\.worker\.enabled \}\}\n(?:\s*#.*\n)?\s*- name: WORKER\n\s*value: "off"/);
    expect(templates['migrate-job.yaml']).toMatch(/helm\.sh\/hook: pre-install,pre-upgrade/);
    expect(templates['migrate-job.yaml']).toMatch(/helm\.sh\/hook-delete-policy: \S+/);
    const pod = values.podSecurityContext as Record<string, unknown>;
    const container = values.securityContext as { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean; capabilities: { drop: string[] } };
    expect(pod.runAsNonRoot).toBe(true);
    expect(String(pod.runAsUser)).toBe(last(runtimeStage, 'USER')!.split(':')[0]);
    expect(container).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(templates['_helpers.tpl']).toMatch(/mountPath: \/tmp/);
    expect(templates['_helpers.tpl']).toMatch(/- name: tmp\n\s*emptyDir: \{\}/);
  });
});

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  err: string;
}
const exited = (child: ChildProcess, err: () => string) => new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, err: err() })));

describe.skipIf(dbKind !== 'pglite')('the image runtime stage, rebuilt as a folder from its COPY lines', () => {
  let dir: string;
  let appDir: string;
  let env: Record<string, string>;
  let port: number;
  let metricsPort: number;
  let server: ChildProcess | undefined;
  let serverExit: Promise<Exit>;

  /** The image's ENTRYPOINT with `args`, from WORKDIR, with the image's environment. */
  const run = (args: string[]) => {
    const [node, ...entry] = execForm(last(runtimeStage, 'ENTRYPOINT')!);
    expect(node).toBe('node');
    return spawn(process.execPath, [...entry, ...args], { cwd: appDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  };
  /** The HEALTHCHECK command's exit code. */
  const healthcheck = async () => {
    const command = execForm(/CMD\s+(\[.*\])$/s.exec(last(runtimeStage, 'HEALTHCHECK')!)![1]!);
    expect(command[0]).toBe('node');
    for (const [, name] of command.join(' ').matchAll(/process\.env\.(\w+)/g)) expect(knownVariables).toContain(name);
    const child = spawn(process.execPath, command.slice(1), { cwd: appDir, env, stdio: 'ignore' });
    return (await exited(child, () => '')).code;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ti-deploy-test-'));
    appDir = path.join(dir, runtimeWorkdir);
    mkdirSync(appDir, { recursive: true });
    const buildWorkdir = last(buildStage, 'WORKDIR')!;
    for (const copy of copiesOf(runtimeStage)) {
      for (const source of copy.sources) {
        const relative = path.posix.relative(buildWorkdir, source);
        const target = path.join(appDir, copy.dest.endsWith('/') ? path.basename(relative) : copy.dest);
        // node_modules here holds the dev dependencies too; the import check above covers that.
        if (relative === 'node_modules') symlinkSync(path.join(root, 'node_modules'), target, 'dir');
        else cpSync(path.join(root, relative), target, { recursive: true });
      }
    }
    [port, metricsPort] = [await freePort(), await freePort()];
    const image = envOf(runtimeStage);
    env = {
      PATH: process.env.PATH ?? '',
      ...image,
      // Loopback and free ports instead of the image's 0.0.0.0:8080 on a shared machine.
      HOST: '127.0.0.1',
      PORT: String(port),
      TI_DATA_DIR: path.join(dir, image.TI_DATA_DIR!),
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'warn',
    };
  });

  afterAll(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL');
      await serverExit;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('migrate (the chart migration Job) creates and migrates the database', async () => {
    let err = '';
    const child = run(['migrate']);
    child.stderr!.on('data', (d) => (err += d));
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const result = await exited(child, () => err);
    expect(result, err).toMatchObject({ code: 0 });
    expect(out).toContain('up to date');
  });

  test('serve answers the health check, the probe paths of the chart, the inbox and metrics, and stops on SIGTERM', async () => {
    let err = '';
    server = run(execForm(last(runtimeStage, 'CMD')!));
    server.stderr!.on('data', (d) => (err += d));
    serverExit = exited(server, () => err);
    const started = Date.now();
    while (!err.includes('is listening on')) {
      if (server.exitCode !== null || Date.now() - started > 30_000) throw new Error(`serve did not start:\n${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await healthcheck()).toBe(0);

    const probePaths = [...templates['deployment.yaml']!.matchAll(/httpGet:\n\s*path: (\S+)/g)].map((m) => m[1]!);
    expect(new Set(probePaths)).toEqual(new Set(['/livez', '/readyz']));
    for (const probe of [...probePaths, '/taskui']) expect((await fetch(`http://127.0.0.1:${port}${probe}`)).status, probe).toBe(200);
    const metricsPath = /prometheus\.io\/path: (\S+)/.exec(templates['deployment.yaml']!)![1]!;
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}${metricsPath}`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('task_inbox_');

    server.kill('SIGTERM');
    expect(await serverExit, err).toMatchObject({ code: 0 });
    expect(await healthcheck(), 'the health check fails once the server is gone').not.toBe(0);
  });
});

describe.skipIf(dbKind !== 'pglite')('deployment docs', () => {
  test('the README links docs/deployment.md, and the relative links of the deployment docs lead to files', () => {
    expect(read('README.md')).toContain('[docs/deployment.md](docs/deployment.md)');
    for (const doc of ['docs/deployment.md', `${chartDir}/README.md`]) {
      for (const [, target] of read(doc).matchAll(/\]\(([^)#:]+)(?:#[^)]*)?\)/g)) {
        expect(existsSync(path.join(root, path.dirname(doc), target!)), `${doc} links ${target}`).toBe(true);
      }
    }
  });
});
