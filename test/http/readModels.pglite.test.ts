import { migratedPglite } from '../helpers/databases.ts';
import { readModelsContract } from './readModels.contract.ts';

readModelsContract('PGlite', migratedPglite);
