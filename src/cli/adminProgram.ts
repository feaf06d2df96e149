import { Option } from 'commander';
import type { Command } from 'commander';
import { createAdminClient } from './adminClient.ts';
import type { AdminClient } from './adminClient.ts';
import * as admin from './adminCommands.ts';
import * as parse from './arguments.ts';
import type { ExitCode } from './exitCodes.ts';
import type { Output } from './output.ts';

interface ClientOptions {
  readonly url?: string;
  readonly key?: string;
  readonly timeout?: number;
  readonly json?: boolean;
}

const CLIENT_HELP = `
These commands ask the running service (its admin API, /admin): start it first. With API keys
configured they need an admin key: MOS_API_KEY (better than --key, which other users of the
machine can see in the process list). The key is never printed.`;

const CLIENT_EXIT_CODES =
  '3 service unreachable (or it answered 502-504), 6 the key was refused (none, not valid, not an admin key)';

/** --url, --key, --timeout and --json, on every client command. */
function clientOptions(command: Command): Command {
  return (
    command
      // Checked when the command runs, not by a parser: commander's refusal would quote the value,
      // which may hold a password.
      .option('--url <url>', "the service's URL (default http://127.0.0.1:$PORT, PORT defaulting to 8080)")
      .addOption(new Option('--key <key>', 'admin API key').env('MOS_API_KEY'))
      .addOption(
        new Option('--timeout <ms>', 'give up on an answer after this long')
          .argParser(parse.integer(1, 3_600_000))
          .default(60_000),
      )
      .option('--json', 'print JSON instead of a table')
  );
}

