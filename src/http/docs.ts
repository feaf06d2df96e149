import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Hono } from 'hono';
import { NotFoundError } from '../domain/errors.ts';
import { sendStaticFile, staticFile, TEXT, withoutSourceMap } from './staticFiles.ts';
import type { StaticFile } from './staticFiles.ts';

/**
 * The interactive API reference at `/docs`: Swagger UI from the swagger-ui-dist package, served
 * from this process (no CDN: it works offline and behind a firewall), reading `/openapi.json`.
 */

/** The files of swagger-ui-dist that the page loads, by name under `/docs/`, with their types. */
const PACKAGE_FILES = {
  'swagger-ui.css': TEXT('text/css'),
  'index.css': TEXT('text/css'),
  'swagger-ui-bundle.js': TEXT('text/javascript'),
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
} as const;

/**
 * Starts Swagger UI on this service's document. No validatorUrl: by default Swagger UI sends the
 * document to an online validator for its badge.
 */
const INIT_SCRIPT = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>market-order-saga API reference</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
    <link rel="stylesheet" href="/docs/index.css" />
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32" />
    <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`;

/** The names under `/docs/` that are served (for the OpenAPI document). */
export const DOCS_ASSETS: readonly string[] = [...Object.keys(PACKAGE_FILES), 'init.js'];

/**
 * Only this origin: the page must not reach out to any other host. Swagger UI sets inline styles
 * and shows data: images.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

let loaded: ReadonlyMap<string, StaticFile> | undefined;

/**
 * The assets, read once per process. The package is found the way Node resolves it, which Deno
 * (with its node_modules directory) does the same way.
 */
function assets(): ReadonlyMap<string, StaticFile> {
  if (loaded) return loaded;
  const dir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const map = new Map<string, StaticFile>();
  for (const [name, type] of Object.entries(PACKAGE_FILES)) {
    const bytes = readFileSync(join(dir, name));
    const body = type.startsWith('image/') ? new Uint8Array(bytes) : withoutSourceMap(bytes.toString('utf8'));
    map.set(name, staticFile(body, type));
  }
  map.set('init.js', staticFile(INIT_SCRIPT, TEXT('text/javascript')));
  loaded = map;
  return map;
}

/**
 * Adds `GET /docs` and `GET /docs/:file` to `app`. The files are read here, so a missing package
 * fails at start rather than at the first visit.
 */
export function mountDocs(app: Hono): void {
  const files = assets();
  const page = staticFile(PAGE, TEXT('text/html'));
  app.get('/docs', (c) => sendStaticFile(c, page, CONTENT_SECURITY_POLICY));
  app.get('/docs/:file', (c) => {
    const name = c.req.param('file');
    const item = files.get(name);
    if (!item) throw new NotFoundError(`The API reference has no file ${name}`);
    return sendStaticFile(c, item);
  });
}
