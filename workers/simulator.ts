// `npm run sim`: the Douyin service-market simulator on SIM_PORT (default 8787).
// Prints one line with its URL and client key (never the secret); SIGINT/SIGTERM stop it.
import { loadDotenv } from '../src/config.js';
import { SimulatorEnvError, simulatorOptionsFromEnv } from '../src/simulator/env.js';
import { startSimulator } from '../src/simulator/index.js';

await loadDotenv();
let options: ReturnType<typeof simulatorOptionsFromEnv>;
try {
  options = simulatorOptionsFromEnv();
} catch (err) {
  if (!(err instanceof SimulatorEnvError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

const sim = await startSimulator(options);
const faults = Object.entries(options.faults ?? {})
  .map(([k, v]) => `${k}=${v}`)
  .join(' ');
process.stdout.write(
  `douyin simulator listening on ${sim.url} client_key=${options.clientKey}${faults ? ` faults: ${faults}` : ''}\n`,
);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await sim.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
