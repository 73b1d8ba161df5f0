// The dashboard in a real browser (Debian's chromium through playwright-core):
// sign in, watch numbers and batches move while events flow, replay a dead batch
// from the page until it is charged, look a user up, and fit a 375 px screen.
// Screenshots go to test-results/.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDouyinClientFromConfig } from '../../src/douyin/index.js';
import { createLogger } from '../../src/logger.js';
import { type MeterWorker, startMeterWorker } from '../../src/metering/worker.js';
import { buildWeb } from '../../src/server/web.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';
import { event, OPERATOR, repoRoot, startTestServer, type TestServer } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const shots = join(repoRoot, 'test-results');
const USERS = ['web-ann', 'web-ben', 'web-cat'];

const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

const numberOf = async (page: Page, testid: string) =>
  Number(((await page.getByTestId(testid).textContent()) ?? '').replace(/[^0-9]/g, ''));

describe('dashboard in chromium', () => {
  let s: TestServer;
  let sim: RunningSimulator;
  let worker: MeterWorker;
  let browser: Browser;
  let webDir: string;
  let douyinClose: (() => Promise<void>) | undefined;
  let douyinRedis: Redis | undefined;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run this test`,
      );
    }
    // Build the page from the current sources into a private directory.
    webDir = await mkdtemp(join(tmpdir(), 'um-web-'));
    await buildWeb(webDir);
    sim = await startSimulator({ clientKey: 'web-key', clientSecret: 'web-secret' });
    for (const u of [...USERS, 'web-dead'])
      sim.setBalance({ openId: u, serviceId: 's1', serviceModeId: 'm1', remaining: 100_000 });

    const databaseUrl = await createTestDatabase('web');
    const prefix = uniquePrefix('web');
    const env = {
      DOUYIN_BASE_URL: sim.url,
      DOUYIN_CLIENT_KEY: 'web-key',
      DOUYIN_CLIENT_SECRET: 'web-secret',
      DOUYIN_TIMEOUT_MS: '2000',
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: prefix,
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_SIZE: '4',
      METER_BATCH_WINDOW_MS: '200',
      // A failing batch goes dead after a second, so the page can show one.
      METER_RETRY_DEADLINE_SEC: '1',
      METER_RETRY_BASE_MS: '50',
      METER_RETRY_MAX_MS: '200',
      LOG_LEVEL: 'silent',
    };
    const config = loadConfig(['database', 'douyin'], env);
    worker = await startMeterWorker({ config, logger: createLogger({ level: 'silent' }) });
    // The server's Douyin client (user lookups) on the same simulator.
    douyinRedis = new Redis(redisUrl());
    const douyin = createDouyinClientFromConfig(config, douyinRedis, {
      logger: createLogger({ level: 'silent' }),
    });
    douyinClose = () => (douyin as { close?: () => Promise<void> }).close?.() ?? Promise.resolve();
    s = await startTestServer({ label: 'web', webDir, databaseUrl, prefix, douyin });

    await mkdir(shots, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.close();
    await douyinClose?.();
    douyinRedis?.disconnect();
    await s?.close();
    await sim?.close();
    if (webDir) await rm(webDir, { recursive: true, force: true });
  });

  it('sign in, live numbers and batches, replay a dead batch until charged, user lookup, 375 px', async () => {
    // A fresh context is a fresh profile: no cookie yet.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('dialog', (d) => void d.accept());

    await page.goto(`${s.url}/`);
    await expect.poll(() => page.getByTestId('signin-form').isVisible()).toBe(true);
    await page.getByTestId('signin-user').fill(OPERATOR.user);
    await page.getByTestId('signin-password').fill('wrong');
    await page.getByTestId('signin-submit').click();
    await expect.poll(() => page.getByTestId('signin-error').textContent()).toMatch(/Wrong user or password/);
    await page.getByTestId('signin-password').fill(OPERATOR.password);
    await page.getByTestId('signin-submit').click();
    await expect.poll(() => page.getByTestId('whoami').textContent()).toBe(OPERATOR.user);
    await expect.poll(() => page.getByTestId('stat-events-charged').isVisible()).toBe(true);
    const chargedAtStart = await numberOf(page, 'stat-events-charged');
    expect(chargedAtStart).toBe(0);

    // Events flow: numbers and batch rows appear and change.
    let sent = 0;
    const stream = setInterval(() => {
      const events = USERS.map((u) => event(u, 1 + (sent % 3)));
      sent += events.length;
      void s.postEvents(events);
    }, 150);
    try {
      await until(
        'charged events on the page',
        async () => (await numberOf(page, 'stat-events-charged')) > 0,
      );
      const first = await numberOf(page, 'stat-events-charged');
      await until(
        'the charged count to grow',
        async () => (await numberOf(page, 'stat-events-charged')) > first,
      );
      await until(
        'charged batch rows',
        async () => (await page.locator('[data-testid=batch-row][data-status=charged]').count()) > 0,
      );
      const firstTopRow = await page.getByTestId('batch-row').first().getAttribute('data-batch-id');
      await until(
        'a newer batch at the top',
        async () =>
          (await page.getByTestId('batch-row').first().getAttribute('data-batch-id')) !== firstTopRow,
      );
      expect(await page.getByTestId('chart-svg').locator('polyline').count()).toBe(2);
      await expect.poll(() => numberOf(page, 'health-attempts')).toBeGreaterThan(0);
      await expect
        .poll(() => page.getByTestId('token-status').textContent())
        .toMatch(/^Token: cached, expires in \d+ (min|h)/);
    } finally {
      clearInterval(stream);
    }
    await page.screenshot({ path: join(shots, 'dashboard-desktop.png'), fullPage: true });

    // A dead batch: Douyin answers 5xx until the batch's 1 s deadline passes.
    // Every streamed event in the ledger and settled, read in one snapshot: an event
    // still on its way from Redis must not go dead under the fault switched on next.
    await until('the stream to settle', async () => {
      const [r] = await s.db.$queryRaw<{ total: number; unsettled: number }[]>`
        SELECT count(*)::int AS total,
               count(*) FILTER (WHERE status IN ('pending', 'batched'))::int AS unsettled
        FROM usage_event`;
      return r!.total === sent && r!.unsettled === 0;
    });
    sim.setFaults({ http5xxRate: 1 });
    const doomed = event('web-dead', 7);
    expect((await s.postEvents([doomed])).status).toBe(202);
    const deadRow = page.getByTestId('dead-row');
    await until('a dead row on the page', async () => (await deadRow.count()) === 1);
    const deadId = (await deadRow.getAttribute('data-batch-id'))!;
    expect(await page.getByTestId('dead-reason').textContent()).toMatch(/deadline/);
    expect(await numberOf(page, 'stat-batches-dead')).toBe(1);
    await page.screenshot({ path: join(shots, 'dashboard-dead-letter.png'), fullPage: true });

    sim.setFaults({ http5xxRate: 0 });
    await page.getByTestId(`replay-${deadId}`).click();
    await expect
      .poll(() => page.getByTestId('replay-message').textContent())
      .toMatch(new RegExp(`Replayed 1 batch \\(${deadId}\\)`));
    await until('the dead list to empty', async () => (await page.getByTestId('dead-empty').count()) === 1);
    await page.getByTestId('batch-status-filter').selectOption('charged');
    const replayedRow = page.locator(`[data-testid=batch-row][data-batch-id="${deadId}"]`);
    await until(
      'the replayed batch listed as charged',
      async () => (await replayedRow.getAttribute('data-status').catch(() => null)) === 'charged',
    );
    const ledger = await s.db.chargeBatch.findUniqueOrThrow({ where: { id: BigInt(deadId) } });
    expect(ledger).toMatchObject({ status: 'charged', count: 7 });
    expect(sim.state().trades.filter((t) => t.openId === 'web-dead')).toEqual([
      expect.objectContaining({ outTradeNo: ledger.outTradeNo, count: 7 }),
    ]);
    const audit = await s.db.operatorAudit.findFirstOrThrow({ where: { target: deadId } });
    expect(audit).toMatchObject({ actor: OPERATOR.user, action: 'batch.replay' });

    // Batch details and user lookup (remaining times come from the simulator, live).
    await replayedRow.click();
    await expect
      .poll(() => page.getByTestId('attempts-table').locator('tbody tr').count())
      .toBeGreaterThan(1);
    await page.getByTestId('user-openid').fill('web-dead');
    await page.getByTestId('user-submit').click();
    await expect.poll(() => page.getByTestId('remaining-times').first().textContent()).toBe('99,993');
    expect(await page.getByTestId('user-charged-uses').first().textContent()).toBe('7');
    await expect.poll(() => page.getByTestId('user-event-row').count()).toBe(1);
    expect(await page.getByTestId('user-event-row').textContent()).toContain(doomed.eventId);
    expect(await page.getByTestId('user-events-more').isVisible()).toBe(false);
    await page.screenshot({ path: join(shots, 'dashboard-after-replay.png'), fullPage: true });

    // 375 px: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 800 });
    await page.getByTestId('batch-status-filter').selectOption('');
    await new Promise((r) => setTimeout(r, 500));
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(shots, 'dashboard-375px.png'), fullPage: true });

    expect(pageErrors).toEqual([]);
    await context.close();
  });
});
