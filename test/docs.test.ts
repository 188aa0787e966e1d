import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { configVariables } from '../src/config.js';
import { dbKind } from './helpers/db.js';

// The README documents every configuration variable and starts with the two commands.
test.skipIf(dbKind !== 'pglite')('README lists every configuration variable and the two commands', () => {
  const readme = readFileSync('README.md', 'utf8');
  for (const [name, def] of configVariables) expect(readme).toContain(`| \`${name}\` | ${def.startsWith('(') ? def : `\`${def}\``} |`);
  const firstBlock = readme.slice(readme.indexOf('```sh'), readme.indexOf('```', readme.indexOf('```sh') + 5));
  expect(firstBlock).toContain('npm install && npm start');
  expect(firstBlock).toContain('npm test');
});
