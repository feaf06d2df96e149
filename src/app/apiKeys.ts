import { Buffer } from 'node:buffer';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from './ports/logger.ts';

/**
 * Who is calling the API: a user's key acts for that user only, an admin key for everyone, and
 * `open` means no key is configured at all (local use).
 */
export type Principal =
  | { readonly kind: 'user'; readonly userId: string }
  | { readonly kind: 'admin'; readonly keyId: string }
  | { readonly kind: 'open' };

export type KeyRole = 'user' | 'admin';

/** A key as the API checks it: who holds it and the SHA-256 of its secret, never the secret. */
export interface VerifiableKey {
  readonly keyId: string;
  readonly role: KeyRole;
  /** The user the key acts for; null for an admin key. */
  readonly userId: string | null;
  readonly hash: Buffer;
}

/** A stored key as `keys list` shows it. */
export interface ApiKeyRecord {
  readonly key_id: string;
  readonly role: KeyRole;
  readonly user_id: string | null;
  readonly label: string | null;
  readonly created_at: Date;
  readonly revoked_at: Date | null;
}

export type RevokeOutcome =
  | { readonly status: 'revoked'; readonly revokedAt: Date }
  | { readonly status: 'already_revoked'; readonly revokedAt: Date }
  | { readonly status: 'unknown' };

/** Where keys are kept (the `api_keys` table); every change is announced to the watchers. */
export interface ApiKeyStore {
  /** Keys not revoked, and whether any key was ever created (revoked ones included). */
  loadActive(): Promise<{ readonly keys: VerifiableKey[]; readonly anyCreated: boolean }>;
  create(key: VerifiableKey & { readonly label: string | null }): Promise<void>;
  revoke(keyId: string): Promise<RevokeOutcome>;
  /** Every key, newest first; only `userId`'s when given. */
  list(options?: { readonly userId?: string }): Promise<ApiKeyRecord[]>;
  /** Calls `onChange` after another process (or this one) created or revoked a key. */
  watch(onChange: () => void): Promise<() => Promise<void>>;
}

const KEY_PREFIX = 'mos';
/** `mos_<key id: 16 hex>_<secret: 43 base64url>`; the secret may itself hold `_` and `-`. */
const ISSUED_KEY = /^mos_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** SHA-256 of a secret. Enough for high-entropy random secrets: there is nothing to guess from it. */
export const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

/** A new key: the text handed out once, and what is stored of it. */
export function issueKey(): { readonly text: string; readonly keyId: string; readonly hash: Buffer } {
  const keyId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { text: `${KEY_PREFIX}_${keyId}_${secret}`, keyId, hash: hashSecret(secret) };
}

/** The key id of an issued key's text (not secret: `keys revoke` takes it), or undefined. */
export function keyIdOf(text: string): string | undefined {
  return ISSUED_KEY.exec(text)?.[1];
}

/** Characters of a Bearer token (RFC 6750's b64token), the only ones a secret may use. */
export const TOKEN_CHARACTERS = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Parses `API_KEYS`: comma-separated `<user id>:<secret>` entries, where a bare `*` for the user
 * marks an admin key. The user id is percent-decoded, so any id can be written (`%2A` is a user
 * whose id is `*`, `%2C` a comma, `%3A` a colon). Secrets are hashed here and never kept.
 * `checkUserId` applies the API's user id rules, answering why an id is refused.
 * @throws Error naming the entry by position, never quoting a secret.
 */
export function parseApiKeyList(
  text: string,
  checkUserId: (userId: string) => string | undefined,
): VerifiableKey[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const seen = new Set<string>();
  return entries.map((entry, index) => {
    const position = `entry ${index + 1}`;
    const colon = entry.indexOf(':');
    if (colon < 0) throw new Error(`${position} must be "<user id>:<secret>" (or "*:<secret>" for an admin)`);
    const owner = entry.slice(0, colon);
    const secret = entry.slice(colon + 1);
    if (!TOKEN_CHARACTERS.test(secret)) {
      throw new Error(
        `${position}: the secret must be letters, digits and - . _ ~ + / (as a Bearer token), at least one`,
      );
    }
    const hash = hashSecret(secret);
    const hex = hash.toString('hex');
    if (seen.has(hex)) throw new Error(`${position}: the same secret is given twice`);
    seen.add(hex);
    const keyId = `env-${index + 1}`;
    if (owner === '*') return { keyId, role: 'admin', userId: null, hash };
    let userId: string;
    try {
      userId = decodeURIComponent(owner);
    } catch {
      throw new Error(`${position}: the user id is not valid percent-encoding`);
    }
    const why = checkUserId(userId);
    if (why !== undefined) throw new Error(`${position}: the user id ${why}`);
    return { keyId, role: 'user', userId, hash };
  });
}

