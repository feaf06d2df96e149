import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelMisconfiguredError } from '../../../src/app/notifications/transport.ts';
import { createMailer } from '../../../src/infra/notify/mail.ts';

describe('the mailer when the SMTP server refuses its credentials', () => {
  let server: SMTPServer;
  let port: number;
  beforeAll(async () => {
    // A real SMTP server (smtp-server) that wants a login and knows no one.
    server = new SMTPServer({
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onAuth(_auth, _session, callback) {
        callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('throws ChannelMisconfiguredError: the settings are wrong, not the recipient', async () => {
    const mailer = createMailer({
      smtpUrl: `smtp://someone:wrong-password@127.0.0.1:${port}?pool=false`,
      from: 'test <test@example.test>',
      timeoutMs: 5_000,
    });
    try {
      const error = await mailer
        .send('trader@example.test', { subject: 'hi', text: 'hello' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ChannelMisconfiguredError);
      expect((error as Error).message).toMatch(/^SMTP 535: /);
      expect((error as Error).message).not.toContain('wrong-password');
    } finally {
      mailer.close();
    }
  });
});
