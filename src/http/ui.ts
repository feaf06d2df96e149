import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';
import { NotFoundError } from '../domain/errors.ts';
import { sendStaticFile, staticFile, TEXT, withoutSourceMap } from './staticFiles.ts';
import type { StaticFile } from './staticFiles.ts';

/**
 * The browser pages (`/ui`): plain HTML, ES modules and CSS from `src/ui/`, served by this
 * process from local files (no CDN, no build step: they work offline), like /docs. The pages are
 * static and need no key; the data they show comes from the API, with the key the page asks for.
 *
 * - `GET /ui` → dashboard.html; `GET /ui/orders/:id` → order.html (the page reads the id from
 *   its address);
 * - `GET /ui/assets/<file>` → any other file of `src/ui/`;
 * - `GET /ui/vendor/<file>` → third-party browser code, from node_modules (VENDOR).
 */

const TYPES: Readonly<Record<string, string>> = {
  '.html': TEXT('text/html'),
  '.js': TEXT('text/javascript'),
  '.css': TEXT('text/css'),
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** Third-party browser files by the name they are served under, and where the package keeps them. */
export const VENDOR: Readonly<Record<string, { readonly pkg: string; readonly file: string }>> = {
  // elkjs lays out the order page's statechart; the bundled build runs its layout in the page
  // itself (no worker file to serve).
  'elk.bundled.js': { pkg: 'elkjs', file: 'lib/elk.bundled.js' },
};

/**
 * Only this origin: no page may reach another host (the browser test checks it too). The pages
 * set no inline script; the statechart's layout (elkjs) runs in the page.
 */
export const UI_CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; connect-src 'self'; frame-ancestors 'none'";

function load(path: string, type: string): StaticFile {
  const bytes = readFileSync(path);
  return staticFile(type.startsWith('image/png') ? new Uint8Array(bytes) : bytes.toString('utf8'), type);
}

function loadVendor(path: string): StaticFile {
  return staticFile(withoutSourceMap(readFileSync(path, 'utf8')), TEXT('text/javascript'));
}

/** The directory of the pages: `src/ui/` beside this module's folder (Node and Deno alike). */
const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));

/** The files of `src/ui/` by name, and the vendor files whose packages are installed. */
function assets(): { files: Map<string, StaticFile>; vendor: Map<string, StaticFile> } {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(UI_DIR)) {
    const type = TYPES[extname(name)];
    if (type) files.set(name, load(join(UI_DIR, name), type));
  }
  const vendor = new Map<string, StaticFile>();
  const require = createRequire(import.meta.url);
  for (const [name, { pkg, file }] of Object.entries(VENDOR)) {
    let path: string;
    try {
      path = join(require.resolve(`${pkg}/package.json`).replace(/package\.json$/, ''), file);
    } catch {
      continue; // not installed: the page that needs it says so; the rest of the UI works
    }
    if (existsSync(path)) vendor.set(name, loadVendor(path));
  }
  return { files, vendor };
}

const send = (c: Context, item: StaticFile) =>
  sendStaticFile(c, item, item.type.startsWith('text/html') ? UI_CONTENT_SECURITY_POLICY : undefined);

/** Whether `path` is one of the static UI paths, open whatever the keys (src/http/auth.ts). */
export const isUiPagePath = (path: string): boolean =>
  path === '/ui' || /^\/ui\/(?:orders|assets|vendor)\/[^/]+$/.test(path);

/** Adds the pages and their files to `app`; the files are read here, once. */
export function mountUiPages(app: Hono): void {
  const { files, vendor } = assets();
  const page = (name: string) => (c: Context) => {
    const item = files.get(name);
    if (!item) throw new NotFoundError(`The page ${name} is not installed`);
    return send(c, item);
  };
  app.get('/ui', page('dashboard.html'));
  app.get('/ui/orders/:id', page('order.html'));
  app.get('/ui/assets/:file', (c) => {
    const name = c.req.param('file');
    const item = files.get(name);
    if (!item) throw new NotFoundError(`The UI has no file ${name}`);
    return send(c, item);
  });
  app.get('/ui/vendor/:file', (c) => {
    const name = c.req.param('file');
    const item = vendor.get(name);
    if (!item) {
      const known = VENDOR[name];
      throw new NotFoundError(
        known
          ? `${name} comes from the package ${known.pkg}, which is not installed (npm ci)`
          : `The UI has no vendor file ${name}`,
      );
    }
    return send(c, item);
  });
}
