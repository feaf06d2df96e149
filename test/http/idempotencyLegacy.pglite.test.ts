import { migratedPglite } from '../helpers/databases.ts';
import { legacyIdempotencyContract } from './idempotencyLegacy.contract.ts';

legacyIdempotencyContract('PGlite', migratedPglite);
