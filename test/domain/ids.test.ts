import { describe, expect, it } from 'vitest';
import { legacyOrderIdFor, LEGACY_ORDER_ID_NAMESPACE } from '../../src/domain/ids.ts';

describe('legacy order ids (before migration 011)', () => {
  it('are the ids keyed orders got then: uuidV5 of user and key in the old namespace', () => {
    expect(LEGACY_ORDER_ID_NAMESPACE).toBe('5b0c1f0e-2c55-4d8e-9a43-7f3a8e2d6b11');
    // Computed independently (Python's uuid.uuid5 of "user-1\nkey-1" in that namespace).
    expect(legacyOrderIdFor('user-1', 'key-1')).toBe('9caccb77-8112-5f1c-bf68-375ed7041989');
  });
});
