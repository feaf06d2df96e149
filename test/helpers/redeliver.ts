import { RetryLaterError } from '../../src/app/messages.ts';
import type { Consumer, EventMessage } from '../../src/app/messages.ts';

/**
 * Delivers like a bus: again after a RetryLaterError, until handled, with a doubling backoff
 * (5 to 80 ms) as a bus would, so the put-off deliveries do not crowd out the one that sends.
 * @returns how many times the delivery was put off.
 */
export async function deliverUntilHandled(consumer: Consumer, message: EventMessage): Promise<number> {
  for (let putOff = 0; ; putOff++) {
    try {
      await consumer.handle(message);
      return putOff;
    } catch (error) {
      if (!(error instanceof RetryLaterError) || putOff > 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(80, 5 * 2 ** putOff)));
    }
  }
}