/** Adds `sagas …`, `dlq …` and `redrive` (= `dlq replay`): clients of the service's admin API. */
export function addAdminCommands(
  program: Command,
  deps: { readonly env: Readonly<Record<string, string | undefined>>; readonly output: Output },
  done: (code: ExitCode) => void,
): void {
  const { output } = deps;
  const clientOf = (options: ClientOptions): AdminClient =>
    createAdminClient({
      url: options.url ?? parse.defaultServiceUrl(deps.env),
      // An empty MOS_API_KEY is no key.
      key: options.key === '' ? undefined : options.key,
      ...(options.timeout === undefined ? {} : { timeoutMs: options.timeout }),
    });
  const format = (options: ClientOptions) => ({ json: options.json === true });

  const sagas = program
    .command('sagas')
    .description("the running service's sagas: list them, show one, retry or cancel a stuck one")
    .addHelpText('after', CLIENT_HELP);

  clientOptions(
    sagas
      .command('list')
      .description('list sagas, most recently updated first')
      .option('--stuck', 'only open sagas without progress for longer than the stuck threshold')
      .addOption(
        new Option('--status <status>', 'only orders in this status').choices([
          'pending',
          'completed',
          'failed',
        ]),
      )
      .option('--user <user id>', "only this user's orders", parse.userId)
      .option('--limit <n>', 'at most this many (1-200; the service defaults to 50)', parse.integer(1, 200))
      .option('--cursor <cursor>', 'the next page: the cursor the previous page printed'),
  )
    .addHelpText('after', `\nExit codes: 0 listed, 2 usage, ${CLIENT_EXIT_CODES}.`)
    .action(
      async (
        options: ClientOptions & {
          stuck?: boolean;
          status?: string;
          user?: string;
          limit?: number;
          cursor?: string;
        },
      ) => {
        const filter = {
          ...(options.stuck ? { stuck: true } : {}),
          ...(options.status === undefined ? {} : { status: options.status }),
          ...(options.user === undefined ? {} : { user: options.user }),
          ...(options.limit === undefined ? {} : { limit: options.limit }),
          ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
        };
        done(await admin.listSagas(clientOf(options), filter, format(options), output));
      },
    );

  clientOptions(
    sagas
      .command('show')
      .description("one saga: state, pending step, machine version, deadline and its events' history")
      .argument('<order_id>', 'the order id', parse.orderId),
  )
    .addHelpText('after', `\nExit codes: 0 shown, 2 usage, 4 unknown order, ${CLIENT_EXIT_CODES}.`)
    .action(async (orderId: string, options: ClientOptions) => {
      done(await admin.showSaga(clientOf(options), orderId, format(options), output));
    });

  clientOptions(
    sagas
      .command('retry')
      .description("run a saga's pending step now, as the sweeper would; prints how the saga ended")
      .argument('<order_id>', 'the order id', parse.orderId),
  )
    .addHelpText(
      'after',
      `\nExit codes: 0 the saga completed, 1 it failed (compensated) or is still suspended, 2 usage,
4 unknown order, 5 the saga had already finished, ${CLIENT_EXIT_CODES}.`,
    )
    .action(async (orderId: string, options: ClientOptions) => {
      done(await admin.retrySaga(clientOf(options), orderId, format(options), output));
    });

  clientOptions(
    sagas
      .command('cancel')
      .description(
        'cancel an open saga safely: a swap already sent is voided first, as the saga does past its deadline',
      )
      .argument('<order_id>', 'the order id', parse.orderId)
      .requiredOption('--reason <text>', 'why (1-200 characters), recorded with the order', parse.reason),
  )
    .addHelpText(
      'after',
      `\nExit codes: 0 cancelled, 1 voiding found the swap executed: the order completed instead,
2 usage, 4 unknown order, 5 refused: the saga had already finished, or the venue cannot be reached
to void the swap (nothing changed; try again), ${CLIENT_EXIT_CODES}.`,
    )
    .action(async (orderId: string, options: ClientOptions & { reason: string }) => {
      done(await admin.cancelSaga(clientOf(options), orderId, options.reason, format(options), output));
    });

  const dlq = program
    .command('dlq')
    .description('dead-lettered messages: list them, replay them to their consumers, or drop them')
    .addHelpText('after', CLIENT_HELP);

  clientOptions(
    dlq
      .command('list')
      .description('list the dead-lettered messages')
      .option('--limit <n>', 'at most this many (1-1000)', parse.integer(1, 1000)),
  )
    .addHelpText('after', `\nExit codes: 0 listed, 2 usage, ${CLIENT_EXIT_CODES}.`)
    .action(async (options: ClientOptions & { limit?: number }) => {
      done(await admin.listDeadLetters(clientOf(options), options.limit, format(options), output));
    });

  const replay = async (ids: readonly string[], options: ClientOptions) => {
    done(await admin.replayDeadLetters(clientOf(options), ids, format(options), output));
  };
  const replayHelp = `\nConsumers deduplicate: a message whose work was done is acknowledged and nothing runs twice.
Exit codes: 0 replayed, 2 usage, ${CLIENT_EXIT_CODES}.`;

  clientOptions(
    dlq
      .command('replay')
      .description('send dead-lettered messages back to their consumers: those named, or all')
      .argument('[ids...]', 'message ids, as "dlq list" shows them (none: all)'),
  )
    .addHelpText('after', replayHelp)
    .action((ids: string[], options: ClientOptions) => replay(ids, options));

  clientOptions(
    dlq
      .command('drop')
      .description('delete dead-lettered messages for good: those named, or --all')
      .argument('[ids...]', 'message ids, as "dlq list" shows them')
      .addOption(new Option('--all', 'every dead-lettered message')),
  )
    .addHelpText(
      'after',
      `\nExit codes: 0 dropped, 2 usage (give ids or --all, not both), ${CLIENT_EXIT_CODES}.`,
    )
    .action(async (ids: string[], options: ClientOptions & { all?: boolean }, command: Command) => {
      if (ids.length > 0 === (options.all === true))
        command.error('error: name the messages to drop, or give --all (not both)');
      const which = options.all ? ({ all: true } as const) : { ids };
      done(await admin.dropDeadLetters(clientOf(options), which, format(options), output));
    });

  clientOptions(
    program
      .command('redrive')
      .description('the same as "dlq replay": send dead-lettered messages back to their consumers')
      .argument('[ids...]', 'message ids (none: all)'),
  )
    .addHelpText('after', replayHelp)
    .action((ids: string[], options: ClientOptions) => replay(ids, options));
}
