import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Channel } from '../../../src/app/notifications/transport.ts';
import type { Database } from '../../../src/app/ports/database.ts';
import { createUserChannelStore } from '../../../src/infra/notify/userChannels.ts';

/** What every UserChannelStore adapter must do; run on PGlite and PostgreSQL (stores.*.test.ts). */
export function userChannelStoreContract(db: () => Database): void {
  describe("the users' channels", () => {
    const store = () => createUserChannelStore(db());
    const aUser = () => `user-${randomUUID()}`;
    const addresses = (rows: readonly { channel: Channel; address: string }[]) =>
      rows
        .map(({ channel, address }) => ({ channel, address }))
        .sort((a, b) => a.channel.localeCompare(b.channel));

    describe('when a user never set a channel', () => {
      it('reads none', async () => {
        expect(await store().read(aUser())).toEqual([]);
      });
    });

    describe('when a user sets, changes and removes channels', () => {
      it('answers and reads the channels as they are after each update', async () => {
        const user = aUser();

        const set = await store().update(user, [
          { channel: 'telegram', address: '4242' },
          { channel: 'email', address: 'trader@example.test' },
        ]);
        const changed = await store().update(user, [
          { channel: 'telegram', address: '5353' },
          { channel: 'email', address: null },
        ]);

        expect(addresses(set)).toEqual([
          { channel: 'email', address: 'trader@example.test' },
          { channel: 'telegram', address: '4242' },
        ]);
        expect(addresses(changed)).toEqual([{ channel: 'telegram', address: '5353' }]);
        expect(addresses(await store().read(user))).toEqual([{ channel: 'telegram', address: '5353' }]);
        expect(changed[0]?.updated_at).toBeInstanceOf(Date);
      });
    });

    describe('when an update asks for nothing', () => {
      it('changes nothing and answers the channels as they are', async () => {
        const user = aUser();
        await store().update(user, [{ channel: 'email', address: 'trader@example.test' }]);

        expect(addresses(await store().update(user, []))).toEqual([
          { channel: 'email', address: 'trader@example.test' },
        ]);
      });
    });

    describe('when one change of an update fails', () => {
      it('applies none of them', async () => {
        const user = aUser();
        await store().update(user, [{ channel: 'telegram', address: '4242' }]);

        const failure = await store()
          .update(user, [
            { channel: 'telegram', address: '9999' },
            { channel: 'sms' as Channel, address: '+100000' },
          ])
          .catch((error: unknown) => error);

        expect(failure).toBeInstanceOf(Error);
        expect(addresses(await store().read(user))).toEqual([{ channel: 'telegram', address: '4242' }]);
      });
    });
  });
}
