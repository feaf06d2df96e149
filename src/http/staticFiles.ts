import { createHash } from 'node:crypto';
import type { Context } from 'hono';

/**
 * Files this process serves from disk to a browser (the API reference under /docs, the pages under
 * /ui): read once, sent with an ETag so a revisit costs a 304, never from a CDN.
 */

export const TEXT = (type: string) => `${type}; charset=utf-8`;

export interface StaticFile {
  readonly body: Uint8Array<ArrayBuffer> | string;
  readonly type: string;
  readonly etag: string;
}

export function staticFile(body: Uint8Array<ArrayBuffer> | string, type: string): StaticFile {
  return { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"` };
}

/**
 * A script or stylesheet without its trailing source-map comment: the maps are not served, and a
 * browser's developer tools would ask for them.
 */
export const withoutSourceMap = (text: string): string =>
  text.replace(/\n?(?:\/\/# sourceMappingURL=\S+|\/\*# sourceMappingURL=\S+ ?\*\/)\s*$/, '\n');

/**
 * Sends `file` (304 when the client holds it already); `contentSecurityPolicy` goes with a page,
 * so that nothing it loads can reach another host.
 */
export function sendStaticFile(c: Context, file: StaticFile, contentSecurityPolicy?: string) {
  c.header('ETag', file.etag);
  c.header('Cache-Control', 'no-cache');
  c.header('X-Content-Type-Options', 'nosniff');
  if (contentSecurityPolicy) c.header('Content-Security-Policy', contentSecurityPolicy);
  if (c.req.header('if-none-match') === file.etag) return c.body(null, 304);
  return c.body(file.body, 200, { 'content-type': file.type });
}
