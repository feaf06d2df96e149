import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { givenUpReason } from '../../../src/app/notifications/notificationStore.ts';
import type { Lease, NotificationDraft } from '../../../src/app/notifications/notificationStore.ts';
import { CHANNELS } from '../../../src/app/notifications/transport.ts';
import type { Database } from '../../../src/app/ports/database.ts';
import { createNotificationStore } from '../../../src/infra/notify/notificationStore.ts';

const T0 = Date.parse('2026-11-24T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms);
const MINUTE = 60_000;

/** A lease taken at `now` for `ms`. */
const leaseAt = (now: Date, ms = 2 * MINUTE): Lease => ({
  token: randomUUID(),
  now,
  until: new Date(now.getTime() + ms),
});

const aDraft = (overrides: Partial<NotificationDraft> = {}): NotificationDraft => {
  const orderId = randomUUID();
  return {
    event_id: randomUUID(),
    channel: 'telegram',
    order_id: orderId,
    user_id: `user-${orderId}`,
    recipient: '4242',
    subject: `Order ${orderId.slice(0, 8)} completed`,
    text: `Order ${orderId.slice(0, 8)} completed: 1000 USDT → 0.01 BTC`,
    ...overrides,
  };
};

/**
 * What every NotificationStore adapter must do; run on PGlite and PostgreSQL (stores.*.test.ts),
 * each on a database of its own: a claim takes every due row of a channel. The store is given
 * its clock (`lease.now`), so the tests move time by passing it.
 */
export function notificationStoreContract(db: () => Database): void {
  // The notifier's store group-commits; every promise holds either way.
  describe.each([
    ['a statement per call', undefined],
    ['group-committed', { lanes: 1 }],
  ] as const)('the notification store (%s)', (_, batching) => {
    const store = () => createNotificationStore(db(), batching);
    const row = async (draft: NotificationDraft) => {
      const [found] = await db().query<{ status: string; error: string | null; attempts: number }>(
        'SELECT status, error, attempts FROM notifications WHERE event_id = $1 AND channel = $2',
        [draft.event_id, draft.channel],
      );
      return found;
    };

    // Every row a test left sending is settled, so the next test's claims see only its own rows.
    afterEach(async () => {
      for (const channel of CHANNELS) {
        for (const held of await store().claimDue(channel, 1_000, leaseAt(at(365 * 24 * 60 * MINUTE))))
          await store().record(held, { status: 'skipped', reason: 'test over' });
      }
    });

    describe('when a notifier creates a notification to send', () => {
      it('holds it under its lease, and a second notifier finds it busy until the lease ends', async () => {
        const draft = aDraft();
        const lease = leaseAt(at(0));

        const first = await store().create(draft, lease, undefined);
        const second = await store().create(draft, leaseAt(at(1_000)), undefined);

        const { skipped: _none, ...fields } = draft;
        expect(first).toEqual({
          status: 'held',
          notification: { ...fields, attempts: 1, created_at: at(0), token: lease.token },
        });
        expect(second).toEqual({ status: 'busy', leaseUntil: lease.until });
        expect(await store().standing(draft.event_id, 2, at(1_000))).toEqual({
          status: 'busy',
          leaseUntil: lease.until,
        });
      });
    });

    describe("when a notifier creates a message's channels in one statement", () => {
      it('answers each as create would: held, skipped or waiting when new, as it stands when it existed', async () => {
        const telegram = aDraft();
        const email = aDraft({
          event_id: telegram.event_id,
          order_id: telegram.order_id,
          user_id: telegram.user_id,
          channel: 'email',
          recipient: null,
          skipped: 'the user has no email address',
        });
        const lease = leaseAt(at(0));

        const first = await store().createAll(
          [
            { draft: telegram, waitReason: undefined },
            { draft: email, waitReason: undefined },
          ],
          lease,
        );
        const again = await store().createAll(
          [
            { draft: telegram, waitReason: undefined },
            { draft: email, waitReason: undefined },
          ],
          leaseAt(at(1_000)),
        );
        const failing = aDraft();
        const waiting = await store().createAll([{ draft: failing, waitReason: 'Telegram is down' }], lease);

        const { skipped: _none, ...fields } = telegram;
        expect(first).toEqual([
          { status: 'held', notification: { ...fields, attempts: 1, created_at: at(0), token: lease.token } },
          { status: 'skipped' },
        ]);
        expect(again).toEqual([{ status: 'busy', leaseUntil: lease.until }, { status: 'settled' }]);
        expect(waiting).toEqual([{ status: 'waiting' }]);
        expect(await row(email)).toEqual({
          status: 'skipped',
          error: 'the user has no email address',
          attempts: 0,
        });
        expect(await row(failing)).toEqual({ status: 'sending', error: 'Telegram is down', attempts: 0 });
      });
    });

    describe('when there is nothing to send on a channel', () => {
      it('records the notification skipped with the reason, and settled for later deliveries', async () => {
        const draft = aDraft({ recipient: null, skipped: 'the user has no Telegram chat id' });

        expect(await store().create(draft, leaseAt(at(0)), undefined)).toEqual({ status: 'skipped' });
        expect(await store().create(draft, leaseAt(at(1_000)), undefined)).toEqual({ status: 'settled' });
        expect(await row(draft)).toEqual({
          status: 'skipped',
          error: 'the user has no Telegram chat id',
          attempts: 0,
        });
      });
    });

    describe('when the channel is failing as the notification is created', () => {
      it('leaves it waiting for the retry loop, which claims it at once', async () => {
        const draft = aDraft();

        const created = await store().create(draft, leaseAt(at(0)), 'Telegram is down');
        const again = await store().create(draft, leaseAt(at(1_000)), undefined);
        const retry = leaseAt(at(2_000));
        const claimed = await store().claimDue('telegram', 10, retry);

        expect(created).toEqual({ status: 'waiting' });
        expect(again).toEqual({ status: 'queued' });
        expect(claimed.map((held) => [held.event_id, held.attempts, held.token])).toEqual([
          [draft.event_id, 1, retry.token],
        ]);
      });
    });

    describe("when a message's notifications are looked up", () => {
      it('is open until every channel has its row, and settled once none is held', async () => {
        const telegram = aDraft({ skipped: 'no chat id', recipient: null });
        const email = aDraft({ event_id: telegram.event_id, channel: 'email', recipient: 'a@example.test' });

        expect(await store().standing(telegram.event_id, 2, at(0))).toEqual({ status: 'open' });
        await store().create(telegram, leaseAt(at(0)), undefined);
        expect(await store().standing(telegram.event_id, 2, at(0))).toEqual({ status: 'open' });
        const held = await store().create(email, leaseAt(at(0)), undefined);
        if (held.status !== 'held') throw new Error(`expected held, got ${held.status}`);
        await store().record(held.notification, { status: 'sent', at: at(500) });

        expect(await store().standing(telegram.event_id, 2, at(1_000))).toEqual({ status: 'settled' });
      });
    });

    describe('when a holder stops while sending (its lease expires)', () => {
      it('is claimed again only after the lease, oldest due first, up to the limit', async () => {
        const drafts = [aDraft(), aDraft(), aDraft()];
        for (const [i, draft] of drafts.entries())
          await store().create(draft, leaseAt(at(i * 1_000), MINUTE), undefined);

        const early = await store().claimDue('telegram', 10, leaseAt(at(MINUTE - 1)));
        const late = await store().claimDue('telegram', 2, leaseAt(at(MINUTE + 5_000)));

        expect(early).toEqual([]);
        expect(late.map((held) => [held.event_id, held.attempts])).toEqual([
          [drafts[0]?.event_id, 2],
          [drafts[1]?.event_id, 2],
        ]);
      });
    });

    describe('when the holder records a send', () => {
      it('is recorded sent, and the holder learns it still held the lease', async () => {
        const draft = aDraft();
        const created = await store().create(draft, leaseAt(at(0)), undefined);
        if (created.status !== 'held') throw new Error(`expected held, got ${created.status}`);

        const recorded = await store().record(created.notification, { status: 'sent', at: at(100) });

        expect(recorded).toEqual({ heldLease: true });
        expect(await row(draft)).toMatchObject({ status: 'sent', error: null });
      });
    });

    describe('when another notifier took the notification over after the lease expired', () => {
      it("records the first holder's send, telling it the lease was lost, but not its failure", async () => {
        const sent = aDraft();
        const failed = aDraft();
        const first = await Promise.all(
          [sent, failed].map((draft) => store().create(draft, leaseAt(at(0), MINUTE), undefined)),
        );
        const taken = await store().claimDue('telegram', 10, leaseAt(at(2 * MINUTE)));
        expect(taken).toHaveLength(2);
        const [sentFirst, failedFirst] = first.map((attempt) => {
          if (attempt.status !== 'held') throw new Error(`expected held, got ${attempt.status}`);
          return attempt.notification;
        });
        if (!sentFirst || !failedFirst) throw new Error('two notifications were created');

        const lateSend = await store().record(sentFirst, { status: 'sent', at: at(2 * MINUTE + 1) });
        const lateFailure = await store().record(failedFirst, { status: 'failed', reason: 'chat not found' });

        expect(lateSend).toEqual({ heldLease: false });
        expect(await row(sent)).toMatchObject({ status: 'sent' });
        expect(lateFailure).toEqual({ heldLease: false });
        expect(await row(failed)).toMatchObject({ status: 'sending', error: null });
      });
    });

    describe('when a send failed for now and is scheduled for a retry', () => {
      it('waits with its error until the next attempt, then is claimed', async () => {
        const draft = aDraft();
        const created = await store().create(draft, leaseAt(at(0)), undefined);
        if (created.status !== 'held') throw new Error(`expected held, got ${created.status}`);

        await store().scheduleRetry(created.notification, 'Telegram answered 502', at(10_000));

        expect(await row(draft)).toMatchObject({ status: 'sending', error: 'Telegram answered 502' });
        expect(await store().claimDue('telegram', 10, leaseAt(at(9_999)))).toEqual([]);
        const due = await store().claimDue('telegram', 10, leaseAt(at(10_000)));
        expect(due.map((held) => [held.event_id, held.attempts])).toEqual([[draft.event_id, 2]]);
      });

      it('is left to whoever took it over once the lease was lost', async () => {
        const draft = aDraft();
        const created = await store().create(draft, leaseAt(at(0), MINUTE), undefined);
        if (created.status !== 'held') throw new Error(`expected held, got ${created.status}`);
        const [taken] = await store().claimDue('telegram', 10, leaseAt(at(2 * MINUTE)));

        await store().scheduleRetry(created.notification, 'Telegram answered 502', at(10_000));

        expect(taken?.event_id).toBe(draft.event_id);
        expect(await row(draft)).toMatchObject({ status: 'sending', error: null, attempts: 2 });
        expect(await store().claimDue('telegram', 10, leaseAt(at(2 * MINUTE + 1)))).toEqual([]);
      });
    });

    describe('when notifications are still unsent at the retry horizon', () => {
      it('records the unleased ones failed with their last error, and leaves the rest', async () => {
        const retried = aDraft();
        const neverTried = aDraft({ channel: 'email', recipient: 'b@example.test' });
        const young = aDraft();
        const leased = aDraft();
        const retriedHeld = await store().create(retried, leaseAt(at(0)), undefined);
        if (retriedHeld.status !== 'held') throw new Error(`expected held, got ${retriedHeld.status}`);
        await store().scheduleRetry(retriedHeld.notification, 'Telegram answered 502', at(MINUTE));
        await store().create(neverTried, leaseAt(at(0)), 'SMTP is down');
        await store().create(young, leaseAt(at(10 * MINUTE)), 'Telegram is down');
        await store().create(leased, leaseAt(at(0), 60 * MINUTE), undefined);

        const horizon = at(5 * MINUTE);
        const now = at(30 * MINUTE);
        const telegram = await store().giveUpOverdue('telegram', horizon, now, '5 min');
        const email = await store().giveUpOverdue('email', horizon, now, '5 min');

        expect(telegram).toEqual([
          {
            event_id: retried.event_id,
            order_id: retried.order_id,
            error: givenUpReason('5 min', 'Telegram answered 502'),
          },
        ]);
        expect(email).toEqual([
          {
            event_id: neverTried.event_id,
            order_id: neverTried.order_id,
            error: givenUpReason('5 min', 'SMTP is down'),
          },
        ]);
        expect(await row(retried)).toMatchObject({ status: 'failed' });
        expect(await row(young)).toMatchObject({ status: 'sending' });
        expect(await row(leased)).toMatchObject({ status: 'sending' });
      });
    });
  });

  describe('the notification store, group-committed', () => {
    // One lane: while a statement is in flight, everything asked meanwhile goes in the next one.
    const store = () => createNotificationStore(db(), { lanes: 1 });

    describe('when two deliveries of a message create its rows in the same statement', () => {
      it('holds each row for the first of them only; the second finds it busy', async () => {
        const batched = store();
        const drafts = [aDraft(), aDraft()];
        const leases = [leaseAt(at(0)), leaseAt(at(0)), leaseAt(at(0))];
        const [first, , second] = await Promise.all([
          batched.createAll(
            drafts.map((draft) => ({ draft, waitReason: undefined })),
            leases[0] as Lease,
          ),
          // Queued behind the first statement, so that these two share the next one.
          batched.createAll([{ draft: aDraft(), waitReason: undefined }], leases[1] as Lease),
          batched.createAll(
            drafts.map((draft) => ({ draft, waitReason: undefined })),
            leases[2] as Lease,
          ),
        ]);

        expect(first?.map((attempt) => attempt.status)).toEqual(['held', 'held']);
        expect(second).toEqual(drafts.map(() => ({ status: 'busy', leaseUntil: leases[0]?.until })));
      });
    });

    describe('when several sends are recorded at once', () => {
      it('answers each, and a row recorded twice is recorded once, by its holder', async () => {
        const batched = store();
        const made = await batched.createAll(
          [aDraft(), aDraft(), aDraft()].map((draft) => ({ draft, waitReason: undefined })),
          leaseAt(at(0)),
        );
        const held = made.map((attempt) => {
          if (attempt.status !== 'held') throw new Error(`expected held, got ${attempt.status}`);
          return attempt.notification;
        });
        const [a, b, c] = held as [(typeof held)[0], (typeof held)[0], (typeof held)[0]];

        const answers = await Promise.all([
          batched.record(a, { status: 'sent', at: at(100) }),
          batched.record(b, { status: 'sent', at: at(100) }),
          batched.record(c, { status: 'failed', reason: 'chat not found' }),
          batched.record(a, { status: 'failed', reason: 'a late second record' }),
        ]);

        expect(answers).toEqual([
          { heldLease: true },
          { heldLease: true },
          { heldLease: true },
          { heldLease: false },
        ]);
        const statuses = await db().query<{ event_id: string; status: string; error: string | null }>(
          'SELECT event_id::text AS event_id, status, error FROM notifications WHERE event_id = ANY($1::uuid[])',
          [held.map((n) => n.event_id)],
        );
        const byEvent = new Map(statuses.map((row) => [row.event_id, row]));
        expect(byEvent.get(a.event_id)).toMatchObject({ status: 'sent', error: null });
        expect(byEvent.get(b.event_id)).toMatchObject({ status: 'sent', error: null });
        expect(byEvent.get(c.event_id)).toMatchObject({ status: 'failed', error: 'chat not found' });
      });
    });
  });
}
