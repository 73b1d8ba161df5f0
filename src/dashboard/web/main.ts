// The operators' dashboard: sign-in, then the overview, which refreshes itself every
// ~2 s, or the Webhooks page (#webhooks, webhooks.ts), which loads when shown and
// after each change. The disabled webhook endpoints' notices show above both.
import { ApiError, apiDelete, apiGet, apiPost, qs, UnauthorizedError } from './api.js';
import { type BatchActions, renderBatchDetail, renderBatches, renderDead } from './batches.js';
import { renderChart } from './chart.js';
import { byId, fill, fmtNum } from './dom.js';
import { renderHealth } from './health.js';
import { type Drift, renderDrift } from './orders.js';
import { type RejectedEvents, renderRejected } from './rejected.js';
import { renderStatus } from './status.js';
import type {
  BatchDetail,
  BatchPage,
  BatchView,
  DouyinHealth,
  ReplayResult,
  ResolveResult,
  StatusResponse,
  TimeseriesResponse,
  UserResponse,
} from './types.js';
import { renderUser } from './user.js';
import { createWebhooksPage } from './webhooks.js';

const REFRESH_MS = 2_000;
/** The overview reloads the webhook notices this often, not on every refresh. */
const NOTICES_MS = 30_000;

type View = 'overview' | 'webhooks';

const el = {
  signin: byId('signin'),
  signinForm: byId<HTMLFormElement>('signin-form'),
  signinError: byId('signin-error'),
  nav: byId('nav'),
  dashboard: byId('dashboard'),
  whoami: byId('whoami'),
  signout: byId<HTMLButtonElement>('signout'),
  updated: byId('updated'),
  banner: byId('banner'),
  status: byId('status'),
  chart: byId('chart'),
  health: byId('health'),
  dead: byId('dead'),
  rejected: byId('rejected'),
  drift: byId('drift'),
  replayAll: byId<HTMLButtonElement>('replay-all'),
  replayMessage: byId('replay-message'),
  batchStatus: byId<HTMLSelectElement>('batch-status'),
  batches: byId('batches'),
  batchDetail: byId('batch-detail'),
  userForm: byId<HTMLFormElement>('user-form'),
  user: byId('user'),
  webhooksPage: byId('webhooks-page'),
  webhooksRefresh: byId<HTMLButtonElement>('webhooks-refresh'),
  webhooksList: byId('webhooks'),
  webhooksMessage: byId('webhooks-message'),
  webhookCreate: byId('webhook-create'),
  webhookNotices: byId('webhook-notices'),
};

let timer: number | undefined;
let signedIn = false;
let lookedUpUser: string | undefined;
/** The batch whose details are open, if any. */
let shownBatch: string | undefined;
/** When the overview last reloaded the webhook notices. */
let noticesAt = 0;

const webhooks = createWebhooksPage(
  {
    list: el.webhooksList,
    message: el.webhooksMessage,
    create: el.webhookCreate,
    notices: el.webhookNotices,
  },
  (err) => handle(err),
);

/** The page the address names: #webhooks, else the overview. */
const currentView = (): View => (window.location.hash === '#webhooks' ? 'webhooks' : 'overview');

const stamp = () => {
  el.updated.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
};

function loadWebhooks(): void {
  webhooks.load().then(() => {
    stamp();
    showBanner(undefined);
  }, handle);
}

function showBanner(message: string | undefined): void {
  el.banner.hidden = !message;
  el.banner.textContent = message ?? '';
}

function showSignIn(): void {
  signedIn = false;
  if (timer !== undefined) window.clearTimeout(timer);
  el.dashboard.hidden = true;
  el.webhooksPage.hidden = true;
  el.webhookNotices.hidden = true;
  el.nav.hidden = true;
  webhooks.clear();
  noticesAt = 0;
  el.signout.hidden = true;
  el.whoami.textContent = '';
  el.updated.textContent = '';
  el.signin.hidden = false;
  el.signinForm.querySelector<HTMLInputElement>('input[name=user]')?.focus();
}

