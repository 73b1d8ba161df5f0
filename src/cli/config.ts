// Configuration for one CLI command: a bad variable is printed and the command exits 2.
import { type Config, ConfigError, type ConfigNeed, loadConfig } from '../config.js';

/** The parsed config, or undefined after printing every bad variable to stderr. */
export function cliConfig(needs: ConfigNeed[] = []): Config | undefined {
  try {
    return loadConfig(needs);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return undefined;
  }
}
