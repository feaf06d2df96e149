import type { Database, Queryable } from '../../app/ports/database.ts';
import type { ChannelAddress, UserChannelStore } from '../../app/notifications/channels.ts';

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
