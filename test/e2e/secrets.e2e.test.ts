import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'amqplib';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { deleteTopology, topology } from '../../src/infra/bus/rabbit/topology.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { startTelegramEmulator } from '../helpers/notifyPeers.ts';
import { AMQP_URL } from '../helpers/rabbit.ts';
import { startService } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const NODE = [process.execPath, '--import', 'tsx', 'src/main.ts'];
const secret = (label: string) => `${label}-${randomBytes(9).toString('base64url')}`;

/** An SMTP server that takes mail only from `user` with `password` (AUTH PLAIN/LOGIN, no TLS). */
async function authenticatingMailServer(user: string, password: string) {
  const mails: string[] = [];
  const server = new SMTPServer({
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === user && auth.password === password) return callback(null, { user });
      callback(new Error('535 authentication failed'));
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        mails.push(session.envelope.rcptTo.map((r) => r.address).join(','));
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return { port, mails, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** An OTLP/HTTP (JSON) trace receiver: what the exporter posts, and with which headers. */
async function otlpReceiver() {
  const posts: { authorization: string | undefined; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') posts.push({ authorization: req.headers.authorization, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    posts,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('a full run with every secret configured and LOG_LEVEL=debug', () => {
  it('never writes a secret to its output, and every line about the order carries its id', async () => {
    const user = `user-${randomUUID()}`;
    const secrets = {
      userKey: secret('User-Key'),
      adminKey: secret('Admin-Key'),
      botToken: `${1e8 + Math.floor(Math.random() * 1e8)}:${secret('Bot')}`,
      smtpPassword: secret('Smtp-Pass'),
      databasePassword: secret('Pg-Pass'),
      otlpToken: secret('Otlp-Token'),
    };
    const telegram = await startTelegramEmulator();
    const mail = await authenticatingMailServer('mailer', secrets.smtpPassword);
    const otlp = await otlpReceiver();
    const dataDir = await mkdtemp(join(tmpdir(), 'mos-secrets-'));
    // With PostgreSQL and RabbitMQ at hand, their URLs carry credentials too (trust
    // authentication accepts the password; RabbitMQ's is guest's own).
    const brokered = Boolean(DATABASE_URL && AMQP_URL);
    const scratch = brokered ? await scratchPostgres({ max: 1 }) : undefined;
    const prefix = `secrets-${randomUUID().slice(0, 8)}.`;
    const databaseUrl = scratch ? new URL(scratch.url) : undefined;
    if (databaseUrl) databaseUrl.password = secrets.databasePassword;
    try {
      const service = await startService(NODE, {
        LOG_LEVEL: 'debug',
        DATA_DIR: dataDir,
        DATABASE_URL: databaseUrl?.toString() ?? '',
        AMQP_URL: brokered ? AMQP_URL : '',
        AMQP_PREFIX: prefix,
        API_KEYS: `${user}:${secrets.userKey},*:${secrets.adminKey}`,
        TELEGRAM_BOT_TOKEN: secrets.botToken,
        TELEGRAM_API_ROOT: telegram.apiRoot,
        SMTP_URL: `smtp://mailer:${secrets.smtpPassword}@127.0.0.1:${mail.port}`,
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer ${secrets.otlpToken}`,
        OTEL_BSP_SCHEDULE_DELAY: '200',
      });
      let orderId = '';
      try {
        const asUser = { authorization: `Bearer ${secrets.userKey}`, 'content-type': 'application/json' };
        const channels = await fetch(`${service.url}/users/${user}/channels`, {
          method: 'PUT',
          headers: asUser,
          body: JSON.stringify({ telegram_chat_id: '4242', email: 'trader@example.com' }),
        });
        expect(channels.status).toBe(200);
        // A wrong key is refused; its value must not be logged either.
        const wrong = await fetch(`${service.url}/orders`, {
          method: 'POST',
          headers: { ...asUser, authorization: `Bearer ${secrets.userKey}x` },
          body: '{}',
        });
        expect(wrong.status).toBe(401);
        const placed = await fetch(`${service.url}/orders`, {
          method: 'POST',
          headers: asUser,
          body: JSON.stringify({
            user_id: user,
            from_amount: '1000',
            from_currency: 'USDT',
            to_currency: 'BTC',
            order_type: 'market',
          }),
        });
        expect(placed.status).toBe(202);
        orderId = ((await placed.json()) as { order_id: string }).order_id;
        // Both notifications went out, through the credentials.
        await telegram.waitForSent(secrets.botToken, 1);
        await until(() => mail.mails.length === 1, 'the mail');
        await until(
          () => otlp.posts.some((post) => post.body.includes(orderId)),
          'the order’s spans at the OTLP receiver',
        );
      } finally {
        expect(await service.stop()).toBe(0);
      }
      // The exporter sent the configured header, and the spans of the request and the saga.
      expect(otlp.posts[0]?.authorization).toBe(`Bearer ${secrets.otlpToken}`);
      const exported = otlp.posts.map((post) => post.body).join('\n');
      expect(exported).toContain('"POST /orders"');
      expect(exported).toContain('"saga quotingPrice"');

      const output = service.output();
      for (const [name, value] of Object.entries(secrets)) {
        if (name === 'databasePassword' && !brokered) continue;
        expect(output.includes(value), `${name} appears in the output`).toBe(false);
      }
      // The token's secret half alone does not show either (a Bot API URL quoted in an error).
      expect(output).not.toContain(secrets.botToken.split(':')[1]);
      if (brokered) expect(output).not.toContain('guest:guest@');

      // Every JSON line that mentions the order names it in `order_id` (or, for a statement that
      // stored several orders at once, among `order_ids`).
      const lines = output
        .split('\n')
        .filter((line) => line.startsWith('{') && line.includes(orderId))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.length).toBeGreaterThan(3);
      const unmarked = lines
        .filter(
          (line) => line.order_id !== orderId && !(line.order_ids as string[] | undefined)?.includes(orderId),
        )
        .map((line) => line.msg);
      expect(unmarked).toEqual([]);
    } finally {
      await telegram.stop();
      await mail.stop();
      await otlp.stop();
      await rm(dataDir, { recursive: true, force: true });
      await scratch?.drop();
      if (brokered) {
        const connection = await connect(AMQP_URL ?? '');
        await deleteTopology(await connection.createChannel(), topology({ prefix })).catch(() => {});
        await connection.close();
      }
    }
  }, 120_000);
});
