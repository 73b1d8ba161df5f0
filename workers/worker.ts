// `npm run worker`: one metering worker process. SIGTERM/SIGINT finish the
// in-flight Douyin calls and exit. Metrics on METRICS_PORT when set.
import { createServer } from 'node:http';
import { configOrExit } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startMeterWorker } from '../src/metering/worker.js';
import { registry } from '../src/metrics.js';

const config = await configOrExit(['database', 'douyin']);
const logger = createLogger({ level: config.LOG_LEVEL, name: 'worker' });
const worker = await startMeterWorker({ config, logger });

const metrics =
  config.METRICS_PORT > 0
    ? createServer(async (req, res) => {
        if (req.url !== '/metrics') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
      }).listen(config.METRICS_PORT, config.HOST)
    : undefined;

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping: finishing in-flight calls');
  metrics?.close();
  await worker.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
