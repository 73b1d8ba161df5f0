// `npm run cli -- balance --open-id U --service-id S --service-mode-id M [--test-env] [--cached]`:
// a user's balance as the meter knows it (src/balances/balance.ts), as JSON. Reads
// Douyin's purchase list first when the snapshot is older than
// METER_BALANCE_MAX_AGE_SEC (and a Douyin client is configured), unless --cached.
import { parseArgs } from 'node:util';
import { balanceOf } from '../balances/balance.js';
import { createDouyinClientFromConfig } from '../douyin/client.js';
import { balanceQuery, balanceView } from '../server/api-balance.js';
import { openIdPath } from '../server/params.js';
import { cliConfig, withLedger } from './config.js';

const usage =
  'usage: npm run cli -- balance --open-id U --service-id S --service-mode-id M [--test-env] [--cached]\n';

export async function runBalanceCommand(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        'open-id': { type: 'string' },
        'service-id': { type: 'string' },
        'service-mode-id': { type: 'string' },
        'test-env': { type: 'boolean' },
        cached: { type: 'boolean' },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const path = openIdPath.safeParse({ openId: values['open-id'] });
  const query = balanceQuery.safeParse({
    serviceId: values['service-id'],
    serviceModeId: values['service-mode-id'],
    isTestEnv: values['test-env'] ? 'true' : 'false',
    cached: values.cached ? 'true' : 'false',
  });
  if (!path.success || !query.success) {
    const issues = [...(path.error?.issues ?? []), ...(query.error?.issues ?? [])];
    process.stderr.write(`${issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n')}\n${usage}`);
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;
  return withLedger(config, async ({ db, redis }) => {
    const douyin =
      config.DOUYIN_CLIENT_KEY && config.DOUYIN_CLIENT_SECRET
        ? createDouyinClientFromConfig(config, redis)
        : undefined;
    try {
      const { serviceId, serviceModeId, isTestEnv, cached } = query.data;
      const b = await balanceOf(
        db,
        { openId: path.data.openId, serviceId, serviceModeId, isTestEnv },
        { maxAgeSec: config.METER_BALANCE_MAX_AGE_SEC, cached, douyin },
      );
      process.stdout.write(`${JSON.stringify(balanceView(b), null, 2)}\n`);
      return 0;
    } finally {
      await douyin?.close();
    }
  });
}
