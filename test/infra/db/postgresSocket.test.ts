import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { postgresDatabase, socketOf } from '../../../src/infra/db/postgres.ts';
import { DATABASE_URL } from '../../helpers/databases.ts';

describe('a DATABASE_URL naming a Unix socket as libpq does', () => {
  it('takes ?host=/dir as the socket directory and leaves every other URL alone', () => {
    expect(socketOf('postgres://app@localhost/orders?host=/var/run/postgresql')).toEqual({
      url: 'postgres://app@localhost/orders',
      host: '/var/run/postgresql',
    });
    expect(socketOf('postgres://app@db.example:6432/orders?sslmode=require')).toEqual({
      url: 'postgres://app@db.example:6432/orders?sslmode=require',
    });
    expect(socketOf('postgres://app@localhost/orders?host=db.example')).toEqual({
      url: 'postgres://app@localhost/orders?host=db.example',
    });
  });

  const socketDir = '/var/run/postgresql';
  it.runIf(DATABASE_URL && existsSync(`${socketDir}/.s.PGSQL.5432`))(
    'connects through the socket: the server sees no client address',
    async () => {
      const url = new URL(DATABASE_URL ?? '');
      url.host = 'localhost';
      url.searchParams.set('host', socketDir);
      const db = postgresDatabase(url.toString(), { max: 1 });
      try {
        expect(await db.query('SELECT inet_client_addr() AS addr')).toEqual([{ addr: null }]);
      } finally {
        await db.close();
      }
    },
  );
});
