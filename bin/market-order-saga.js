#!/usr/bin/env node
// The `market-order-saga` command of package.json's "bin": runs src/cli.ts on Node through tsx's
// loader (as `npm start` does), in this process, so signals and the exit code are the command's own.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
