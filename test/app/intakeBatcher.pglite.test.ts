import { migratedPglite } from '../helpers/databases.ts';
import { intakeBatcherContract } from './intakeBatcher.contract.ts';

intakeBatcherContract('PGlite', migratedPglite);
