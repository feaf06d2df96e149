import { inProcessHarness } from '../helpers/buses.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { consumerContract } from './consumerContract.ts';

consumerContract('the in-process bus on PGlite', async () => inProcessHarness(await migratedPglite()));
