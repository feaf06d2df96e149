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

/** One channel a user set: where to reach them on it, and since when. */
export interface ChannelAddress {
  readonly channel: Channel;
  readonly address: string;
  readonly updated_at: Date;
}

/** A channel's new address, or null to remove it. */
export interface ChannelChange {
  readonly channel: Channel;
  readonly address: string | null;
}

/**
 * Where users' channels are kept (table `user_channels`); src/infra/notify/userChannels.ts
 * implements it.
 */
export interface UserChannelStore {
  /** The channels a user set; none for a user who never set one. */
  read(userId: string): Promise<ChannelAddress[]>;
  /**
   * Whose order `orderId` is (from its OrderAccepted) and that user's channels, in one read;
   * undefined when no such order is stored.
   */
  readForOrder(
    orderId: string,
  ): Promise<{ readonly userId: string; readonly channels: ChannelAddress[] } | undefined>;
  /** Applies every change in one transaction and answers the user's channels as they are after it. */
  update(userId: string, changes: readonly ChannelChange[]): Promise<ChannelAddress[]>;
}

/** A user's addresses by channel (the notifier reads them the same way the API does). */
export function addressesOf(rows: readonly ChannelAddress[]): Map<Channel, string> {
  return new Map(rows.map((row) => [row.channel, row.address]));
}

function view(userId: string, rows: readonly ChannelAddress[]): UserChannels {
  const address = (channel: Channel) => rows.find((row) => row.channel === channel)?.address ?? null;
  const times = rows.map((row) => new Date(row.updated_at).getTime());
  return {
    user_id: userId,
    telegram_chat_id: address('telegram'),
    email: address('email'),
    updated_at: times.length > 0 ? new Date(Math.max(...times)).toISOString() : null,
  };
}

/** Users' channels; inputs are validated by the caller (src/http/channelsRequest.ts). */
export function createChannelsService(store: UserChannelStore): ChannelsService {
  return {
    async get(userId) {
      return view(userId, await store.read(userId));
    },
    async update(userId, changes) {
      const applied: ChannelChange[] = [];
      for (const [channel, field] of Object.entries(FIELD_OF) as [Channel, keyof ChannelChanges][]) {
        const address = changes[field];
        if (address !== undefined) applied.push({ channel, address });
      }
      return view(userId, await store.update(userId, applied));
    },
  };
}
