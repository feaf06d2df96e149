import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';

describe('the configuration of metrics and alerts', () => {
  describe('when nothing is set', () => {
    it('counts a saga stuck, and alerts, after SWEEP_STALE_MS, and messages no operator', () => {
      const config = loadConfig({ SWEEP_STALE_MS: '45000' });
      expect(config.stuckAfterMs).toBe(45_000);
      expect(config.alerts).toEqual({ stuckAfterMs: 45_000, telegramChatId: undefined, email: undefined });
    });
  });

  describe('when STUCK_AFTER_MS is set', () => {
    it('is the alert threshold too, unless ALERT_STUCK_AFTER_MS says otherwise', () => {
      expect(loadConfig({ STUCK_AFTER_MS: '10000' }).alerts.stuckAfterMs).toBe(10_000);
      const config = loadConfig({ STUCK_AFTER_MS: '10000', ALERT_STUCK_AFTER_MS: '300000' });
      expect([config.stuckAfterMs, config.alerts.stuckAfterMs]).toEqual([10_000, 300_000]);
    });
  });

  describe('when an operator channel is set without its transport', () => {
    it('refuses to start, naming each setting and what it needs', () => {
      expect(() => loadConfig({ ALERT_TELEGRAM_CHAT_ID: '12345', ALERT_EMAIL: 'ops@example.com' })).toThrow(
        'Invalid configuration:\n' +
          '  ALERT_TELEGRAM_CHAT_ID: needs TELEGRAM_BOT_TOKEN (the bot that messages the operator)\n' +
          '  ALERT_EMAIL: needs SMTP_URL (the server that mails the operator)',
      );
    });
  });

  describe('when a setting is malformed', () => {
    it('names it', () => {
      expect(() => loadConfig({ ALERT_EMAIL: 'not an address', ALERT_STUCK_AFTER_MS: '-1' })).toThrow(
        /ALERT_STUCK_AFTER_MS: .*\n {2}ALERT_EMAIL: must be an email address/,
      );
      expect(() => loadConfig({ ALERT_TELEGRAM_CHAT_ID: 'ops chat' })).toThrow(
        /ALERT_TELEGRAM_CHAT_ID: must be a Telegram chat id/,
      );
    });
  });

  describe('when both channels are set with their transports', () => {
    it('keeps them', () => {
      const config = loadConfig({
        TELEGRAM_BOT_TOKEN: '123:abc',
        ALERT_TELEGRAM_CHAT_ID: '-100123',
        SMTP_URL: 'smtp://127.0.0.1:2525',
        ALERT_EMAIL: 'ops@example.com',
      });
      expect(config.alerts).toMatchObject({ telegramChatId: '-100123', email: 'ops@example.com' });
    });
  });
});
