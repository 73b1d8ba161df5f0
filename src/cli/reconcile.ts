// `npm run cli -- reconcile [--open-id X] [--since-sec N] [--json]`: Douyin's
// remaining times against what the ledger expects, per key (src/balances/reconcile.ts).
// Without --open-id: the keys with a batch settled in the last --since-sec seconds
// (default METER_RECONCILE_INTERVAL_SEC, or an hour). Nothing is corrected.
// Exit codes: 0 done (drift or not), 1 a key could not be read (or was busy), 2 bad usage or configuration.
import { parseArgs } from 'node:util';
import { type Reconciled, reconcileKeys } from '../balances/reconcile.js';
import { createDouyinClientFromConfig } from '../douyin/client.js';
import { keysActiveSince, keysOfUser } from '../ledger/drift.js';
import { identifier } from '../server/params.js';
import { cliConfig, withLedger } from './config.js';

const usage = 'usage: npm run cli -- reconcile [--open-id X] [--since-sec N] [--json]\n';
const MAX_KEYS = 10_000;

export async function runReconcileCommand(args: string[]): Promise<number> {
  let values: { 'open-id'?: string; 'since-sec'?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: { 'open-id': { type: 'string' }, 'since-sec': { type: 'string' }, json: { type: 'boolean' } },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const openId = values['open-id'] === undefined ? undefined : identifier.safeParse(values['open-id']);
  const sinceSec = values['since-sec'] === undefined ? undefined : Number(values['since-sec']);
  if (
    (openId && !openId.success) ||
    (sinceSec !== undefined && !(Number.isInteger(sinceSec) && sinceSec > 0))
  ) {
    process.stderr.write(`--open-id must be an identifier, --since-sec a positive integer\n${usage}`);
    return 2;
  }
  const config = cliConfig(['database', 'douyin']);
  if (!config) return 2;
  return withLedger(config, async ({ db, redis }) => {
    const douyin = createDouyinClientFromConfig(config, redis);
    try {
      const since = new Date(
        Date.now() - (sinceSec ?? (config.METER_RECONCILE_INTERVAL_SEC || 3_600)) * 1000,
      );
      const keys = openId?.success
        ? await keysOfUser(db, openId.data)
        : await keysActiveSince(db, since, MAX_KEYS);
      const results = await reconcileKeys(db, douyin, keys, { owner: 'cli:reconcile' });
      if (keys.length === 0) process.stderr.write('no keys to reconcile\n');
      process.stdout.write(
        values.json ? `${JSON.stringify(results, null, 2)}\n` : results.map(line).join(''),
      );
      return results.some((r) => r.status === 'failed' || r.status === 'busy') ? 1 : 0;
    } finally {
      await douyin.close();
    }
  });
}

function line(r: Reconciled): string {
  const k = `${r.key.openId} ${r.key.serviceId}/${r.key.serviceModeId}${r.key.isTestEnv ? ' (test)' : ''}`;
  switch (r.status) {
    case 'checked': {
      const d = r.drift;
      return `${k}: drift ${d.drift}, ${d.cumulativeDrift} since the first check (Douyin ${d.actual}, expected ${d.expected} = ${d.previousRemaining} at ${d.previousAsOf.toISOString()} − ${d.charged} charged; ${d.uncertain} uncertain, ${d.evidence.orders.length} orders in between)\n`;
    }
    case 'baseline':
      return `${k}: first snapshot (${r.remaining}); compared from the next check on\n`;
    case 'skipped_test_env':
      return `${k}: skipped (test mode)\n`;
    case 'busy':
      return `${k}: busy (a charge run holds it); try again\n`;
    case 'failed':
      return `${k}: could not read Douyin: ${r.error}\n`;
  }
}
