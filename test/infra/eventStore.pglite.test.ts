import { migratedPglite } from '../helpers/databases.ts';
import { eventStoreContract } from './eventStore.contract.ts';

eventStoreContract('PGlite', migratedPglite);
