import { migratedPglite } from '../helpers/databases.ts';
import { idempotencyContract } from './idempotency.contract.ts';

idempotencyContract('PGlite', migratedPglite);
