import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/*
 * The layer rule of eslint.config.js, which `npm run lint` (so .ci/run) applies: source that
 * breaks a layer is linted as if it were the file named, and must be refused with the rule's
 * message. The paths exist, so the type-aware rules can load them; their text is replaced.
 */
const eslint = new ESLint();

async function restrictedImports(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('the layer rule', () => {
  describe('when domain, machines or app code imports infra or http, at any depth', () => {
    it.each([
      ['src/app/notifications/notifier.ts', "import type { Logger } from '../../infra/logger.ts';"],
      ['src/app/sweeper.ts', "export { createOpenSagas } from '../infra/openSagas.ts';"],
      ['src/app/ports/database.ts', "import type { Database } from '../../infra/db/port.ts';"],
      ['src/app/orders.ts', "import { createApp } from '../http/app.ts';"],
      ['src/machines/orderSaga.ts', "import { createEventStore } from '../infra/eventStore.ts';"],
      ['src/domain/order.ts', "import { createInbox } from '../infra/inbox.ts';"],
      ['src/domain/position.ts', "import type { Inbox } from '../app/inbox.ts';"],
      ['src/app/sagaRunner.ts', "import { Counter } from 'prom-client';"],
    ])('refuses it in %s', async (filePath, code) => {
      const messages = await restrictedImports(filePath, `${code}\nexport {};\n`);
      expect(messages).toEqual([expect.stringMatching(/must not import/)]);
    });
  });

  describe('when infra code imports http', () => {
    it('refuses it', async () => {
      const code = "import { createApp } from '../http/app.ts';\nexport const app = createApp;\n";
      expect(await restrictedImports('src/infra/server.ts', code)).toHaveLength(1);
    });
  });

  describe('when app code imports its ports and the domain, or infra imports app', () => {
    it.each([
      ['src/app/notifications/notifier.ts', "import type { Logger } from '../ports/logger.ts';"],
      ['src/app/sweeper.ts', "import { NotFoundError } from '../domain/errors.ts';"],
      ['src/infra/health.ts', "import type { HealthProbe } from '../app/ports/health.ts';"],
      ['src/infra/venues/httpTradeWorker.ts', "import { exchange } from './httpCall.ts';"],
    ])('lets it be in %s', async (filePath, code) => {
      expect(await restrictedImports(filePath, `${code}\nexport {};\n`)).toEqual([]);
    });
  });
});
