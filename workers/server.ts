// `npm start`: the HTTP server (ingestion API, dashboard, /metrics, health checks).
// SIGTERM/SIGINT stop accepting requests, finish the running ones and exit.
import { configOrExit } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { CredentialsConfigError } from '../src/server/auth.js';
import { startServer } from '../src/server/start.js';

const config = await configOrExit(['database', 'server', 'douyin']);
const logger = createLogger({ level: config.LOG_LEVEL, name: 'server' });
let server: Awaited<ReturnType<typeof startServer>>;
try {
  server = await startServer({ config, logger });
} catch (err) {
  if (err instanceof CredentialsConfigError) {
    process.stderr.write(`invalid configuration:\n  - ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  await server.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
