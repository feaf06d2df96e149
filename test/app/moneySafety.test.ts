import { migratedPglite } from '../helpers/databases.ts';
import { moneySafetyContract } from './moneySafety.contract.ts';

moneySafetyContract('PGlite', migratedPglite);
