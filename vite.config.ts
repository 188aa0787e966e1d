import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const publicDir = path.join(here, 'web', 'public');

/** Every file under `dir` as a URL path relative to it ('/icons/icon-192.png'). */
function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(path.join(dir, entry.name), `${prefix}/${entry.name}`) : [`${prefix}/${entry.name}`],
  );
}

/**
 * Emits `sw.js` from web/sw.js with the list of files to precache (the app shell) and a version
 * that changes whenever any of them does, so browsers see a new service worker on each deploy.
 */
function serviceWorker(): Plugin {
  return {
    name: 'task-inbox-service-worker',
    apply: 'build',
    generateBundle(_options, bundle) {
      // web/public is copied into the output by Vite itself, so it is not in `bundle`.
      const publicFiles = listFiles(publicDir).sort();
      const built = Object.keys(bundle)
        .filter((f) => !f.endsWith('.map') && f !== 'sw.js')
        .map((f) => '/' + f);
      const files = [...new Set([...built, ...publicFiles])].sort();
      const precache = ['/taskui', ...files.filter((f) => f !== '/index.html')];
      const hash = createHash('sha256');
      for (const f of Object.keys(bundle).sort()) {
        const item = bundle[f]!;
        hash.update(f).update(item.type === 'chunk' ? item.code : typeof item.source === 'string' ? item.source : Buffer.from(item.source));
      }
      for (const f of publicFiles) hash.update(f).update(readFileSync(path.join(publicDir, f)));
      const source = readFileSync(path.join(here, 'web', 'sw.js'), 'utf8')
        .replace('self.__PRECACHE__', () => JSON.stringify(precache))
        .replace('self.__VERSION__', () => JSON.stringify(hash.digest('hex').slice(0, 12)));
      this.emitFile({ type: 'asset', fileName: 'sw.js', source });
    },
  };
}

export default defineConfig({
  root: path.join(here, 'web'),
  publicDir,
  plugins: [react(), serviceWorker()],
  build: {
    outDir: path.join(here, 'dist', 'web'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8080', '/health': 'http://127.0.0.1:8080' },
  },
});