function showDashboard(user: string): void {
  signedIn = true;
  el.signin.hidden = true;
  el.nav.hidden = false;
  el.signout.hidden = false;
  el.whoami.textContent = user;
  showView();
}

/** Shows the page the address names; leaving the Webhooks page forgets its shown secrets. */
function showView(): void {
  if (!signedIn) return;
  const view = currentView();
  for (const a of el.nav.querySelectorAll('a')) {
    if (a.dataset['view'] === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  el.dashboard.hidden = view !== 'overview';
  el.webhooksPage.hidden = view !== 'webhooks';
  if (view === 'webhooks') {
    if (timer !== undefined) window.clearTimeout(timer);
    loadWebhooks();
  } else {
    webhooks.clear();
    noticesAt = 0;
    void refresh();
  }
}

/** Errors of background work: sign-in again on 401, a banner otherwise. */
function handle(err: unknown): void {
  if (err instanceof UnauthorizedError) showSignIn();
  else showBanner(err instanceof Error ? err.message : String(err));
}

async function refresh(): Promise<void> {
  if (timer !== undefined) window.clearTimeout(timer);
  try {
    const status = el.batchStatus.value;
    const [s, series, health, recent, dead, rejected, drift] = await Promise.all([
      apiGet<StatusResponse>('/api/status'),
      apiGet<TimeseriesResponse>('/api/timeseries?minutes=60'),
      apiGet<DouyinHealth>('/api/douyin-health'),
      apiGet<BatchPage>(`/api/batches${qs({ status, limit: 25 })}`),
      apiGet<BatchPage>('/api/batches?status=dead&limit=100'),
      apiGet<RejectedEvents>('/api/rejected-events?limit=20'),
      apiGet<{ items: Drift[] }>('/api/drift?limit=50'),
    ]);
    renderStatus(el.status, s);
    fill(el.chart, renderChart(series.points));
    renderHealth(el.health, health);
    renderBatches(el.batches, recent.items, showBatch);
    renderDead(el.dead, dead.items, actions);
    el.replayAll.disabled = dead.items.length === 0;
    renderRejected(el.rejected, rejected);
    renderDrift(el.drift, drift.items);
    stamp();
    showBanner(undefined);
  } catch (err) {
    handle(err);
    if (!signedIn) return;
  }
  if (signedIn && Date.now() - noticesAt >= NOTICES_MS) {
    noticesAt = Date.now();
    webhooks.loadNotices().catch(handle);
  }
  if (signedIn && currentView() === 'overview') {
    // Two refreshes may overlap (an action's and the timer's): one timer still.
    if (timer !== undefined) window.clearTimeout(timer);
    timer = window.setTimeout(() => void refresh(), REFRESH_MS);
  }
}

async function showBatch(id: string): Promise<void> {
  try {
    const d = await apiGet<BatchDetail>(`/api/batches/${encodeURIComponent(id)}`);
    shownBatch = id;
    renderBatchDetail(
      el.batchDetail,
      d,
      () => {
        el.batchDetail.hidden = true;
        shownBatch = undefined;
      },
      actions,
    );
    el.batchDetail.scrollIntoView({ block: 'nearest' });
  } catch (err) {
    handle(err);
  }
}

type Skipped = ReplayResult['skipped'];

/**
 * What a replay or resolve did, in the dead-letter card and in the open batch's
 * details: the batches done and every skipped one with its reason (shown as an
 * error when nothing was done), or why the request failed.
 */
function report(done: { verb: string; ids: string[]; skipped: Skipped } | { error: string }): void {
  let text: string;
  let bad: boolean;
  if ('error' in done) {
    text = done.error;
    bad = true;
  } else {
    const ids = done.ids.length > 0 ? ` (${done.ids.join(', ')})` : '';
    const skipped =
      done.skipped.length > 0
        ? `; skipped ${done.skipped.map((s) => `${s.id}: ${s.reason}`).join('; ')}`
        : '';
    text = `${done.verb} ${done.ids.length} batch${done.ids.length === 1 ? '' : 'es'}${ids}${skipped}.`;
    bad = done.ids.length === 0 && done.skipped.length > 0;
  }
  const inDetail = el.batchDetail.querySelector<HTMLElement>('[data-testid=batch-action-message]');
  for (const target of [el.replayMessage, inDetail]) {
    if (!target) continue;
    target.textContent = text;
    target.className = bad ? 'error' : 'muted';
  }
}

/** Runs an action, then shows the page (and the open batch) as they are now, then its outcome. */
async function act(
  run: () => Promise<{ verb: string; ids: string[]; skipped: Skipped }>,
  batchId?: string,
): Promise<void> {
  try {
    const outcome = await run();
    await refresh();
    if (batchId !== undefined && shownBatch === batchId) await showBatch(batchId);
    report(outcome);
  } catch (err) {
    if (err instanceof UnauthorizedError) showSignIn();
    else report({ error: err instanceof Error ? err.message : String(err) });
  }
}

const batchPath = (id: string, action: string) => `/api/batches/${encodeURIComponent(id)}/${action}`;

function confirmResolve(b: BatchView, as: 'charged' | 'uncharged'): boolean {
  const uses = `${fmtNum(b.count)} use${b.count === 1 ? '' : 's'}`;
  return window.confirm(
    as === 'charged'
      ? `Resolve batch ${b.id} (${uses}) as charged?\n\nIts ${uses} are recorded as deducted on Douyin; Douyin is not called. Only after checking on Douyin that they were deducted.`
      : `Resolve batch ${b.id} (${uses}) as uncharged?\n\nIts ${uses} are recorded as not deducted by this batch. Only after checking on Douyin that they were not.`,
  );
}

const actions: BatchActions = {
  replay: (b) =>
    void act(async () => {
      const r = await apiPost<ReplayResult>(batchPath(b.id, 'replay'));
      return { verb: 'Replayed', ids: r.replayed, skipped: r.skipped };
    }, b.id),
  resolve: (b, as) => {
    if (!confirmResolve(b, as)) return;
    void act(async () => {
      const r = await apiPost<ResolveResult>(batchPath(b.id, 'resolve'), { as });
      return { verb: `Resolved as ${as}`, ids: r.resolved, skipped: r.skipped };
    }, b.id);
  },
};

el.replayAll.addEventListener('click', () => {
  if (!window.confirm('Replay every dead batch with its same out_trade_no and count?')) return;
  void act(async () => {
    const r = await apiPost<ReplayResult>('/api/batches/replay-dead');
    return { verb: 'Replayed', ids: r.replayed, skipped: r.skipped };
  });
});

el.batchStatus.addEventListener('change', () => void refresh());

el.webhooksRefresh.addEventListener('click', loadWebhooks);

window.addEventListener('hashchange', showView);

el.userForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const openId = String(new FormData(el.userForm).get('openId') ?? '').trim();
  if (!openId) return;
  lookedUpUser = openId;
  el.user.textContent = 'Loading…';
  try {
    const u = await apiGet<UserResponse>(`/api/users/${encodeURIComponent(openId)}`);
    if (lookedUpUser === openId) renderUser(el.user, u, showBatch);
  } catch (err) {
    if (err instanceof ApiError) el.user.textContent = err.message;
    else handle(err);
  }
});

el.signinForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(el.signinForm);
  el.signinError.textContent = '';
  try {
    const r = await apiPost<{ user: string }>('/api/session', {
      user: String(form.get('user') ?? ''),
      password: String(form.get('password') ?? ''),
    });
    el.signinForm.reset();
    showDashboard(r.user);
  } catch (err) {
    el.signinError.textContent =
      err instanceof UnauthorizedError
        ? 'Wrong user or password.'
        : err instanceof Error
          ? err.message
          : String(err);
  }
});

el.signout.addEventListener('click', async () => {
  await apiDelete('/api/session').catch(() => {});
  showSignIn();
});

// On load: already signed in (the cookie lives 12 h)?
apiGet<{ user: string }>('/api/session').then(
  (r) => showDashboard(r.user),
  () => showSignIn(),
);
