import { describe, expect, it } from 'vitest';
import { createLogger, logContext, scrubSecrets, secretsFromEnv } from '../../src/infra/logger.ts';

/** A logger at `level` whose lines are kept, parsed. */
function captured(secrets?: Parameters<typeof secretsFromEnv>[0]) {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const logger = createLogger('debug', {
    destination: {
      write: (line: string) => {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
    ...(secrets ? { secrets: secretsFromEnv(secrets) } : {}),
  });
  return { logger, lines, raw };
}

describe('when a log line would carry a secret', () => {
  it('drops the password of any URL with credentials, and keeps the rest of the URL', () => {
    expect(scrubSecrets('postgres://app:s3cret@db:5432/orders failed', [])).toBe(
      'postgres://app:[redacted]@db:5432/orders failed',
    );
    expect(scrubSecrets('amqp://guest:guest@127.0.0.1:5672', [])).toBe(
      'amqp://guest:[redacted]@127.0.0.1:5672',
    );
    // A host and port are no credentials.
    expect(scrubSecrets('http://127.0.0.1:5432/x', [])).toBe('http://127.0.0.1:5432/x');
  });

  it('drops a Telegram bot token from a Bot API URL', () => {
    expect(scrubSecrets('POST https://api.telegram.org/bot123456:AAH-x_y/sendMessage failed', [])).toBe(
      'POST https://api.telegram.org/bot[redacted]/sendMessage failed',
    );
  });

  it('drops every secret the environment configures, wherever it appears in the line', () => {
    const env = {
      API_KEYS: 'alice:alice-key-1,*:admin-key-2',
      TELEGRAM_BOT_TOKEN: 'bot-token-3',
      SMTP_URL: 'smtp://mailer:smtp%2Fpass@mail:25',
      DATABASE_URL: 'postgres://app:db-pass-4@db/orders',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer otlp-token-5',
    };
    const { logger, raw } = captured(env);
    const err = new Error('login failed for smtp/pass with alice-key-1', { cause: new Error('db-pass-4') });
    logger.error({ err, keys: ['admin-key-2'], token: 'bot-token-3', header: 'Bearer otlp-token-5' }, 'boom');
    const line = raw.join('');
    for (const value of [
      'alice-key-1',
      'admin-key-2',
      'bot-token-3',
      'smtp/pass',
      'smtp%2Fpass',
      'db-pass-4',
      'otlp-token-5',
    ])
      expect(line).not.toContain(value);
    expect(line).toContain('[redacted]');
  });
});

describe('when lines are logged inside nested contexts', () => {
  it('carries the fields of every enclosing context (a request, then the order it placed)', async () => {
    const { logger, lines } = captured();
    await logContext({ request_id: 'r-1' }, () =>
      logContext({ order_id: 'o-1' }, async () => {
        await Promise.resolve();
        logger.info({}, 'inside');
      }),
    );
    logger.info({}, 'outside');
    expect(lines[0]).toMatchObject({ request_id: 'r-1', order_id: 'o-1', msg: 'inside' });
    expect(lines[1]).not.toHaveProperty('order_id');
  });

  it("keeps one line's own fields off the later lines of the same context", async () => {
    const { logger, lines } = captured();
    await logContext({ order_id: 'o-2' }, async () => {
      logger.info({ user_id: 'u-1', from: '1000 USDT' }, 'order accepted');
      await Promise.resolve();
      logger.info({}, 'order completed');
    });
    expect(lines[0]).toMatchObject({ order_id: 'o-2', user_id: 'u-1', msg: 'order accepted' });
    expect(lines[1]).toMatchObject({ order_id: 'o-2', msg: 'order completed' });
    expect(lines[1]).not.toHaveProperty('user_id');
    expect(lines[1]).not.toHaveProperty('from');
  });
});
