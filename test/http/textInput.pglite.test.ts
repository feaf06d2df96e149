import { migratedPglite } from '../helpers/databases.ts';
import { textInputContract } from './textInput.contract.ts';

textInputContract('PGlite', migratedPglite);
