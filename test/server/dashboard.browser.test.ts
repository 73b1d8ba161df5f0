// The dashboard in a real browser (Debian's chromium through playwright-core):
// sign in, watch numbers and batches move while events flow, replay a dead batch
// from the page until it is charged, look a user up, and fit a 375 px screen; then
// test-mode badges, the Replay/Resolve buttons of dead and insufficient batches, and
// what a skipped action says; the Webhooks page (endpoints, their secret shown
// once, the disabled notice, the delivery log and Redeliver); and the operator
// console's search box, deep links and back button. Screenshots go to
// test-results/.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDouyinClientFromConfig } from '../../src/douyin/index.js';
import type { BatchStatus } from '../../src/generated/prisma/enums.js';
import { recordDrift } from '../../src/ledger/drift.js';
import { createLogger } from '../../src/logger.js';
import { type MeterWorker, startMeterWorker } from '../../src/metering/worker.js';
import { buildWeb } from '../../src/server/web.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { addEvents, addOrder } from '../support/ledger.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';
import { event, OPERATOR, repoRoot, startTestServer, type TestServer } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const shots = join(repoRoot, 'test-results');
const USERS = ['web-ann', 'web-ben', 'web-cat'];

const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
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
    // Webhook endpoints may point at 127.0.0.1 (the Webhooks page's test), nowhere else private.
    s = await startTestServer({
      label: 'web',
      webDir,
      databaseUrl,
      prefix,
      douyin,
      notifyAllowedHosts: ['127.0.0.1'],
    });

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
        FROM usage_event_status`;
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
    // An order from Douyin's webhook, and a drift found by reconciliation, for this user.
    await addOrder(s.db, { openId: 'web-dead', orderId: 'WEB-ORDER-1', remaining: 5 });
    await recordDrift(s.db, {
      openId: 'web-dead',
      serviceId: 's1',
      serviceModeId: 'm1',
      isTestEnv: false,
      checkedAt: new Date(),
      previousRemaining: 10,
      previousAsOf: new Date(Date.now() - 60_000),
      charged: 3,
      uncertain: 0,
      expected: 7,
      actual: 5,
      drift: -2,
      evidence: { charged: [], uncertain: [], orders: [] },
    });
    await page.getByTestId('user-openid').fill('web-dead');
    await page.getByTestId('user-submit').click();
    await expect.poll(() => page.getByTestId('remaining-times').first().textContent()).toBe('99,993');
    await expect.poll(() => page.getByTestId('order-event').first().textContent()).toBe('paid');
    await expect.poll(() => page.getByTestId('drift-cumulative').first().textContent()).toBe('-2');
    expect(await page.getByTestId('user-charged-uses').first().textContent()).toBe('7');
    await expect.poll(() => page.getByTestId('user-event-row').count()).toBe(1);
    expect(await page.getByTestId('user-event-row').textContent()).toContain(doomed.eventId);
    expect(await page.getByTestId('user-events-more').isVisible()).toBe(false);
    await page.screenshot({ path: join(shots, 'dashboard-after-replay.png'), fullPage: true });

    // 375 px: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 800 });
    await page.getByTestId('batch-status-filter').selectOption('');
    await sleep(500);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(shots, 'dashboard-375px.png'), fullPage: true });

    expect(pageErrors).toEqual([]);
    await context.close();
  });

  /** A batch straight in the ledger (no events), as the worker would leave it. */
  let made = 0;
  async function ledgerBatch(openId: string, status: BatchStatus, count: number, isTestEnv = false) {
    const identity = { openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv };
    const key = await s.db.meterKey.upsert({
      where: { openId_serviceId_serviceModeId_isTestEnv: identity },
      create: identity,
      update: {},
    });
    made += 1;
    return s.db.chargeBatch.create({
      data: {
        keyId: key.id,
        outTradeNo: `web-made-${made}`,
        count,
        eventCount: 0,
        status,
        chargedCount: status === 'charged' ? count : 0,
        deadReason: status === 'dead' ? 'permanent: forbidden' : null,
        deadlineAt: new Date(),
        finishedAt: new Date(),
      },
    });
  }

  /**
   * A fresh context signed in (from the sign-in form at `path`); dialogs (confirm) are
   * recorded and answered with `answer.ok`.
   */
  async function signedInPage(path = '/') {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    const dialogs: string[] = [];
    const answer: { ok: boolean; text?: string } = { ok: false };
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void (answer.ok ? d.accept(answer.text) : d.dismiss());
    });
    await page.goto(`${s.url}${path}`);
    await page.getByTestId('signin-user').fill(OPERATOR.user);
    await page.getByTestId('signin-password').fill(OPERATOR.password);
    await page.getByTestId('signin-submit').click();
    await expect.poll(() => page.getByTestId('whoami').textContent()).toBe(OPERATOR.user);
    return { context, page, pageErrors, dialogs, answer };
  }

  it('test-mode badge; Replay and Resolve on dead and insufficient batches; a skipped replay says why', async () => {
    const testMode = await ledgerBatch('web-testenv', 'charged', 3, true);
    const real = await ledgerBatch('web-real', 'charged', 2);
    const dead = await ledgerBatch('web-stuck', 'dead', 9);
    const short = await ledgerBatch('web-short', 'insufficient', 4, true);
    const { context, page, pageErrors, dialogs } = await signedInPage();
    const row = (id: bigint) => page.locator(`[data-testid=batch-row][data-batch-id="${id}"]`);

    // Test mode is marked in the list and in the details; a real batch is not.
    await page.getByTestId('batch-status-filter').selectOption('charged');
    await until('the test-mode batch listed', async () => (await row(testMode.id).count()) === 1);
    expect(await row(testMode.id).getByTestId('test-badge').textContent()).toBe('test');
    expect(await row(real.id).getByTestId('test-badge').count()).toBe(0);
    await row(testMode.id).click();
    await expect.poll(() => page.getByTestId('batch-detail').getByTestId('test-badge').count()).toBe(1);
    // A charged batch offers nothing to replay or resolve.
    expect(await page.getByTestId(`detail-replay-${testMode.id}`).count()).toBe(0);

    // The dead batch: Replay and both Resolve buttons; the confirm names its uses.
    const deadRow = page.locator(`[data-testid=dead-row][data-batch-id="${dead.id}"]`);
    await until('the dead batch listed', async () => (await deadRow.count()) === 1);
    for (const action of ['replay', 'resolve-charged', 'resolve-uncharged'])
      expect(await page.getByTestId(`${action}-${dead.id}`).isVisible()).toBe(true);
    await page.getByTestId(`resolve-charged-${dead.id}`).click();
    await expect.poll(() => dialogs.length).toBe(1);
    expect(dialogs[0]).toMatch(new RegExp(`batch ${dead.id} \\(9 uses\\) as charged`));
    // Cancelled: nothing was asked of the server.
    expect((await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).status).toBe('dead');

    // The insufficient batch (test mode too): the same buttons in its details.
    await page.getByTestId('batch-status-filter').selectOption('insufficient');
    await until('the insufficient batch listed', async () => (await row(short.id).count()) === 1);
    expect(await row(short.id).getByTestId('test-badge').count()).toBe(1);
    await row(short.id).click();
    for (const action of ['replay', 'resolve-charged', 'resolve-uncharged'])
      await expect.poll(() => page.getByTestId(`detail-${action}-${short.id}`).isVisible()).toBe(true);
    await page.getByTestId(`detail-resolve-uncharged-${short.id}`).click();
    await expect.poll(() => dialogs.length).toBe(2);
    expect(dialogs[1]).toMatch(new RegExp(`batch ${short.id} \\(4 uses\\) as uncharged`));

    // Settled elsewhere meanwhile: the page's Replay is skipped, and the page says why.
    await s.db.chargeBatch.update({ where: { id: short.id }, data: { status: 'charged' } });
    await page.getByTestId(`detail-replay-${short.id}`).click();
    const message = page.getByTestId('batch-action-message');
    await expect
      .poll(() => message.textContent())
      .toMatch(new RegExp(`Replayed 0 batches; skipped ${short.id}: status is charged`));
    expect(await message.getAttribute('class')).toBe('error');
    expect(await page.getByTestId('replay-message').textContent()).toMatch(/skipped/);

    // Three buttons a dead row still fit a phone.
    await page.setViewportSize({ width: 375, height: 800 });
    await sleep(300);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(shots, 'dashboard-actions-375px.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  // Runs src/metering/resolve.ts (resolveBatches) behind POST /api/batches/:id/resolve.
  it('resolve a dead batch as uncharged from the page, after a confirm naming its uses', async () => {
    const dead = await ledgerBatch('web-void', 'dead', 7);
    const { context, page, pageErrors, dialogs, answer } = await signedInPage();
    answer.ok = true;
    const deadRow = page.locator(`[data-testid=dead-row][data-batch-id="${dead.id}"]`);
    await until('the dead batch listed', async () => (await deadRow.count()) === 1);
    await page.getByTestId(`resolve-uncharged-${dead.id}`).click();
    await expect
      .poll(() => page.getByTestId('replay-message').textContent())
      .toBe(`Resolved as uncharged 1 batch (${dead.id}).`);
    expect(dialogs).toEqual([expect.stringMatching(/\(7 uses\) as uncharged/)]);
    await until('the batch off the dead list', async () => (await deadRow.count()) === 0);
    expect(await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).toMatchObject({
      resolvedAs: 'uncharged',
      resolvedBy: OPERATOR.user,
    });
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it('act on many: filter dead batches by reason, select them, resolve them together after a confirm naming the uses', async () => {
    const a = await ledgerBatch('web-bulk-a', 'dead', 5);
    const b = await ledgerBatch('web-bulk-b', 'dead', 7);
    const other = await ledgerBatch('web-bulk-c', 'dead', 1);
    await s.db.chargeBatch.update({
      where: { id: other.id },
      data: { deadReason: 'deadline: retry deadline passed' },
    });
    const { context, page, pageErrors, dialogs, answer } = await signedInPage();
    try {
      answer.ok = true;
      const row = (id: bigint) => page.locator(`[data-testid=dead-row][data-batch-id="${id}"]`);
      await until('all three listed', async () => (await row(other.id).count()) === 1);
      await page.getByTestId('dead-reason-filter').selectOption('permanent');
      await until('the deadline one filtered out', async () => (await row(other.id).count()) === 0);
      await page.getByTestId(`dead-select-${a.id}`).check();
      await page.getByTestId(`dead-select-${b.id}`).check();
      await expect.poll(() => page.getByTestId('dead-selected').textContent()).toBe('2 selected, 12 uses');
      await page.getByTestId('bulk-charged').click();
      await until(
        'both resolved',
        async () => (await row(a.id).count()) === 0 && (await row(b.id).count()) === 0,
      );
      expect(dialogs.at(-1)).toMatch(/^Resolve 2 batches \(12 uses at stake\) as charged\?/);
      for (const x of [a, b])
        expect(await s.db.chargeBatch.findUniqueOrThrow({ where: { id: x.id } })).toMatchObject({
          status: 'charged',
          resolvedBy: OPERATOR.user,
        });
      expect((await s.db.chargeBatch.findUniqueOrThrow({ where: { id: other.id } })).status).toBe('dead');
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('pause charging with a reason: a notice on every page says who and why; resume from the notice', async () => {
    const { context, page, pageErrors, dialogs, answer } = await signedInPage();
    try {
      answer.ok = true;
      answer.text = 'browser drill';
      await page.getByTestId('charging-pause').click();
      await expect.poll(() => s.queues.charge.isPaused()).toBe(true);
      const notice = page.getByTestId('charging-paused');
      await expect
        .poll(() => notice.textContent())
        .toMatch(/^Charging is paused\. .*Paused by ops at .*: browser drill/);
      expect(dialogs[0]).toMatch(/^Pause charging for the whole deployment\?/);
      expect(await s.db.operatorAudit.findFirst({ where: { action: 'charging.pause' } })).toMatchObject({
        actor: OPERATOR.user,
        details: { reason: 'browser drill' },
      });
      // Another page shows it too.
      await page.goto(`${s.url}/#/webhooks`);
      await expect.poll(() => page.getByTestId('charging-paused').isVisible()).toBe(true);
      await page.getByTestId('charging-resume').click();
      await expect.poll(() => s.queues.charge.isPaused()).toBe(false);
      await expect.poll(() => page.getByTestId('charging-notice').isHidden()).toBe(true);
      expect(dialogs[1]).toMatch(/^Resume charging\?/);
      expect(pageErrors).toEqual([]);
    } finally {
      await s.queues.charge.resume();
      await context.close();
    }
  });

  // Runs src/server/api-webhook-endpoints.ts behind the page (webhooks.ts).
  it('webhooks page: make an endpoint, its secret shown once; edit, rotate, the disabled notice, the delivery log and Redeliver, 375 px', async () => {
    const { context, page, pageErrors, dialogs, answer } = await signedInPage();
    const HOOK = 'http://127.0.0.1:9/hook';
    await page.getByTestId('nav-webhooks').click();
    await expect.poll(() => page.getByTestId('webhooks-empty').isVisible()).toBe(true);
    expect(await page.getByTestId('queue-status').isVisible()).toBe(false);
    expect(await page.getByTestId('nav-webhooks').getAttribute('aria-current')).toBe('page');

    // The new endpoint's event types: every type but the opt-in batch.charged, ticked.
    const create = page.getByTestId('webhook-create');
    const form = page.getByTestId('webhook-create-form');
    const boxes = form.locator('input[name=eventTypes]');
    await expect.poll(() => boxes.count()).toBe(7);
    const ticked: Record<string, boolean> = {};
    for (const box of await boxes.all()) ticked[(await box.getAttribute('value'))!] = await box.isChecked();
    expect(ticked).toEqual({
      'batch.insufficient': true,
      'batch.partial': true,
      'batch.dead': true,
      'batch.charged': false,
      'balance.low': true,
      'purchase.updated': true,
      'reconcile.drift': true,
    });

    // A private address not allowed: the server's message under the form, nothing made.
    await form.getByTestId('form-url').fill('http://10.0.0.1/hook');
    await form.getByTestId('form-submit').click();
    await expect
      .poll(() => form.getByTestId('form-error').textContent())
      .toBe('webhooks may not go there: 10.0.0.1 is not in NOTIFY_ALLOWED_HOSTS');
    expect(await s.db.webhookEndpoint.count()).toBe(0);

    // Made: the secret in a read-only field, with the warning; the same as stored.
    await form.getByTestId('form-url').fill(HOOK);
    await form.getByTestId('form-description').fill('billing service');
    await form.getByTestId('form-threshold').fill('25');
    await form.getByTestId('form-type-batch.charged').check();
    await form.getByTestId('form-type-purchase.updated').uncheck();
    await form.getByTestId('form-submit').click();
    const secretField = create.getByTestId('webhook-secret');
    await expect.poll(() => secretField.count()).toBe(1);
    const secret = await secretField.inputValue();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(await secretField.isEditable()).toBe(false);
    expect(await create.getByTestId('webhook-secret-note').textContent()).toMatch(
      /^Copy it now, it is not shown again/,
    );
    expect(await form.getByTestId('form-error').textContent()).toBe('');
    const made = await s.db.webhookEndpoint.findFirstOrThrow({ where: { url: HOOK } });
    expect(made).toMatchObject({
      description: 'billing service',
      lowBalanceThreshold: 25,
      secret,
      enabled: true,
    });
    expect([...made.eventTypes].sort()).toEqual([
      'balance.low',
      'batch.charged',
      'batch.dead',
      'batch.insufficient',
      'batch.partial',
      'reconcile.drift',
    ]);
    const createAudit = { target: String(made.id), action: 'webhook-endpoint.create' };
    expect(await s.db.operatorAudit.findFirstOrThrow({ where: createAudit })).toMatchObject({
      actor: OPERATOR.user,
    });

    // Listed with what it wants and its (empty) delivery counts.
    const block = page.locator(`[data-testid=webhook-endpoint][data-endpoint-id="${made.id}"]`);
    await expect.poll(() => block.count()).toBe(1);
    expect(await block.getByTestId('endpoint-url').textContent()).toBe(HOOK);
    expect(await block.getByTestId('endpoint-description').textContent()).toBe('billing service');
    expect(await block.getByTestId('endpoint-state').textContent()).toMatch(/^enabled/);
    expect(await block.getByTestId('endpoint-types').textContent()).toBe(
      'batch.insufficient, batch.partial, batch.dead, batch.charged, balance.low, reconcile.drift',
    );
    expect(await block.getByTestId('endpoint-threshold').textContent()).toBe('below 25 uses');
    expect(await block.getByTestId('endpoint-counts').textContent()).toBe(
      '0 pending · 0 delivered · 0 failed · 0 cancelled',
    );
    expect(await block.getByTestId('endpoint-failing').textContent()).toBe('–');

    // Shown once: the page loaded again (still #webhooks) has it nowhere.
    await page.reload();
    await expect.poll(() => block.count()).toBe(1);
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);
    expect(await page.content()).not.toContain(secret);

    // Edit its event types: only what changed is sent.
    await block.getByTestId('endpoint-edit').click();
    const edit = block.getByTestId('endpoint-edit-form');
    expect(await edit.getByTestId('form-type-batch.charged').isChecked()).toBe(true);
    await edit.getByTestId('form-type-batch.charged').uncheck();
    await edit.getByTestId('form-type-batch.partial').uncheck();
    await edit.getByTestId('form-submit').click();
    await expect.poll(() => block.getByTestId('endpoint-message').textContent()).toBe('Saved: eventTypes.');
    expect(await block.getByTestId('endpoint-types').textContent()).toBe(
      'batch.insufficient, batch.dead, balance.low, reconcile.drift',
    );
    expect(await block.getByTestId('endpoint-edit-form').count()).toBe(0);
    const edited = await s.db.webhookEndpoint.findUniqueOrThrow({ where: { id: made.id } });
    expect([...edited.eventTypes].sort()).toEqual([
      'balance.low',
      'batch.dead',
      'batch.insufficient',
      'reconcile.drift',
    ]);
    expect(edited).toMatchObject({ url: HOOK, lowBalanceThreshold: 25, secret });
    const updateAudit = await s.db.operatorAudit.findFirstOrThrow({
      where: { target: String(made.id), action: 'webhook-endpoint.update' },
    });
    expect(Object.keys(updateAudit.details as object)).toEqual(['eventTypes']);

    // An endpoint the workers disabled: a notice with its reason, here and on the overview.
    const reason = 'deliveries failing for 24 h (last: HTTP 503)';
    const disabledAt = new Date(Date.now() - 5 * 60_000);
    const off = await s.db.webhookEndpoint.create({
      data: {
        url: 'https://hooks.example.com/meter',
        eventTypes: ['batch.dead'],
        secret: 'whsec_not-shown',
        enabled: false,
        disabledReason: reason,
        disabledAt,
        failingSince: new Date(disabledAt.getTime() - 86_400_000),
      },
    });
    const notices = page.getByTestId('webhook-disabled-notice');
    const notice = page.locator(`[data-testid=webhook-disabled-notice][data-endpoint-id="${off.id}"]`);
    expect(await notices.count()).toBe(0);
    await page.getByTestId('webhooks-refresh').click();
    await expect.poll(() => notice.isVisible()).toBe(true);
    expect(await notices.count()).toBe(1);
    expect(await notice.getByTestId('notice-reason').textContent()).toBe(reason);
    expect(await notice.textContent()).toContain(`Webhook endpoint ${off.id} is disabled`);
    expect(await notice.textContent()).toContain('https://hooks.example.com/meter');
    const offBlock = page.locator(`[data-testid=webhook-endpoint][data-endpoint-id="${off.id}"]`);
    expect(await offBlock.getAttribute('data-enabled')).toBe('false');
    expect(await offBlock.getByTestId('endpoint-state').textContent()).toMatch(/^disabled/);
    await page.goto(`${s.url}/`);
    await expect.poll(() => page.getByTestId('queue-status').isVisible()).toBe(true);
    await expect.poll(() => notice.isVisible()).toBe(true);
    expect(await page.getByTestId('webhooks-page').isVisible()).toBe(false);
    await page.getByTestId('nav-webhooks').click();
    await expect.poll(() => block.count()).toBe(1);

    // The delivery log: a given-up delivery, and 26 delivered ones (two pages).
    const dead = await s.db.notification.create({
      // Dispatched already: the workers' dispatcher leaves it alone.
      data: { type: 'batch.dead', data: { batchId: '77', openId: 'web-hook' }, dispatchedAt: new Date() },
    });
    const failed = await s.db.notificationDelivery.create({
      data: {
        notificationId: dead.id,
        endpointId: made.id,
        status: 'failed',
        attempts: 3,
        lastStatusCode: 500,
        lastError: 'HTTP 500',
        lastAttemptAt: new Date(),
      },
    });
    for (let i = 0; i < 26; i++) {
      const n = await s.db.notification.create({
        data: { type: 'balance.low', data: { openId: `web-low-${i}` }, dispatchedAt: new Date() },
      });
      await s.db.notificationDelivery.create({
        data: {
          notificationId: n.id,
          endpointId: made.id,
          status: 'delivered',
          attempts: 1,
          lastStatusCode: 200,
        },
      });
    }
    await page.getByTestId('webhooks-refresh').click();
    await expect
      .poll(() => block.getByTestId('endpoint-counts').textContent())
      .toBe('0 pending · 26 delivered · 1 failed · 0 cancelled');
    await block.getByTestId('endpoint-deliveries').click();
    const rows = block.getByTestId('delivery-row');
    await expect.poll(() => rows.count()).toBe(25);
    expect(await block.getByTestId('deliveries-more').isVisible()).toBe(true);
    await block.getByTestId('deliveries-more').click();
    await expect.poll(() => rows.count()).toBe(27);
    expect(await block.getByTestId('deliveries-more').isVisible()).toBe(false);
    const row = block.locator(`[data-testid=delivery-row][data-delivery-id="${failed.id}"]`);
    expect(await row.getAttribute('data-status')).toBe('failed');
    expect(await row.getByTestId('delivery-attempts').textContent()).toBe('3');
    expect(await row.getByTestId('delivery-code').textContent()).toBe('500');
    expect(await row.getByTestId('delivery-error').textContent()).toBe('HTTP 500');
    expect(await row.textContent()).toContain(dead.id);
    expect(await row.textContent()).toContain('batch.dead');

    // The status filter.
    await block.getByTestId('delivery-status-filter').selectOption('failed');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.getAttribute('data-delivery-id')).toBe(String(failed.id));
    await block.getByTestId('delivery-status-filter').selectOption('cancelled');
    await expect
      .poll(() => block.getByTestId('delivery-message').textContent())
      .toBe('No cancelled deliveries.');
    expect(await rows.count()).toBe(0);
    await block.getByTestId('delivery-status-filter').selectOption('failed');
    await expect.poll(() => rows.count()).toBe(1);

    // Redeliver: pending again, in the row and in the ledger.
    await row.getByTestId('delivery-redeliver').click();
    await expect.poll(() => row.getAttribute('data-status')).toBe('pending');
    expect(await block.getByTestId('delivery-message').textContent()).toBe(
      `Delivery ${failed.id} is queued to be sent again.`,
    );
    expect(await row.getByTestId('delivery-status').textContent()).toMatch(/redelivered ×1/);
    // (The workers may be trying it already: 127.0.0.1 is not theirs to reach, so it stays pending.)
    expect(await s.db.notificationDelivery.findUniqueOrThrow({ where: { id: failed.id } })).toMatchObject({
      status: 'pending',
      redeliveries: 1,
    });
    const redeliverAudit = { target: String(failed.id), action: 'webhook-delivery.redeliver' };
    expect(await s.db.operatorAudit.findFirstOrThrow({ where: redeliverAudit })).toMatchObject({
      actor: OPERATOR.user,
    });

    // Rotate its secret, the old one kept 24 h: the new one shown once, in its block.
    await block.getByTestId('endpoint-rotate').click();
    await block.getByTestId('rotate-keep').selectOption('86400');
    await block.getByTestId('rotate-submit').click();
    const rotatedField = block.getByTestId('webhook-secret');
    await expect.poll(() => rotatedField.count()).toBe(1);
    const rotated = await rotatedField.inputValue();
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(secret);
    expect(await block.getByTestId('endpoint-message').textContent()).toMatch(
      /^Secret rotated; the old one stays valid until /,
    );
    const afterRotation = await s.db.webhookEndpoint.findUniqueOrThrow({ where: { id: made.id } });
    expect(afterRotation).toMatchObject({ secret: rotated, previousSecret: secret });
    expect(afterRotation.previousSecretUntil!.getTime()).toBeGreaterThan(Date.now() + 86_000_000);
    expect(dialogs).toEqual([]);
    // The log stayed open, with its filter, across the list's reload after the rotation
    // (the redelivered one is no longer failed).
    expect(await block.getByTestId('delivery-status-filter').inputValue()).toBe('failed');
    await expect
      .poll(() => block.getByTestId('delivery-message').textContent())
      .toBe('No failed deliveries.');
    expect(await rows.count()).toBe(0);
    await block.getByTestId('webhook-secret-done').click();
    await expect.poll(() => page.getByTestId('webhook-secret').count()).toBe(0);

    // 375 px: the page, the notice and an open delivery log fit.
    await page.setViewportSize({ width: 375, height: 800 });
    await sleep(300);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(shots, 'dashboard-webhooks-375px.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    // Enable from the notice: the notice goes, the endpoint is enabled again.
    await notice.getByTestId(`notice-enable-${off.id}`).click();
    await expect.poll(() => notices.count()).toBe(0);
    expect(await offBlock.getAttribute('data-enabled')).toBe('true');
    expect(await s.db.webhookEndpoint.findUniqueOrThrow({ where: { id: off.id } })).toMatchObject({
      enabled: true,
      disabledReason: null,
      disabledAt: null,
      failingSince: null,
    });

    // Delete, after a confirm: refused first, then accepted.
    await offBlock.getByTestId('endpoint-delete').click();
    await expect.poll(() => dialogs.length).toBe(1);
    expect(dialogs[0]).toBe(
      `Delete webhook endpoint ${off.id} (https://hooks.example.com/meter) with its delivery log?`,
    );
    expect(await s.db.webhookEndpoint.count({ where: { id: off.id } })).toBe(1);
    answer.ok = true;
    await offBlock.getByTestId('endpoint-delete').click();
    await expect.poll(() => offBlock.count()).toBe(0);
    expect(await page.getByTestId('webhooks-message').textContent()).toBe(
      `Deleted webhook endpoint ${off.id} (https://hooks.example.com/meter).`,
    );
    expect(await s.db.webhookEndpoint.count({ where: { id: off.id } })).toBe(0);
    await page.screenshot({ path: join(shots, 'dashboard-webhooks.png'), fullPage: true });

    expect(pageErrors).toEqual([]);
    await context.close();
  });
  const hashOf = (page: Page) => page.evaluate(() => window.location.hash);
  const batchHeading = (page: Page) => page.getByTestId('batch-detail').locator('h3');

  // Runs src/server/api-search.ts behind the header's box, and the router (router.ts, search.ts).
  it('search: an out_trade_no opens its batch, an openId its user; several results listed and linked; back returns', async () => {
    const charged = await ledgerBatch('web-find', 'charged', 6);
    const dead = await ledgerBatch('web-find', 'dead', 2);
    const { context, page, pageErrors } = await signedInPage();
    await expect.poll(() => page.getByTestId('queue-status').isVisible()).toBe(true);
    expect(await hashOf(page)).toBe('');
    expect(await page.getByTestId('batch-detail').isVisible()).toBe(false);
    const search = async (q: string) => {
      await page.getByTestId('search-input').fill(q);
      await page.getByTestId('search-input').press('Enter');
    };

    // An out_trade_no (padding trimmed): its one result, the batch, opens directly.
    await search(`  ${charged.outTradeNo} `);
    await expect.poll(() => hashOf(page)).toBe(`#/batches/${charged.id}`);
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${charged.id}\\b`));
    expect(await page.getByTestId('batch-detail').textContent()).toContain(charged.outTradeNo);
    expect(await page.getByTestId('search-page').isVisible()).toBe(false);

    // An openId: the user lookup opens, the batch's details close.
    await search('web-find');
    await expect.poll(() => hashOf(page)).toBe('#/users/web-find');
    await expect.poll(() => page.getByTestId('user-result').locator('h3').textContent()).toBe('web-find');
    expect(await page.getByTestId('user-openid').inputValue()).toBe('web-find');
    await expect.poll(() => page.getByTestId('user-charged-uses').first().textContent()).toBe('6');
    expect(await page.getByTestId('batch-detail').isVisible()).toBe(false);

    // Opening one of the user's batches goes through the address too.
    const userBatch = page
      .getByTestId('user-result')
      .locator(`[data-testid=batch-row][data-batch-id="${dead.id}"]`);
    await userBatch.click();
    await expect.poll(() => hashOf(page)).toBe(`#/batches/${dead.id}`);
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${dead.id}\\b`));
    expect(await page.getByTestId('user-result').isVisible()).toBe(false);

    // Back: the user, then the first batch (the searches left no entry of their own), then the overview.
    await page.goBack();
    await expect.poll(() => hashOf(page)).toBe('#/users/web-find');
    await expect.poll(() => page.getByTestId('user-result').isVisible()).toBe(true);
    expect(await page.getByTestId('user-result').locator('h3').textContent()).toBe('web-find');
    expect(await page.getByTestId('batch-detail').isVisible()).toBe(false);
    await page.goBack();
    await expect.poll(() => hashOf(page)).toBe(`#/batches/${charged.id}`);
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${charged.id}\\b`));
    expect(await page.getByTestId('batch-detail').isVisible()).toBe(true);
    expect(await page.getByTestId('user-result').isVisible()).toBe(false);
    await page.goBack();
    await expect.poll(() => hashOf(page)).toBe('');
    await expect.poll(() => page.getByTestId('batch-detail').isVisible()).toBe(false);
    expect(await page.getByTestId('queue-status').isVisible()).toBe(true);
    // And forward again.
    await page.goForward();
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${charged.id}\\b`));
    expect(await hashOf(page)).toBe(`#/batches/${charged.id}`);

    // A value naming two things (the dead batch's out_trade_no is a user's openId too):
    // both listed, each a link to its view.
    const twice = dead.outTradeNo;
    await s.db.meterKey.create({
      data: { openId: twice, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false },
    });
    await search(twice);
    await expect.poll(() => hashOf(page)).toBe(`#/search/${twice}`);
    const results = page.getByTestId('search-result');
    await expect.poll(() => results.count()).toBe(2);
    expect(await page.getByTestId('search-page').isVisible()).toBe(true);
    expect(await page.getByTestId('queue-status').isVisible()).toBe(false);
    expect(await page.getByTestId('search-summary').textContent()).toBe(`2 results for ${twice}.`);
    await page.screenshot({ path: join(shots, 'dashboard-search.png') });
    expect(await results.evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')))).toEqual([
      'batch',
      'user',
    ]);
    expect(
      await page
        .getByTestId('search-result-link')
        .evaluateAll((els) => els.map((e) => [e.textContent, e.getAttribute('href')])),
    ).toEqual([
      [`Batch ${dead.id}`, `#/batches/${dead.id}`],
      [`User ${twice}`, `#/users/${twice}`],
    ]);
    await page
      .locator('[data-testid=search-result][data-kind=user] [data-testid=search-result-link]')
      .click();
    await expect.poll(() => hashOf(page)).toBe(`#/users/${twice}`);
    await expect.poll(() => page.getByTestId('user-result').locator('h3').textContent()).toBe(twice);
    // Back to the results, then the batch's link.
    await page.goBack();
    await expect.poll(() => hashOf(page)).toBe(`#/search/${twice}`);
    await expect.poll(() => page.getByTestId('search-page').isVisible()).toBe(true);
    await expect.poll(() => results.count()).toBe(2);
    expect(await page.getByTestId('search-input').inputValue()).toBe(twice);
    await page
      .locator('[data-testid=search-result][data-kind=batch] [data-testid=search-result-link]')
      .click();
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${dead.id}\\b`));
    expect(await page.getByTestId('search-page').isVisible()).toBe(false);

    // Nothing found, and a value the API refuses: said on the search page.
    await search('web-nobody-at-all');
    await expect
      .poll(() => page.getByTestId('search-empty').textContent())
      .toMatch(/^Nothing found for web-nobody-at-all/);
    expect(await hashOf(page)).toBe('#/search/web-nobody-at-all');
    await search('web nobody');
    await expect
      .poll(() => page.getByTestId('search-error').textContent())
      .toMatch(/printable ASCII without spaces/);

    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it('deep links: #/batches/:id opens after sign-in; #/users/:openId, #/dead, #/webhooks and #webhooks load directly', async () => {
    const target = await ledgerBatch('web-deep', 'insufficient', 4);
    const { context, page, pageErrors } = await signedInPage(`/#/batches/${target.id}`);
    // Signed in on the deep link: the batch opens, the address unchanged.
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${target.id}\\b`));
    expect(await hashOf(page)).toBe(`#/batches/${target.id}`);
    expect(await page.getByTestId(`detail-replay-${target.id}`).isVisible()).toBe(true);
    expect(await page.getByTestId('nav-overview').getAttribute('aria-current')).toBe('page');
    // Closing the details goes to the overview's address; back opens them again.
    await page.getByTestId('batch-detail-close').click();
    await expect.poll(() => hashOf(page)).toBe('#/');
    expect(await page.getByTestId('batch-detail').isVisible()).toBe(false);
    await page.goBack();
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${target.id}\\b`));

    // Signed in already (the cookie): each address opens its view when the page loads.
    const load = async (hash: string) => {
      await page.goto('about:blank');
      await page.goto(`${s.url}/${hash}`);
    };
    await load('#/users/web-deep');
    await expect.poll(() => page.getByTestId('user-result').locator('h3').textContent()).toBe('web-deep');
    expect(await page.getByTestId('batch-detail').isVisible()).toBe(false);
    await load('#/batches/999999999');
    await expect.poll(() => page.getByTestId('batch-detail-error').textContent()).toBe('no batch 999999999');
    // The dead letters scrolled to the top (a low window: the page is long enough to).
    await page.setViewportSize({ width: 1280, height: 400 });
    await load('#/dead');
    await expect.poll(() => page.getByTestId('nav-dead').getAttribute('aria-current')).toBe('page');
    await expect
      .poll(() => page.getByTestId('dead-letters').evaluate((e) => Math.round(e.getBoundingClientRect().top)))
      .toBe(0);
    expect(await page.evaluate(() => window.scrollY)).toBeGreaterThan(0);
    await page.setViewportSize({ width: 1280, height: 900 });
    for (const hash of ['#/webhooks', '#webhooks']) {
      await load(hash);
      await expect.poll(() => page.getByTestId('webhooks-page').isVisible()).toBe(true);
      expect(await page.getByTestId('queue-status').isVisible()).toBe(false);
      expect(await page.getByTestId('nav-webhooks').getAttribute('aria-current')).toBe('page');
    }
    // A search's address: its results (here one: the batch, opened in the search's place).
    await load(`#/search/${target.outTradeNo}`);
    await expect.poll(() => hashOf(page)).toBe(`#/batches/${target.id}`);
    await expect.poll(() => batchHeading(page).textContent()).toMatch(new RegExp(`^Batch ${target.id}\\b`));

    // 375 px: the header with its search box fits.
    await page.setViewportSize({ width: 375, height: 800 });
    await sleep(300);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    expect(await page.getByTestId('search-input').isVisible()).toBe(true);
    await page.screenshot({ path: join(shots, 'dashboard-deep-link-375px.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it('usage by service: a row per service mode with its uses; the toggle shows the day in 15-minute buckets and the 30 days', async () => {
    for (const [serviceId, counts] of [
      ['web-svc-a', [2, 3]],
      ['web-svc-b', [4]],
    ] as const) {
      const key = await s.db.meterKey.create({
        data: { openId: 'web-usage', serviceId, serviceModeId: 'm1', isTestEnv: false },
      });
      await addEvents(s.db, key.id, [...counts], 'web-usage');
    }
    const { context, page, pageErrors } = await signedInPage();
    const received = (serviceId: string) =>
      page
        .locator(`[data-testid=service-usage-row][data-service-id="${serviceId}"]`)
        .getByTestId('svc-received')
        .textContent();
    await expect.poll(() => received('web-svc-a')).toBe('5');
    expect(await received('web-svc-b')).toBe('4');
    expect(await page.getByTestId('service-usage-caption').textContent()).toMatch(/^per minute, /);

    await page.getByTestId('service-usage-day').click();
    await expect.poll(() => page.getByTestId('service-usage-caption').textContent()).toMatch(/^per 15 min, /);
    expect(await page.getByTestId('service-usage-day').getAttribute('aria-pressed')).toBe('true');
    expect(await received('web-svc-a')).toBe('5');
    expect(await received('web-svc-b')).toBe('4');
    // The day's 96 buckets, one tooltip each.
    const svg = page.locator('[data-testid=service-usage-row][data-service-id="web-svc-b"] svg');
    expect(await svg.locator('rect').count()).toBe(96);

    // The 30 days: a point per UTC day, today's uses from the events.
    await page.getByTestId('service-usage-month').click();
    await expect.poll(() => page.getByTestId('service-usage-caption').textContent()).toMatch(/^per day /);
    expect(await page.getByTestId('service-usage-month').getAttribute('aria-pressed')).toBe('true');
    expect(await received('web-svc-a')).toBe('5');
    expect(await received('web-svc-b')).toBe('4');
    expect(await svg.locator('rect').count()).toBe(30);

    await page.setViewportSize({ width: 375, height: 800 });
    await sleep(300);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page
      .getByTestId('service-usage')
      .screenshot({ path: join(shots, 'dashboard-service-usage-375px.png') });
    expect(pageErrors).toEqual([]);
    await context.close();
  });
});
