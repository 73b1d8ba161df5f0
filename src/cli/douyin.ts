// `npm run cli -- douyin <decr|insert-purchase|delete-purchase|purchases> [flags]`:
// one Douyin call by hand. Input is validated with the client's own schemas before
// the configuration is read or anything is connected, so a bad command sends nothing.
// Exit codes: 0 success (result JSON on stdout), 1 Douyin/network error (error JSON
// on stderr), 2 bad usage, input or configuration.
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { loadDotenv } from '../config.js';
import { createDouyinClientFromConfig, type DouyinMarketClient } from '../douyin/client.js';
import { DouyinError } from '../douyin/errors.js';
import {
  decrUserRemainTimesRequest,
  deletePurchaseInfoRequest,
  insertPurchaseInfoRequest,
  problemsOf,
  purchaseListRequest,
} from '../douyin/schemas.js';
import { createRedis } from '../queue/redis-connection.js';
import { cliConfig } from './config.js';

type Flag = { type: 'string' | 'boolean'; required?: boolean; integer?: boolean };

type Checked =
  | { ok: true; run: (client: DouyinMarketClient) => Promise<unknown> }
  | { ok: false; problems: string[] };

interface Command {
  usage: string;
  flags: Record<string, Flag>;
  /** Validates the input with the client's schema; on success, the call to make. */
  check: (input: unknown) => Checked;
}

/** Ties a schema to its method so the checked input keeps its type. */
function command<I>(c: {
  usage: string;
  flags: Record<string, Flag>;
  schema: z.ZodType<unknown, I>;
  run: (client: DouyinMarketClient, input: I) => Promise<unknown>;
}): Command {
  return {
    usage: c.usage,
    flags: c.flags,
    check: (input) => {
      const r = c.schema.safeParse(input);
      // The client validates (and converts) again; here only the verdict matters.
      return r.success
        ? { ok: true, run: (client) => c.run(client, input as I) }
        : { ok: false, problems: problemsOf(r.error) };
    },
  };
}

const str = { type: 'string', required: true } as const;
const int = { type: 'string', required: true, integer: true } as const;
const optInt = { type: 'string', integer: true } as const;

const commands: Record<string, Command> = {
  decr: command({
    usage: 'decr --open-id U --service-id S --service-mode-id M --count N --out-trade-no T [--test-env]',
    flags: {
      'open-id': str,
      'service-id': str,
      'service-mode-id': str,
      count: int,
      'out-trade-no': str,
      'test-env': { type: 'boolean' },
    },
    schema: decrUserRemainTimesRequest,
    run: (c, input) => c.decrUserRemainTimes(input),
  }),
  'insert-purchase': command({
    usage:
      'insert-purchase --open-id U --service-id S --service-mode-id M --out-trade-no T' +
      ' --period-type P --purchase-time MS [--duration D] [--usage-times N]',
    flags: {
      'open-id': str,
      'service-id': str,
      'service-mode-id': str,
      'out-trade-no': str,
      'period-type': int,
      'purchase-time': int,
      duration: optInt,
      'usage-times': optInt,
    },
    schema: insertPurchaseInfoRequest,
    run: (c, input) => c.insertPurchaseInfo(input),
  }),
  'delete-purchase': command({
    usage: 'delete-purchase --open-id U --service-id S --service-mode-id M --out-trade-no T',
    flags: { 'open-id': str, 'service-id': str, 'service-mode-id': str, 'out-trade-no': str },
    schema: deletePurchaseInfoRequest,
    run: (c, input) => c.deletePurchaseInfo(input),
  }),
  purchases: command({
    usage: 'purchases --open-id U --service-id S [--test-env]',
    flags: { 'open-id': str, 'service-id': str, 'test-env': { type: 'boolean' } },
    schema: purchaseListRequest,
    run: (c, input) => c.getUserServicePurchaseList(input),
  }),
};

const usage = `usage: npm run cli -- douyin <command>\n${Object.values(commands)
  .map((c) => `  douyin ${c.usage}\n`)
  .join('')}`;

class UsageError extends Error {}

export async function runDouyinCommand(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const cmd = name === undefined ? undefined : commands[name];
  if (!cmd) {
    process.stderr.write(name === undefined ? usage : `unknown douyin command "${name}"\n${usage}`);
    return 2;
  }

  // 1. Flags and input: nothing is loaded or connected before they are valid.
  let input: unknown;
  try {
    input = readInput(cmd, rest);
  } catch (err) {
    if (!(err instanceof UsageError || isParseArgsError(err))) throw err;
    process.stderr.write(`${(err as Error).message}\nusage: npm run cli -- douyin ${cmd.usage}\n`);
    return 2;
  }
  const checked = cmd.check(input);
  if (!checked.ok) {
    process.stderr.write(`invalid input:\n${checked.problems.map((p) => `  - ${p}\n`).join('')}`);
    return 2;
  }

  // 2. Configuration.
  await loadDotenv();
  const config = cliConfig(['douyin']);
  if (!config) return 2;

  // 3. The call.
  const redis = createRedis(config, { maxRetriesPerRequest: 1, connectTimeoutMs: 5_000, maxReconnects: 3 });
  redis.on('error', () => {}); // reported through the failing command
  const client = createDouyinClientFromConfig(config, redis);
  try {
    const result = await checked.run(client);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${JSON.stringify({ error: errorJson(err) })}\n`);
    return 1;
  } finally {
    await client.close().catch(() => {});
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** The camelCase input of the command from its flags; integers must be written exactly. */
function readInput(command: Command, args: string[]): Record<string, unknown> {
  const options = Object.fromEntries(Object.entries(command.flags).map(([k, f]) => [k, { type: f.type }]));
  const { values, tokens } = parseArgs({
    args,
    options,
    strict: true,
    allowPositionals: false,
    tokens: true,
  });
  // parseArgs keeps the last of a repeated flag; for a charging tool that is a typo to refuse.
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} given more than once`);
    seen.add(t.name);
  }
  const input: Record<string, unknown> = {};
  for (const [flag, spec] of Object.entries(command.flags)) {
    const value = values[flag];
    if (value === undefined) {
      if (spec.required) throw new UsageError(`missing --${flag}`);
      continue;
    }
    input[camel(flag)] = spec.integer ? exactInteger(flag, value as string) : value;
  }
  return input;
}

/** `12` is 12; `1.5`, `1e3`, ` 7`, `0x10`, `abc` are rejected (no parseInt leniency). */
function exactInteger(flag: string, raw: string): number {
  if (!/^-?(0|[1-9]\d*)$/.test(raw)) throw new UsageError(`--${flag} must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${flag} is out of range: ${raw}`);
  return n;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()).replace(/^testEnv$/, 'isTestEnv');
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

function errorJson(err: unknown) {
  if (err instanceof DouyinError) {
    const { kind, code, subCode, description, logid, httpStatus } = err.toJSON();
    return { kind, code, subCode, description, logid, httpStatus };
  }
  // Redis unreachable or similar: no Douyin answer at all.
  const description = err instanceof Error ? err.message : String(err);
  return { kind: 'network', code: null, subCode: null, description, logid: null, httpStatus: null };
}
