import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { createInbox } from '../../src/infra/inbox.ts';
import { aMessage } from '../helpers/messages.ts';

/** What every Inbox adapter must do; run on PGlite and PostgreSQL (stores.*.test.ts). */
export function inboxContract(db: () => Database): void {
  describe('the inbox', () => {
    const recorded = async (eventId: string) =>
      db().query<{ processed_by: string }>(
        'SELECT processed_by FROM processed_events WHERE event_id = $1 ORDER BY processed_by',
        [eventId],
      );

    describe('when a consumer marks a message, twice', () => {
      it('records it once for that consumer', async () => {
        const message = aMessage('OrderAccepted');
        const inbox = createInbox(db());

        await inbox.mark('consumer-a', message);
        await inbox.mark('consumer-a', message);

        expect(await recorded(message.event_id)).toEqual([{ processed_by: 'consumer-a' }]);
      });
    });

    describe('when two consumers mark the same message', () => {
      it('records it for each', async () => {
        const message = aMessage('OrderCompleted');

        await createInbox(db()).mark('consumer-a', message);
        await createInbox(db()).mark('consumer-b', message);

        expect(await recorded(message.event_id)).toEqual([
          { processed_by: 'consumer-a' },
          { processed_by: 'consumer-b' },
        ]);
      });
    });

    describe('when the mark is made in a transaction that rolls back', () => {
      it('records nothing: the mark commits with the handler effects or not at all', async () => {
        const message = aMessage('OrderFailed');

        const rolledBack = await db()
          .transaction(async (tx) => {
            await createInbox(tx).mark('consumer-a', message);
            throw new Error('the handler failed after marking');
          })
          .catch((error: unknown) => error);

        expect(rolledBack).toMatchObject({ message: 'the handler failed after marking' });
        expect(await recorded(message.event_id)).toEqual([]);
      });
    });
  });
}
