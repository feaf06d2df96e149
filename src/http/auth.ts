import type { Context, MiddlewareHandler } from 'hono';
import type { Principal } from '../app/apiKeys.ts';
import { problemResponse, RequestProblem } from './problems.ts';
import { isUiPagePath } from './ui.ts';

declare module 'hono' {
  interface ContextVariableMap {
    /** Who is calling: set by `requireApiKey` on every request. */
    principal: Principal;
  }
}

/** What the API needs of the key ring (src/app/apiKeys.ts): answered from memory, per request. */
export interface Authenticator {
  /** No key is configured at all: every request is let through as `open`. */
  isOpen(): boolean;
  /** Who holds this token, or undefined for an unknown or revoked key. */
  authenticate(token: string): Principal | undefined;
}

/**
 * Open whatever the keys: liveness, readiness, the API's own documentation, the UI's static pages
 * and files (the data they show is asked for with the key the page prompts for), and /whoami (a
 * page asks it whether it needs a key, and whether the one it holds is good, without a 401).
 */
const OPEN_PATHS = new Set(['/health', '/ready', '/openapi.json', '/docs', '/whoami']);
const isOpenPath = (path: string) => OPEN_PATHS.has(path) || path.startsWith('/docs/') || isUiPagePath(path);

/** `Bearer <token>` (RFC 6750); the token is a b64token, at most 512 characters. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]{1,512}=*) *$/i;

const OPEN: Principal = { kind: 'open' };

function unauthorized(c: Context, challenge: string, detail: string) {
  c.header('WWW-Authenticate', challenge);
  return problemResponse(c, 401, {
    type: 'urn:market-order-saga:problem:unauthorized',
    title: 'Unauthorized',
    detail,
  });
}

/**
 * With any key configured, every route but /health, /ready, /openapi.json, /docs, /whoami and the UI's pages needs
 * `Authorization: Bearer <key>`: 401 without a valid one. Sets `principal` on every request
 * (`open` when no key is configured, or when `auth` is not given at all).
 */
export function requireApiKey(auth: Authenticator | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (!auth || auth.isOpen()) {
      c.set('principal', OPEN);
      return next();
    }
    const header = c.req.header('authorization');
    if (header === undefined) {
      if (isOpenPath(c.req.path)) return next();
      return unauthorized(c, 'Bearer', 'This API needs a key: send "Authorization: Bearer <key>"');
    }
    const match = BEARER.exec(header);
    const principal = match?.[1] === undefined ? undefined : auth.authenticate(match[1]);
    if (principal) {
      c.set('principal', principal);
      return next();
    }
    if (isOpenPath(c.req.path)) return next();
    return match
      ? unauthorized(c, 'Bearer error="invalid_token"', 'The API key is not valid: unknown or revoked')
      : unauthorized(
          c,
          'Bearer error="invalid_request"',
          'The Authorization header must be "Bearer <key>" (the key as it was issued)',
        );
  };
}

/** Who is calling; `open` where no middleware set it. */
export const principalOf = (c: Context): Principal => c.get('principal') ?? OPEN;

/**
 * Refuses with 403 `forbidden` unless the caller may act for `ownerUserId`: its own user, an
 * admin, or the open API.
 */
export function assertCanAccess(c: Context, ownerUserId: string | undefined): void {
  const principal = principalOf(c);
  if (principal.kind !== 'user' || principal.userId === ownerUserId) return;
  throw new RequestProblem(
    403,
    'forbidden',
    'Forbidden',
    "This API key acts for another user: a user's key reaches only that user's orders, positions and channels",
  );
}
