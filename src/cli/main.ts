// `npm run cli -- <group> <command> [options]`: the operator's command line.
// Exit codes: 0 ok, 1 failure (a Douyin or network error, rejected lines), 2 bad usage or input.
import { loadDotenv } from '../config.js';

const usage = `usage: npm run cli -- <command>

  douyin decr --open-id U --service-id S --service-mode-id M --count N --out-trade-no T [--test-env]
  douyin insert-purchase --open-id U --service-id S --service-mode-id M --out-trade-no T
                         --period-type P --purchase-time MS [--duration D] [--usage-times N]
  douyin delete-purchase --open-id U --service-id S --service-mode-id M --out-trade-no T
  douyin purchases --open-id U --service-id S [--test-env]
  events import FILE.ndjson|-
  batches replay ID | --all-dead
  batches resolve ID --as charged|uncharged
  balance --open-id U --service-id S --service-mode-id M [--test-env] [--cached]
  reconcile [--open-id X] [--since-sec N] [--json]
  charging pause [--reason TEXT] | resume | status
  ledger prune [--dry-run] [--json] | partitions [--json]
  status
`;

await loadDotenv();
const [group, ...rest] = process.argv.slice(2);
let code: number;
switch (group) {
  case 'douyin':
    code = await (await import('./douyin.js')).runDouyinCommand(rest);
    break;
  case 'events':
    code = await (await import('./events.js')).runEventsCommand(rest);
    break;
  case 'batches':
    code = await (await import('./batches.js')).runBatchesCommand(rest);
    break;
  case 'balance':
    code = await (await import('./balance.js')).runBalanceCommand(rest);
    break;
  case 'reconcile':
    code = await (await import('./reconcile.js')).runReconcileCommand(rest);
    break;
  case 'charging':
    code = await (await import('./charging.js')).runChargingCommand(rest);
    break;
  case 'ledger':
    code = await (await import('./ledger.js')).runLedgerCommand(rest);
    break;
  case 'status':
    code = await (await import('./status.js')).runStatusCommand(rest);
    break;
  default:
    process.stderr.write(usage);
    code = 2;
}
process.exit(code);
