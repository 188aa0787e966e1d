import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { packageRoot } from '../../paths.js';

/** Where `vite build` puts the web inbox. */
export const webDistFolder = path.join(packageRoot, 'dist', 'web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The inbox page's policy: scripts and styles only from this server; images also from http(s)
 * (task metadata previews); no frames, plugins or foreign form targets.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; connect-src 'self'; " +
  "manifest-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface StaticFile {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
  /** Hashed file names never change: cache them for a year. Everything else is revalidated. */
  immutable: boolean;
}

/** A file served from memory, gzipped ahead when that pays; its type follows its extension. */
export function staticFile(urlPath: string, body: Buffer): StaticFile {
  const type = TYPES[path.extname(urlPath)] ?? 'application/octet-stream';
  const compressible = /^(text\/|application\/(json|manifest)|image\/svg)/.test(type) && body.length > 1024;
  return {
    body,
    gzip: compressible ? gzipSync(body, { level: 9 }) : undefined,
    type,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    immutable: urlPath.startsWith('/assets/'),
  };
}

function loadFolder(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      const urlPath = '/' + path.relative(root, full).split(path.sep).join('/');
      files.set(urlPath, staticFile(urlPath, readFileSync(full)));
    }
  };
  walk(root);
  return files;
}

/** Sends a file with its caching headers; HTML pages get the Content-Security-Policy. */
export function sendStaticFile(req: FastifyRequest, reply: FastifyReply, file: StaticFile) {
  reply.header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  reply.header('etag', file.etag);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('vary', 'accept-encoding');
  if (file.type.startsWith('text/html')) {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
  }
  reply.type(file.type);
  if (req.headers['if-none-match'] === file.etag) return reply.code(304).send();
  if (file.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    reply.header('content-encoding', 'gzip');
    return reply.send(file.gzip);
  }
  return reply.send(file.body);
}

/** Public, and not part of the API: left out of the OpenAPI document. */
const STATIC = { config: { auth: 'public' }, schema: { hide: true } } as const;

/** Shown when the server runs from a checkout where the web inbox was not built. */
const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>task-inbox</title>
<p>The web inbox has not been built. Run <code>npm run build</code> and restart the server.</p></html>`;

/**
 * The web inbox: static files from `dist/web`, held in memory (a few hundred KB) with gzip
 * precomputed. The page is served at `/`, `/taskui` and every path under it (client-side
 * routes), and at `/setup` (the first-run link).
 */
export function webAppRoutes(folder = webDistFolder): FastifyPluginAsync {
  return async (app) => {
    const files = existsSync(path.join(folder, 'index.html')) ? loadFolder(folder) : new Map<string, StaticFile>();
    const index = files.get('/index.html');
    const page = (req: FastifyRequest, reply: FastifyReply) =>
      index ? sendStaticFile(req, reply, index) : reply.code(503).type('text/html; charset=utf-8').send(NOT_BUILT);

    for (const url of ['/', '/taskui', '/taskui/*', '/setup']) app.get(url, STATIC, page);
    app.get('/assets/*', STATIC, async (req, reply) => {
      const file = files.get(req.url.split('?')[0]!);
      return file ? sendStaticFile(req, reply, file) : reply.callNotFound();
    });
    for (const [url, file] of files) {
      if (url === '/index.html' || url.startsWith('/assets/')) continue;
      app.get(url, STATIC, async (req, reply) => sendStaticFile(req, reply, file));
    }
  };
}
