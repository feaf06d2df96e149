import { InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { parseFailpoints } from '../app/failpoints.ts';
import { ROLES } from '../config.ts';
import { checkedLabel, checkedUserId } from '../ops/keysCommand.ts';
import { CliError, EXIT } from './exitCodes.ts';

/**
 * Parsers of option and argument values for commander: a bad value is refused with the reason
 * (commander prefixes the option's name) and exit code 2, before anything runs.
 */

/** Wraps a check that throws Error into a commander parser. */
const refusing =
  <T>(check: (value: string) => T) =>
  (value: string): T => {
    try {
      return check(value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };

/** An integer from `min` to `max`. */
export const integer = (min: number, max: number) =>
  refusing((value) => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
      throw new Error(`must be a whole number from ${min} to ${max}`);
    return Number(value);
  });

export const port = integer(0, 65535);

/** ROLES as `start --roles` takes them: a comma-separated list of roles. */
export const roles = refusing((value) => {
  const named = value
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  const unknown = named.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (named.length === 0 || unknown.length > 0)
    throw new Error(`must be a comma-separated list of ${ROLES.join(', ')}`);
  return named.join(',');
});

/** WORKERS as `start --workers` takes it. */
export const workers = refusing((value) => {
  if (value === 'auto') return value;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 64)
    throw new Error('must be a number from 1 to 64, or auto (one per core)');
  return value;
});

/** FAILPOINTS as `start --failpoints` takes it: checked here, passed on as written. */
export const failpoints = refusing((value) => {
  parseFailpoints(value);
  return value;
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An order id: a UUID, as the API hands them out. */
export const orderId = refusing((value) => {
  if (!UUID.test(value)) throw new Error('must be an order id (a UUID, as POST /orders answers it)');
  return value.toLowerCase();
});

export const userId = refusing(checkedUserId);
export const label = refusing(checkedLabel);

/** A cancel's reason: 1 to 200 characters, as the admin API takes it. */
export const reason = refusing((value) => {
  const text = value.trim();
  if (text.length === 0 || text.length > 200) throw new Error('must be 1 to 200 characters');
  return text;
});

/**
 * The service's URL when `--url` is not given: 127.0.0.1 on PORT (8080 when unset), where `start`
 * listens with the same environment.
 * @throws CliError (usage) naming PORT when it is not a port.
 */
export function defaultServiceUrl(env: Readonly<Record<string, string | undefined>>): string {
  const parsed = z.coerce
    .number()
    .int()
    .min(1)
    .max(65535)
    .default(8080)
    .safeParse(env.PORT || undefined);
  if (!parsed.success)
    throw new CliError(EXIT.usage, 'Invalid configuration:\n  PORT: must be a port number from 1 to 65535');
  return `http://127.0.0.1:${parsed.data}`;
}
