// `npm run db:migrate`: apply committed migrations to DATABASE_URL.
import { configOrExit } from '../config.js';
import { createLogger, maskUrl } from '../logger.js';
import { migrate } from './migrate.js';

const config = await configOrExit(['database']);
const log = createLogger({ level: config.LOG_LEVEL, name: 'migrate' });
try {
  const result = await migrate(config.DATABASE_URL!);
  log.info({ database: maskUrl(config.DATABASE_URL!), ...result }, 'database schema is current');
} catch (err) {
  log.error({ err }, 'migration failed');
  process.exitCode = 1;
}
