/**
 * The service's entry from before the command line, kept for what runs it by path (scripts,
 * benches, tests): `src/main.ts <command> …` is `src/cli.ts <command> …`, and with no command it
 * starts the service, as it always did. src/cli/ holds the commands.
 */
import process from 'node:process';
import { main } from './cli/program.ts';

const args = process.argv.slice(2);
await main(args.length > 0 ? args : ['start']);
