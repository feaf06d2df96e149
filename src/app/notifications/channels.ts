import type { Database, Queryable } from '../ports/database.ts';
import type { Channel } from './transport.ts';

/** A user's notification channels as the API shows them: null where none is set. */
export interface UserChannels {
  readonly user_id: string;
  readonly telegram_chat_id: string | null;
  readonly email: string | null;
  /** When a channel was last changed; null for a user who never set one. */
  readonly updated_at: string | null;
}

/** A change to a user's channels: a value sets, null removes, absent leaves as it is. */
export interface ChannelChanges {
  readonly telegram_chat_id?: string | null;
  readonly email?: string | null;
}

/** Managing where users are notified (`PUT` / `GET /users/:userId/channels`). */
export interface ChannelsService {
  get(userId: string): Promise<UserChannels>;
  /** Applies every change in one transaction and answers the channels as they are after it. */
  update(userId: string, changes: ChannelChanges): Promise<UserChannels>;
}

const FIELD_OF: Record<Channel, keyof ChannelChanges> = { telegram: 'telegram_chat_id', email: 'email' };

interface ChannelRow {
  readonly channel: Channel;
  readonly address: string;
  readonly updated_at: Date;
}

/** A user's addresses by channel (the notifier reads them the same way the API does). */
export async function readAddresses(db: Queryable, userId: string): Promise<Map<Channel, string>> {
  const rows = await readRows(db, userId);
  return new Map(rows.map((row) => [row.channel, row.address]));
}

async function readRows(db: Queryable, userId: string): Promise<ChannelRow[]> {
  return db.query<ChannelRow>('SELECT channel, address, updated_at FROM user_channels WHERE user_id = $1', [
    userId,
  ]);
}

function view(userId: string, rows: readonly ChannelRow[]): UserChannels {
  const address = (channel: Channel) => rows.find((row) => row.channel === channel)?.address ?? null;
  const times = rows.map((row) => new Date(row.updated_at).getTime());
  return {
    user_id: userId,
    telegram_chat_id: address('telegram'),
    email: address('email'),
    updated_at: times.length > 0 ? new Date(Math.max(...times)).toISOString() : null,
  };
}

async function applyChange(tx: Queryable, userId: string, channel: Channel, address: string | null) {
  if (address === null) {
    await tx.query('DELETE FROM user_channels WHERE user_id = $1 AND channel = $2', [userId, channel]);
    return;
  }
  await tx.query(
    `INSERT INTO user_channels (user_id, channel, address) VALUES ($1, $2, $3)
     ON CONFLICT (user_id, channel) DO UPDATE SET address = EXCLUDED.address, updated_at = now()`,
    [userId, channel, address],
  );
}

/** Channels kept in `user_channels`; inputs are validated by the caller (src/http/channelsRequest.ts). */
export function createChannelsService(db: Database): ChannelsService {
  return {
    async get(userId) {
      return view(userId, await readRows(db, userId));
    },
    async update(userId, changes) {
      const rows = await db.transaction(async (tx) => {
        for (const [channel, field] of Object.entries(FIELD_OF) as [Channel, keyof ChannelChanges][]) {
          const address = changes[field];
          if (address !== undefined) await applyChange(tx, userId, channel, address);
        }
        return readRows(tx, userId);
      });
      return view(userId, rows);
    },
  };
}
