import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { createDeadLetterCounter } from '../../src/infra/alerts.ts';
import { topology } from '../../src/infra/bus/rabbit/topology.ts';
import { migratedPglite } from '../helpers/databases.ts';

describe('the default dead-letter count', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  describe('on the in-process bus', () => {
    it('counts the rows of dead_letters', async () => {
      const counter = createDeadLetterCounter(db);
      expect(await counter.count()).toBe(0);
      await db.query(
        `INSERT INTO dead_letters (consumer, event_id, message, reason, error, attempts)
         VALUES ('notifier', $1, '{}', 'poison', 'cannot', 1)`,
        [randomUUID()],
      );
      expect(await counter.count()).toBe(1);
    });
  });

  describe('when the broker takes the connection and never answers', () => {
    let silent: Server;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      silent = createServer((socket) => void sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });

    it('gives up within its timeout rather than hold up the sweeper', async () => {
      const { port } = silent.address() as AddressInfo;
      const counter = createDeadLetterCounter(db, {
        amqpUrl: `amqp://guest:guest@127.0.0.1:${port}`,
        topology: topology(),
        timeoutMs: 300,
      });
      const started = Date.now();
      await expect(counter.count()).rejects.toThrow('RabbitMQ did not answer within 300 ms');
      expect(Date.now() - started).toBeLessThan(3_000);
      await counter.close();
    });
  });
});
