import { Command, CommanderError, Option } from 'commander';
import type { ApiKeyStore } from '../app/apiKeys.ts';
import { createKey, isKeyId, keyRows, listKeys, revokeKey, UnknownKeyError } from '../ops/keysCommand.ts';
import * as parse from './arguments.ts';
import { CliError, EXIT } from './exitCodes.ts';
import type { ExitCode } from './exitCodes.ts';
import { json, table } from './output.ts';
import type { Output } from './output.ts';

/** Runs `work` with the key store of the configured database (opened, migrated and closed around it). */
export type WithKeyStore = <T>(work: (store: ApiKeyStore) => Promise<T>) => Promise<T>;

/**
 * Adds `keys create|revoke|list` under `parent`. Each action reports its exit code to `done`;
 * the key of `create` is the only thing on stdout, so `KEY=$(market-order-saga keys create …)`
 * captures it.
 */
export function addKeysCommands(
  parent: Command,
  withStore: WithKeyStore,
  output: Output,
  done: (code: ExitCode) => void,
): Command {
  const keys = parent
    .command('keys')
    .description('API keys: create, revoke and list them (stored hashed in the database)')
    .addHelpText(
      'after',
      `
The database is the one of DATABASE_URL, else the embedded one under DATA_DIR (stop the service
first: it holds that directory). Running services see a change at once.`,
    );

  keys
    .command('create')
    .description(
      "create a user's key (--user) or an admin key (--admin); the key alone is printed on stdout, once",
    )
    .addOption(
      new Option('--user <user id>', 'the user the key acts for').argParser(parse.userId).conflicts('admin'),
    )
    .addOption(new Option('--admin', 'an operator key: sees and acts for every user, and for /admin'))
    .addOption(
      new Option('--label <text>', 'a note kept with the key (at most 200 characters)').argParser(
        parse.label,
      ),
    )
    .addHelpText('after', '\nExit codes: 0 created, 2 usage, 3 database unreachable or held by the service.')
    .action(async (options: { user?: string; admin?: boolean; label?: string }, command: Command) => {
      if (options.user === undefined && options.admin !== true)
        command.error('error: give either --user <user id> or --admin');
      await withStore((store) =>
        createKey(store, { userId: options.user ?? null, label: options.label ?? null }, output),
      );
      done(EXIT.ok);
    });

  keys
    .command('revoke')
    .description('revoke a key: every running service stops accepting it')
    .argument('<key id>', 'the 16 hex digits "keys list" shows (not the key itself)')
    .addHelpText(
      'after',
      '\nExit codes: 0 revoked (or already), 2 usage, 3 database unreachable, 4 no such key.',
    )
    .action(async (keyId: string, _options: unknown, command: Command) => {
      // Checked here rather than by an argument parser, whose message would quote the value: it
      // may be a whole key, pasted by mistake.
      if (!isKeyId(keyId))
        command.error('error: that is not a key id (16 hex digits, as "keys list" shows them)');
      try {
        await withStore((store) => revokeKey(store, keyId, output));
      } catch (error) {
        if (error instanceof UnknownKeyError) throw new CliError(EXIT.notFound, error.message);
        throw error;
      }
      done(EXIT.ok);
    });

  keys
    .command('list')
    .description('list the keys, never their secrets')
    .option('--user <user id>', "only this user's keys", parse.userId)
    .option('--json', 'print JSON instead of a table')
    .addHelpText('after', '\nExit codes: 0 listed, 2 usage, 3 database unreachable.')
    .action(async (options: { user?: string; json?: boolean }) => {
      const found = await withStore((store) => listKeys(store, { userId: options.user }));
      if (options.json) {
        output.out(json({ keys: found }));
      } else {
        const { header, rows } = keyRows(found);
        output.out(table(header, rows));
        output.err(`${found.length} key(s), ${found.filter((k) => !k.revoked_at).length} in use.`);
      }
      done(EXIT.ok);
    });

  return keys;
}

/**
 * `keys …` on a given store, as the command line parses it (`args` after `keys`): for tests of the
 * stores, where a process per command would only be slower.
 * @throws CliError with commander's message for a usage error, or the action's error.
 */
export async function runKeysCommand(
  args: readonly string[],
  store: ApiKeyStore,
  output: Output,
): Promise<void> {
  let said = '';
  const program = new Command('market-order-saga')
    .exitOverride()
    .configureOutput({ writeOut: (text) => output.out(text.trimEnd()), writeErr: (text) => (said += text) });
  addKeysCommands(
    program,
    (work) => work(store),
    output,
    () => {},
  );
  try {
    await program.parseAsync(['keys', ...args], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError)
      throw new CliError(EXIT.usage, said.trim() || error.message, { cause: error });
    throw error;
  }
}
