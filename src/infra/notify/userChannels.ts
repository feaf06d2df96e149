import type { Database, Queryable } from '../../app/ports/database.ts';
import type { ChannelAddress, UserChannelStore } from '../../app/notifications/channels.ts';
import type { Channel } from '../../app/notifications/transport.ts';

function readRows(db: Queryable, userId: string): Promise<ChannelAddress[]> {
  return db.query<ChannelAddress>(
    'SELECT channel, address, updated_at FROM user_channels WHERE user_id = $1',
    [userId],
  );
}

/** UserChannelStore on the `user_channels` table (migration 006), for PostgreSQL and PGlite alike. */
export function createUserChannelStore(db: Database): UserChannelStore {
  return {
    read: (userId) => readRows(db, userId),
    async readForOrder(orderId) {
      // The user is in the order's first event; a user without channels still gets one row.
      const rows = await db.query<{
        user_id: string | null;
        channel: Channel | null;
        address: string | null;
        updated_at: Date | null;
      }>(
        `SELECT o.user_id, c.channel, c.address, c.updated_at
         FROM (SELECT event_data->>'user_id' AS user_id FROM events
               WHERE aggregate_id = $1 AND version = 1 AND event_type = 'OrderAccepted') AS o
         LEFT JOIN user_channels c ON c.user_id = o.user_id`,
        [orderId],
      );
      const userId = rows[0]?.user_id;
      if (typeof userId !== 'string') return undefined;
      const channels = rows.flatMap((row) =>
        row.channel !== null && row.address !== null && row.updated_at !== null
          ? [{ channel: row.channel, address: row.address, updated_at: row.updated_at }]
          : [],
      );
      return { userId, channels };
    },
    update: (userId, changes) =>
      db.transaction(async (tx) => {
        for (const { channel, address } of changes) {
          if (address === null) {
            await tx.query('DELETE FROM user_channels WHERE user_id = $1 AND channel = $2', [
              userId,
              channel,
            ]);
            continue;
          }
          await tx.query(
            `INSERT INTO user_channels (user_id, channel, address) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, channel) DO UPDATE SET address = EXCLUDED.address, updated_at = now()`,
            [userId, channel, address],
          );
        }
        return readRows(tx, userId);
      }),
  };
}
