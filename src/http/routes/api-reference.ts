import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { sendStaticFile, staticFile, type StaticFile } from './web-app.js';

/** Swagger UI's built files, from the installed package: nothing is fetched from elsewhere. */
const swaggerUiFolder = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

// No inline script or style, so the page runs under the inbox's Content-Security-Policy.
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>task-inbox API reference</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/reference.js"></script>
</body>
</html>
`;

// BaseLayout: no box to load other documents; validatorUrl null: no call to an online validator.
const START = `'use strict';
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  deepLinking: true,
  validatorUrl: null,
  displayRequestDuration: true,
  filter: true,
});
`;

/** What each URL serves; the file name gives the content type. */
const FILES: [url: string, name: string, body: () => Buffer][] = [
  ['/docs', 'index.html', () => Buffer.from(PAGE)],
  ['/docs/reference.js', 'reference.js', () => Buffer.from(START)],
  ['/docs/swagger-ui.css', 'swagger-ui.css', () => readFileSync(path.join(swaggerUiFolder, 'swagger-ui.css'))],
  ['/docs/swagger-ui-bundle.js', 'swagger-ui-bundle.js', () => readFileSync(path.join(swaggerUiFolder, 'swagger-ui-bundle.js'))],
  ['/docs/favicon-32x32.png', 'favicon-32x32.png', () => readFileSync(path.join(swaggerUiFolder, 'favicon-32x32.png'))],
];

/**
 * `GET /docs`: the interactive reference of the OpenAPI document at /openapi.json (Swagger UI).
 * Its files are read and compressed on the first request, so apps that never show it pay nothing.
 */
export const apiReferenceRoutes: FastifyPluginAsync = async (app) => {
  const loaded = new Map<string, StaticFile>();
  for (const [url, name, body] of FILES) {
    app.get(url, { config: { auth: 'public' }, schema: { hide: true } }, async (req, reply) => {
      let file = loaded.get(url);
      if (!file) loaded.set(url, (file = staticFile(`/docs/${name}`, body())));
      return sendStaticFile(req, reply, file);
    });
  }
};
