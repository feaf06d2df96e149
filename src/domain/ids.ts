import { createHash } from 'node:crypto';

/**
 * Ids derived from the order id, so a saga step run twice names the same position and the same
 * swap, and the second run finds the first one's work instead of repeating it.
 */

/** Namespace for position ids. Fixed forever: changing it would orphan every stored position. */
export const POSITION_ID_NAMESPACE = 'fc2bb1e3-9a2d-4252-acfd-08da6b571c65';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The few namespaces' bytes, checked and decoded once (uuidV5 runs for every keyed order). */
const namespaces = new Map<string, Buffer>();

function namespaceBytes(namespace: string): Buffer {
  let bytes = namespaces.get(namespace);
  if (!bytes) {
    if (!UUID.test(namespace)) throw new Error(`Namespace ${namespace} is not a UUID`);
    bytes = Buffer.from(namespace.replaceAll('-', ''), 'hex');
    namespaces.set(namespace, bytes);
  }
  return bytes;
}

/**
 * A name-based UUID (RFC 9562 version 5): SHA-1 over the namespace's bytes and the name's UTF-8
 * bytes, with the version and variant bits set.
 */
export function uuidV5(name: string, namespace: string): string {
  const hash = createHash('sha1').update(namespaceBytes(namespace)).update(name, 'utf8').digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Namespace of the ids that orders placed with an Idempotency-Key got before migration 011:
 * `uuidV5(user_id + "\n" + key)`. No new id is derived from it (ids are random now, mapped to
 * their keys in `idempotency_keys`, and cannot be computed from public inputs). It is kept only so
 * that a request sent just before the upgrade and retried after it finds the order it placed
 * instead of placing a second one (see acceptWithKey in src/app/orders.ts). Fixed forever: it must
 * reproduce the ids already stored. Once every deployment has run the new code for longer than the
 * key TTL (24 h), no legacy order can match a claim any more and this can go.
 */
export const LEGACY_ORDER_ID_NAMESPACE = '5b0c1f0e-2c55-4d8e-9a43-7f3a8e2d6b11';

/** The id an order placed by `userId` with Idempotency-Key `key` got before migration 011. */
export function legacyOrderIdFor(userId: string, key: string): string {
  return uuidV5(`${userId}\n${key}`, LEGACY_ORDER_ID_NAMESPACE);
}

/** The id of the position an order's swap is booked into; the same for every run of the saga. */
export function positionIdFor(orderId: string): string {
  return uuidV5(orderId, POSITION_ID_NAMESPACE);
}

/** The key the venue deduplicates an order's swap on, and looks it up by after a timeout. */
export function idempotencyKeyFor(orderId: string): string {
  return `swap-${orderId}`;
}
