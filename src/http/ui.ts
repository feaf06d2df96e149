import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';
import { NotFoundError } from '../domain/errors.ts';

/**
 * The built-in pages (`/ui/…`): static HTML, ES modules and CSS from `src/ui/`, and the browser
 * code of third-party packages from node_modules under `/ui/vendor/`, all from this process (no
 * CDN: they work offline). The pages need no key; the JSON calls they make carry one.
 *
 * Served the way src/http/docs.ts serves Swagger UI: read once at start (a missing file fails
 * then, not at the first visit), from paths resolved on the module's URL and the package's
 * location, so the same code runs on Node and on Deno.
 */

const TEXT = (type: string) => `${type}; charset=utf-8`;
const TYPES: Readonly<Record<string, string>> = {
  '.html': TEXT('text/html'),
  '.js': TEXT('text/javascript'),
  '.css': TEXT('text/css'),
  '.svg': 'image/svg+xml',
};

/** Third-party browser code, by the name it is served under, and its file in its package. */
const VENDOR_FILES: Readonly<Record<string, { readonly pkg: string; readonly file: string }>> = {
  // elkjs lays out the order page's statechart; the bundled build runs its layout in the page
  // itself (no worker file to serve).
  'elk.bundled.js': { pkg: 'elkjs', file: 'lib/elk.bundled.js' },
};

/** The names under `/ui/vendor/` (for the OpenAPI document). */
export const UI_VENDOR_FILES: readonly string[] = Object.keys(VENDOR_FILES);

/**
 * Only this origin: the pages must not reach out to any other host. The statechart is inline
 * SVG styled by the stylesheet.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'";

interface Asset {
  readonly body: string;
  readonly type: string;
  readonly etag: string;
}

function asset(body: string, type: string): Asset {
  return { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"` };
}

const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));

/** The files of `src/ui/` by name (no subdirectories), read once per process. */
function ownAssets(): Map<string, Asset> {
  const map = new Map<string, Asset>();
  for (const name of readdirSync(UI_DIR)) {
    const type = TYPES[extname(name)];
    if (type) map.set(name, asset(readFileSync(join(UI_DIR, name), 'utf8'), type));
  }
  return map;
}

function vendorAssets(): Map<string, Asset> {
  const require = createRequire(import.meta.url);
  const map = new Map<string, Asset>();
  for (const [name, { pkg, file }] of Object.entries(VENDOR_FILES)) {
    const dir = dirname(require.resolve(`${pkg}/package.json`));
    // Source-map comments dropped: the maps are not served, and developer tools would ask for them.
    const body = readFileSync(join(dir, file), 'utf8').replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
    map.set(name, asset(body, TYPES[extname(name)] ?? 'application/octet-stream'));
  }
  return map;
}

function send(c: Context, item: Asset) {
  c.header('ETag', item.etag);
  c.header('Cache-Control', 'no-cache');
  if (item.type.startsWith('text/html')) c.header('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  if (c.req.header('if-none-match') === item.etag) return c.body(null, 304);
  return c.body(item.body, 200, { 'content-type': item.type });
}

/**
 * Adds the order page to `app`: `GET /ui/orders/:id` (the page; it reads the id from its own
 * location), `GET /ui/assets/:file` (the files of src/ui/) and `GET /ui/vendor/:file`.
 */
export function mountUi(app: Hono): void {
  const own = ownAssets();
  const vendor = vendorAssets();
  const page = own.get('order.html');
  if (!page) throw new Error(`src/ui/order.html is missing (looked in ${UI_DIR})`);
  app.get('/ui/orders/:id', (c) => send(c, page));
  app.get('/ui/assets/:file', (c) => {
    const name = c.req.param('file');
    const item = own.get(name);
    if (!item) throw new NotFoundError(`The UI has no file ${name}`);
    return send(c, item);
  });
  app.get('/ui/vendor/:file', (c) => {
    const name = c.req.param('file');
    const item = vendor.get(name);
    if (!item) throw new NotFoundError(`The UI has no vendor file ${name}`);
    return send(c, item);
  });
}