const principalOf = (key: VerifiableKey): Principal =>
  key.role === 'admin' ? { kind: 'admin', keyId: key.keyId } : { kind: 'user', userId: key.userId ?? '' };

/** Compared in constant time: how much of a hash matched never shows in the time taken. */
const sameHash = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);
const NO_HASH = Buffer.alloc(32);

export interface KeyRingOptions {
  readonly store: ApiKeyStore;
  /** Keys from the environment (`API_KEYS`), already hashed. */
  readonly configured?: readonly VerifiableKey[];
  readonly logger: Logger;
  /** Reload this often even without a notification (one lost while the listener reconnected). */
  readonly refreshMs?: number;
}

export interface KeyRing {
  /** Loads the keys and starts listening for changes; logs a warning when the API is open. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True while no key is configured at all: no API_KEYS and no key ever created. */
  isOpen(): boolean;
  /** Who holds `token`, or undefined for an unknown or revoked key. No database access. */
  authenticate(token: string): Principal | undefined;
  /** Resolves after the next reload that starts after this call (a change was announced). */
  nextReload(): Promise<void>;
}

export const API_KEYS_CHANGED = 'api_keys_changed';

/**
 * The keys the API accepts, held in memory: a request costs one SHA-256 and no query. The ring
 * reloads the table when a `keys` command (in any process) announces a change, so a revocation
 * takes effect within a round trip, and every `refreshMs` in case an announcement was lost.
 */
export function createKeyRing(options: KeyRingOptions): KeyRing {
  const { store, logger } = options;
  const configured = options.configured ?? [];
  // API_KEYS by the hex of their hash: a lookup by a SHA-256 digest tells an attacker nothing they
  // can steer (they cannot choose the digest), and the match is still confirmed in constant time.
  const configuredByHash = new Map(configured.map((key) => [key.hash.toString('hex'), key]));
  const refreshMs = options.refreshMs ?? 10_000;
  let stored = new Map<string, VerifiableKey>();
  let anyCreated = false;
  let waiters: Array<() => void> = [];
  let inFlight: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;

  const isOpen = () => configured.length === 0 && !anyCreated;

  async function loadOnce(): Promise<void> {
    const mine = waiters;
    waiters = [];
    const wasOpen = isOpen();
    try {
      const loaded = await store.loadActive();
      stored = new Map(loaded.keys.map((key) => [key.keyId, key]));
      anyCreated = loaded.anyCreated;
      if (wasOpen && !isOpen())
        logger.info({ keys: stored.size }, 'API keys configured: requests now need a key');
    } catch (error) {
      // Keep what was loaded: the next announcement or refresh tries again.
      logger.warn({ err: error }, 'reloading API keys failed; the keys loaded before stay in use');
    } finally {
      for (const resolve of mine) resolve();
    }
  }

  /** One load at a time; a change announced during a load gets a load of its own after it. */
  function reload(): Promise<void> {
    if (queued) return queued;
    if (inFlight) {
      queued = inFlight.then(() => {
        queued = undefined;
        return reload();
      });
      return queued;
    }
    inFlight = loadOnce().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  return {
    async start() {
      unlisten = await store.watch(() => void reload());
      await reload();
      timer = setInterval(() => void reload(), refreshMs);
      (timer as { unref?: () => void }).unref?.();
      if (isOpen()) {
        logger.warn(
          {},
          'No API key is configured: the API is OPEN to anyone who can reach it. Set API_KEYS or create a key with "npx market-order-saga keys create --user <id>" (or --admin)',
        );
      } else {
        logger.info({ configured: configured.length, stored: stored.size }, 'API keys required');
      }
    },
    async stop() {
      if (timer) clearInterval(timer);
      await unlisten?.();
      await inFlight;
    },
    isOpen,
    authenticate(token) {
      if (configured.length > 0) {
        const whole = hashSecret(token);
        const found = configuredByHash.get(whole.toString('hex'));
        if (found && sameHash(found.hash, whole)) return principalOf(found);
      }
      const issued = ISSUED_KEY.exec(token);
      if (!issued) return undefined;
      const key = stored.get(issued[1] ?? '');
      const matches = sameHash(key?.hash ?? NO_HASH, hashSecret(issued[2] ?? ''));
      return key && matches ? principalOf(key) : undefined;
    },
    nextReload: () => new Promise((resolve) => waiters.push(resolve)),
  };
}
