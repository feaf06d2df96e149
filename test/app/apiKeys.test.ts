import { describe, expect, it } from 'vitest';
import { hashSecret, issueKey, keyIdOf, parseApiKeyList } from '../../src/app/apiKeys.ts';
import type { ApiKeyStore } from '../../src/app/apiKeys.ts';
import { loadConfig } from '../../src/config.ts';
import { runKeysCommand } from '../../src/cli/keys.ts';

const noRule = () => undefined;

describe('API_KEYS', () => {
  it('reads user keys and admin keys (a bare * marks an admin), hashed', () => {
    const keys = parseApiKeyList(' alice:secretA , bob:secretB,*:adminSecret,', noRule);
    expect(keys).toEqual([
      { keyId: 'env-1', role: 'user', userId: 'alice', hash: hashSecret('secretA') },
      { keyId: 'env-2', role: 'user', userId: 'bob', hash: hashSecret('secretB') },
      { keyId: 'env-3', role: 'admin', userId: null, hash: hashSecret('adminSecret') },
    ]);
  });

  it('percent-decodes user ids, so a user whose id is "*" (or holds , or :) can have a key too', () => {
    const keys = parseApiKeyList('%2A:s1,a%2Cb%3Ac:s2,caf%C3%A9:s3', noRule);
    expect(keys.map((k) => [k.role, k.userId])).toEqual([
      ['user', '*'],
      ['user', 'a,b:c'],
      ['user', 'café'],
    ]);
  });

  it('is empty when unset or blank', () => {
    expect(loadConfig({}).apiKeys).toEqual([]);
    expect(loadConfig({ API_KEYS: ' , ' }).apiKeys).toEqual([]);
  });

  it.each([
    ['alice', 'entry 1 must be "<user id>:<secret>"'],
    ['alice:Hidden1,bob:', 'entry 2: the secret must be letters, digits'],
    ['alice:Hidden1 Hidden2', 'entry 1: the secret must be'],
    ['alice:Hidden1,bob:Hidden1', 'entry 2: the same secret is given twice'],
    ['%E0%A4%A:Hidden1', 'entry 1: the user id is not valid percent-encoding'],
    ['%20:Hidden1', 'entry 1: the user id must not be empty'],
    [`${'u'.repeat(129)}:Hidden1`, 'entry 1: the user id must be at most 128 characters'],
  ])('refuses %j at start, naming the entry and never quoting a secret', (value, message) => {
    let error: Error | undefined;
    try {
      loadConfig({ API_KEYS: value });
    } catch (thrown) {
      error = thrown as Error;
    }
    expect(error?.message).toContain(`API_KEYS: ${message}`);
    expect(error?.message).not.toContain('Hidden');
  });
});

describe('issued keys', () => {
  it('carry a key id and a 256-bit secret, and are never the same twice', () => {
    const a = issueKey();
    const b = issueKey();
    expect(a.text).toMatch(/^mos_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(keyIdOf(a.text)).toBe(a.keyId);
    expect(a.hash).toEqual(hashSecret(a.text.slice(21)));
    expect(b.text).not.toBe(a.text);
    expect(b.keyId).not.toBe(a.keyId);
  });
});

describe('the keys command, misused', () => {
  /** Never reached: a malformed command is refused before the database is touched. */
  const untouched = new Proxy({} as ApiKeyStore, {
    get: () => () => Promise.reject(new Error('the store was used')),
  });
  const run = (...args: string[]) => runKeysCommand(args, untouched, { out: () => {}, err: () => {} });

  it.each([
    [[], 'Usage: market-order-saga keys'],
    [['rotate'], "unknown command 'rotate'"],
    [['create'], 'give either --user <user id> or --admin'],
    [['create', '--user', 'u1', '--admin'], "option '--user <user id>' cannot be used with option '--admin'"],
    [['create', '--user', ' '], 'must not be empty'],
    [['create', '--user', 'u1', '--label', 'x'.repeat(201)], 'must be at most 200 characters'],
    [['create', '--user', 'u1', '--colour', 'red'], "unknown option '--colour'"],
    [['revoke'], "missing required argument 'key id'"],
    [['revoke', 'mos_0123456789abcdef_x'], 'not a key id (16 hex digits'],
    [['list', 'everything'], "too many arguments for 'list'"],
  ])('keys %j → "%s", a usage error', async (args, message) => {
    const failure = run(...args);
    await expect(failure).rejects.toThrow(message);
    await expect(failure).rejects.toMatchObject({ exitCode: 2 });
  });

  it('never quotes a key pasted in place of a key id', async () => {
    const error = await run('revoke', 'mos_0123456789abcdef_secretpart').catch((e: unknown) => e);
    expect(error).toMatchObject({ exitCode: 2 });
    expect((error as Error).message).toContain('not a key id');
    expect((error as Error).message).not.toContain('secretpart');
  });
});
