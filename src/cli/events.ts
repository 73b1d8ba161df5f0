// `npm run cli -- events import FILE.ndjson|-`: backfill usage events, one JSON
// event per line. Invalid lines are reported on stderr with their line number and
// reason; valid lines are still enqueued; a JSON summary is printed on stdout;
// the exit status is 1 when any line was rejected.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Admission } from '../balances/admission.js';
import { createPrisma, type PrismaClient } from '../db/prisma.js';
import { createDouyinClientFromConfig } from '../douyin/client.js';
import { EventAcceptor } from '../events/accept-events.js';
import { createRedis } from '../queue/redis-connection.js';
import { redisKeyPrefix } from '../queue/redis-prefix.js';
import { cliConfig } from './config.js';

const MAX_LINE_BYTES = 64 * 1024;
const CHUNK = 5_000;

export async function runEventsCommand(args: string[]): Promise<number> {
  const [command, file, ...extra] = args;
  if (command !== 'import' || !file || extra.length > 0) {
    process.stderr.write('usage: npm run cli -- events import FILE.ndjson|-\n');
    return 2;
  }
  const config = cliConfig();
  if (!config) return 2;
  if (config.METER_ADMISSION === 'reject' && !config.DATABASE_URL) {
    // Admission control decides from the ledger: without it, nothing may be imported.
    process.stderr.write('METER_ADMISSION=reject needs DATABASE_URL for the import\n');
    return 2;
  }
  const input = file === '-' ? process.stdin : createReadStream(file);
  const opened = await new Promise<Error | undefined>((resolve) => {
    if (file === '-') return resolve(undefined);
    input.once('open', () => resolve(undefined));
    input.once('error', (err: Error) => resolve(err));
  });
  if (opened) {
    process.stderr.write(`cannot read ${file}: ${opened.message}\n`);
    return 2;
  }

  const redis = createRedis(config, { maxRetriesPerRequest: 3 });
  // With a database, events already in the ledger are counted as duplicates here.
  const db: PrismaClient | undefined = config.DATABASE_URL ? createPrisma(config.DATABASE_URL) : undefined;
  // Admission control (METER_ADMISSION=reject) refuses an event whose user has not
  // the uses left, as the HTTP API does; it needs the ledger.
  const douyin =
    db && config.METER_ADMISSION === 'reject' && config.DOUYIN_CLIENT_KEY && config.DOUYIN_CLIENT_SECRET
      ? createDouyinClientFromConfig(config, redis)
      : undefined;
  const admission =
    db && config.METER_ADMISSION === 'reject'
      ? new Admission(db, {
          unknown: config.METER_ADMISSION_UNKNOWN,
          holdSec: config.METER_ADMISSION_HOLD_SEC,
          maxAgeSec: config.METER_BALANCE_MAX_AGE_SEC,
          douyin,
        })
      : undefined;
  // An import is acknowledged like POST /v1/events: with REDIS_WAIT_REPLICAS, once replicated.
  const acceptor = new EventAcceptor({
    redis,
    prefix: redisKeyPrefix(config),
    db,
    admission,
    waitReplicas:
      config.REDIS_WAIT_REPLICAS > 0
        ? { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: config.REDIS_WAIT_TIMEOUT_MS }
        : undefined,
  });
  const summary: {
    lines: number;
    accepted: number;
    duplicates: number;
    rejected: number;
    insufficient?: number;
  } = { lines: 0, accepted: 0, duplicates: 0, rejected: 0, ...(admission ? { insufficient: 0 } : {}) };
  // eventIds of valid lines sent so far: an invalid line must not hide a later valid
  // line with its id (within a chunk, the acceptor counts an id once it validates).
  const seen = new Set<string>();
  let chunk: { line: number; raw: unknown }[] = [];

  // Reported in line order, chunk by chunk.
  let rejections: { line: number; reason: string }[] = [];
  const reject = (line: number, reason: string) => {
    summary.rejected++;
    rejections.push({ line, reason });
  };
  const report = () => {
    rejections.sort((x, y) => x.line - y.line);
    for (const r of rejections) process.stderr.write(`line ${r.line}: ${r.reason}\n`);
    rejections = [];
  };
  const send = async () => {
    const batch = chunk;
    chunk = [];
    if (batch.length === 0) return report();
    const results = await acceptor.accept(
      batch.map((b) => b.raw),
      'import',
    );
    for (const r of results) {
      const line = batch[r.index]!.line;
      if (r.status === 'rejected') reject(line, r.errors!.join('; '));
      else if (r.status === 'insufficient') {
        summary.insufficient = (summary.insufficient ?? 0) + 1;
        rejections.push({ line, reason: r.errors!.join('; ') });
      } else {
        seen.add(r.eventId!);
        if (r.status === 'duplicate') summary.duplicates++;
        else summary.accepted++;
      }
    }
    report();
  };

  try {
    let lineNo = 0;
    for await (const text of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      lineNo++;
      if (text.trim() === '') continue;
      summary.lines++;
      if (Buffer.byteLength(text) > MAX_LINE_BYTES) {
        reject(lineNo, `line longer than ${MAX_LINE_BYTES} bytes`);
        continue;
      }
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (err) {
        reject(lineNo, `invalid JSON: ${(err as Error).message}`);
        continue;
      }
      const id = (raw as { eventId?: unknown } | null)?.eventId;
      if (typeof id === 'string' && seen.has(id)) {
        summary.duplicates++; // the same eventId on a valid line of an earlier chunk
        continue;
      }
      chunk.push({ line: lineNo, raw });
      if (chunk.length >= CHUNK) await send();
    }
    await send();
  } catch (err) {
    process.stderr.write(`import failed: ${(err as Error).message}\n`);
    process.stdout.write(`${JSON.stringify({ ...summary, error: (err as Error).message })}\n`);
    return 1;
  } finally {
    await acceptor.close();
    await douyin?.close();
    await db?.$disconnect();
    redis.disconnect();
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.rejected > 0 || (summary.insufficient ?? 0) > 0 ? 1 : 0;
}
