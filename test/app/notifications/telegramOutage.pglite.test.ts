import { inProcessHarness } from '../../helpers/buses.ts';
import { migratedPglite } from '../../helpers/databases.ts';
import { telegramOutageSuite } from './telegramOutage.ts';

telegramOutageSuite('the in-process bus on PGlite', async () => inProcessHarness(await migratedPglite()));
