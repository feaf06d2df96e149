/**
 * `market-order-saga`: the command line of the service (`--help` lists the commands and the exit
 * codes). Run it as `npx market-order-saga …` (bin/market-order-saga.js), `node --import tsx
 * src/cli.ts …`, or `deno task cli …`.
 */
import process from 'node:process';
import { main } from './cli/program.ts';

await main(process.argv.slice(2));
