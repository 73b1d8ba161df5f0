// The operators' dashboard: sign-in, then the page the address names (router.ts):
// the overview, which refreshes itself every ~2 s, with a batch's details (#/batches/:id),
// a user lookup (#/users/:openId) or the dead letters (#/dead) opened in it; the
// search page (#/search/:q, search.ts), from the header's box; or the Webhooks page
// (#/webhooks, webhooks.ts), which loads when shown and after each change. Opening a
// batch or looking a user up goes through the address, so the back button returns.
// The disabled webhook endpoints' notices show above every page.
import { ApiError, apiDelete, apiGet, apiPost, qs, UnauthorizedError } from './api.js';
import {
  type BatchActions,
  type DeadSelection,
  renderBatchDetail,
  renderBatches,
  renderDead,
} from './batches.js';
import { renderCharging } from './charging.js';
import { renderChart } from './chart.js';
import { byId, fill, fmtNum, h } from './dom.js';
import { renderHealth } from './health.js';
import { type Drift, renderDrift } from './orders.js';
import { type RejectedEvents, renderRejected } from './rejected.js';
import { createRouter, type Route } from './router.js';
import { renderSearch, resultRoute } from './search.js';
import { refreshServiceUsage } from './service-usage.js';
import { renderStatus } from './status.js';
import type {
  BatchDetail,
  BatchPage,
  BatchView,
  DouyinHealth,
  ReplayResult,
  ResolveResult,
  SearchAnswer,
  StatusResponse,
  TimeseriesResponse,
  UserResponse,
} from './types.js';
import { renderUser } from './user.js';
import { createWebhooksPage } from './webhooks.js';

const REFRESH_MS = 2_000;
/** The overview reloads the webhook notices this often, not on every refresh. */
const NOTICES_MS = 30_000;

/** The pages; every other route opens something within the overview. */
type Page = 'overview' | 'search' | 'webhooks';

const pageOf = (r: Route): Page => (r.view === 'webhooks' || r.view === 'search' ? r.view : 'overview');

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
  deadCard: byId('dead-card'),
  rejected: byId('rejected'),
  drift: byId('drift'),
  replayAll: byId<HTMLButtonElement>('replay-all'),
  replayMessage: byId('replay-message'),
  batchStatus: byId<HTMLSelectElement>('batch-status'),
  batches: byId('batches'),
  batchDetail: byId('batch-detail'),
  userForm: byId<HTMLFormElement>('user-form'),
  userCard: byId('user-card'),
  user: byId('user'),
  searchForm: byId<HTMLFormElement>('search-form'),
  searchPage: byId('search-page'),
  searchResults: byId('search-results'),
  webhooksPage: byId('webhooks-page'),
  webhooksRefresh: byId<HTMLButtonElement>('webhooks-refresh'),
  webhooksList: byId('webhooks'),
  webhooksMessage: byId('webhooks-message'),
  webhookCreate: byId('webhook-create'),
  webhookNotices: byId('webhook-notices'),
  chargingNotice: byId('charging-notice'),
  chargingControl: byId('charging-control'),
  serviceUsage: byId('service-usage'),
};

let timer: number | undefined;
let signedIn = false;
/** The route shown, and the page it is on (undefined before the first, after signing out). */
let route: Route = { view: 'overview' };
let page: Page | undefined;
let lookedUpUser: string | undefined;
/** The user whose lookup is rendered (and complete): going back to it shows it again as it was. */
let shownUser: string | undefined;
/** The batch whose details are open, if any. */
let shownBatch: string | undefined;
/** #/dead scrolls to the dead letters once the overview has drawn them. */
let scrollToDead = false;
/** The overview has drawn its data since it was last shown. */
let overviewDrawn = false;
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

const router = createRouter((r) => showRoute(r));
const openBatch = (id: string) => router.go({ view: 'batch', id });

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
  page = undefined;
  if (timer !== undefined) window.clearTimeout(timer);
  el.dashboard.hidden = true;
  el.webhooksPage.hidden = true;
  el.searchPage.hidden = true;
  el.searchForm.hidden = true;
  el.searchResults.replaceChildren();
  el.user.replaceChildren();
  shownUser = undefined;
  lookedUpUser = undefined;
  el.webhookNotices.hidden = true;
  el.chargingNotice.hidden = true;
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
  el.searchForm.hidden = false;
  el.whoami.textContent = user;
  // The address the page was opened at (a deep link) is shown now that the operator may see it.
  showRoute(router.current());
}

/**
 * Shows what a route names (on every change of the address, back and forward
 * included). Leaving the Webhooks page forgets its shown secrets. Within the
 * overview the address decides what is open: a batch's details only at its
 * #/batches/:id, a user lookup only at its #/users/:openId.
 */
function showRoute(r: Route): void {
  if (!signedIn) return;
  route = r;
  const next = pageOf(r);
  const tab = r.view === 'dead' || r.view === 'webhooks' ? r.view : next === 'overview' ? 'overview' : '';
  for (const a of el.nav.querySelectorAll('a')) {
    if (a.dataset['view'] === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  el.dashboard.hidden = next !== 'overview';
  el.webhooksPage.hidden = next !== 'webhooks';
  el.searchPage.hidden = next !== 'search';
  const entered = next !== page;
  page = next;
  if (next === 'webhooks') {
    if (timer !== undefined) window.clearTimeout(timer);
    loadWebhooks();
    return;
  }
  if (entered) {
    webhooks.clear();
    noticesAt = 0;
  }
  if (r.view === 'search') {
    if (timer !== undefined) window.clearTimeout(timer);
    loadNotices();
    void runSearch(r.q);
    return;
  }

  // The overview, and what the route opens in it.
  if (r.view === 'batch') {
    if (r.id !== shownBatch || el.batchDetail.hidden) void showBatch(r.id);
    else el.batchDetail.scrollIntoView({ block: 'nearest' });
  } else {
    el.batchDetail.hidden = true;
    shownBatch = undefined;
  }
  if (r.view === 'user') void lookUpUser(r.openId);
  else el.user.hidden = true;
  scrollToDead = r.view === 'dead';
  if (entered) {
    overviewDrawn = false;
    void refresh();
  } else if (scrollToDead && overviewDrawn) {
    scrollToDead = false;
    el.deadCard.scrollIntoView({ block: 'start' });
  }
}

/** The webhook notices, reloaded at most every NOTICES_MS. */
function loadNotices(): void {
  if (!signedIn || Date.now() - noticesAt < NOTICES_MS) return;
  noticesAt = Date.now();
  webhooks.loadNotices().catch(handle);
  // The pause notice on every page (the overview also draws it on each refresh).
  loadCharging().catch(handle);
}

/** Errors of background work: sign-in again on 401, a banner otherwise. */
function handle(err: unknown): void {
  if (err instanceof UnauthorizedError) showSignIn();
  else showBanner(err instanceof Error ? err.message : String(err));
}

/** Bumped by a pause or resume: an answer asked for before it is older than what is drawn. */
let chargingActions = 0;

/** The pause notice and button; an action's answer is drawn at once, then the overview refreshes. */
function showCharging(state: StatusResponse['charging']): void {
  renderCharging(
    { notice: el.chargingNotice, control: el.chargingControl },
    state,
    (next) => {
      chargingActions += 1;
      showCharging(next);
      if (page === 'overview') void refresh();
    },
    handle,
  );
}

/** Reads the pause state (never cached, unlike /api/status) and draws it unless an action came since. */
async function loadCharging(): Promise<void> {
  const asked = chargingActions;
  const state = await apiGet<StatusResponse['charging']>('/api/charging');
  if (asked === chargingActions) showCharging(state);
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
      // Not from the cached /api/status: a pause shows at once.
      loadCharging(),
      // Draws itself; the day view is reloaded at most once a minute.
      refreshServiceUsage(el.serviceUsage),
    ]);
    renderStatus(el.status, s);
    fill(el.chart, renderChart(series.points));
    renderHealth(el.health, health);
    renderBatches(el.batches, recent.items, openBatch);
    deadShown = dead.items;
    renderDead(el.dead, dead.items, actions, deadSelection);
    el.replayAll.disabled = dead.items.length === 0;
    renderRejected(el.rejected, rejected);
    renderDrift(el.drift, drift.items);
    stamp();
    showBanner(undefined);
    if (page === 'overview') {
      overviewDrawn = true;
      if (scrollToDead) {
        scrollToDead = false;
        el.deadCard.scrollIntoView({ block: 'start' });
      }
    }
  } catch (err) {
    handle(err);
    if (!signedIn) return;
  }
  loadNotices();
  if (signedIn && page === 'overview') {
    // Two refreshes may overlap (an action's and the timer's): one timer still.
    if (timer !== undefined) window.clearTimeout(timer);
    timer = window.setTimeout(() => void refresh(), REFRESH_MS);
  }
}

/** The route still names this batch (an answer arriving after the operator moved on draws nothing). */
const onBatchRoute = (id: string) => signedIn && route.view === 'batch' && route.id === id;

/** Closing the details goes back to the overview's address. */
const closeBatch = () => router.go({ view: 'overview' });

/** Loads and draws a batch's details (its route opens it; an action's outcome redraws it). */
async function showBatch(id: string): Promise<void> {
  try {
    const d = await apiGet<BatchDetail>(`/api/batches/${encodeURIComponent(id)}`);
    if (!onBatchRoute(id)) return;
    shownBatch = id;
    renderBatchDetail(el.batchDetail, d, closeBatch, actions);
    el.batchDetail.scrollIntoView({ block: 'nearest' });
  } catch (err) {
    if (!(err instanceof ApiError)) return handle(err);
    if (!onBatchRoute(id)) return;
    // A deep link to a batch that is not there: said where the details would be.
    shownBatch = id;
    el.batchDetail.hidden = false;
    fill(
      el.batchDetail,
      h(
        'div',
        { class: 'card-head' },
        h('h3', {}, `Batch ${id}`),
        h(
          'button',
          { type: 'button', class: 'link', onclick: closeBatch, 'data-testid': 'batch-detail-close' },
          'Close',
        ),
      ),
      h('p', { class: 'error', 'data-testid': 'batch-detail-error' }, err.message),
    );
    el.batchDetail.scrollIntoView({ block: 'nearest' });
  }
}

/** A user lookup (its route opens it): drawn again only when it is another user or was reloaded. */
async function lookUpUser(openId: string): Promise<void> {
  el.user.hidden = false;
  el.userForm.querySelector<HTMLInputElement>('input[name=openId]')!.value = openId;
  if (shownUser === openId && lookedUpUser === openId) {
    el.userCard.scrollIntoView({ block: 'nearest' });
    return;
  }
  lookedUpUser = openId;
  shownUser = undefined;
  el.user.textContent = 'Loading…';
  el.userCard.scrollIntoView({ block: 'nearest' });
  try {
    const u = await apiGet<UserResponse>(`/api/users/${encodeURIComponent(openId)}`);
    if (lookedUpUser !== openId) return;
    renderUser(el.user, u, openBatch);
    shownUser = openId;
  } catch (err) {
    if (lookedUpUser !== openId) return;
    if (err instanceof ApiError) el.user.textContent = err.message;
    else handle(err);
  }
}

/** Runs a search (its route opens it); a lone result opens its view in the search's place. */
async function runSearch(q: string): Promise<void> {
  const input = el.searchForm.querySelector<HTMLInputElement>('input[name=q]')!;
  input.value = q;
  fill(el.searchResults, h('p', { class: 'muted' }, `Searching for ${q}…`));
  const current = () => signedIn && route.view === 'search' && route.q === q;
  try {
    const a = await apiGet<SearchAnswer>(`/api/search${qs({ q })}`);
    if (!current()) return;
    if (a.results.length === 1) router.replace(resultRoute(a.results[0]!));
    else renderSearch(el.searchResults, a);
  } catch (err) {
    if (!current()) return;
    if (err instanceof ApiError)
      fill(el.searchResults, h('p', { class: 'error', 'data-testid': 'search-error' }, err.message));
    else handle(err);
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

/** The dead letters shown last, and the operator's selection among them (kept across refreshes). */
let deadShown: BatchView[] = [];
const deadSelection: DeadSelection = {
  ids: new Set(),
  reason: '',
  changed: () => renderDead(el.dead, deadShown, actions, deadSelection),
  act: (kind, batches) => {
    if (batches.length === 0) return;
    // A derived batch's uses are part of its parent's: counted once when both are chosen.
    const chosen = new Set(batches.map((b) => b.id));
    const uses = batches.reduce((n, b) => (b.parentId && chosen.has(b.parentId) ? n : n + b.count), 0);
    const what = `${fmtNum(batches.length)} batch${batches.length === 1 ? '' : 'es'} (${fmtNum(uses)} use${uses === 1 ? '' : 's'} at stake)`;
    const question =
      kind === 'replay'
        ? `Replay ${what}, each with its same out_trade_no and count?`
        : kind === 'charged'
          ? `Resolve ${what} as charged?\n\nTheir uses are recorded as deducted on Douyin; Douyin is not called. Only after checking on Douyin that they were deducted.`
          : `Resolve ${what} as uncharged?\n\nTheir uses are recorded as not deducted by these batches and charged again. Only after checking on Douyin that they were not.`;
    if (!window.confirm(question)) return;
    const ids = batches.map((b) => b.id);
    deadSelection.ids.clear();
    void act(async () => {
      if (kind === 'replay') {
        const r = await apiPost<ReplayResult>('/api/batches/replay', { ids });
        return { verb: 'Replayed', ids: r.replayed, skipped: r.skipped };
      }
      const r = await apiPost<ResolveResult>('/api/batches/resolve', { ids, as: kind });
      return { verb: `Resolved as ${kind}`, ids: r.resolved, skipped: r.skipped };
    });
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

el.userForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const openId = String(new FormData(el.userForm).get('openId') ?? '').trim();
  if (!openId) return;
  // Looked up again, even when it is the user shown: their numbers are live.
  shownUser = undefined;
  router.go({ view: 'user', openId });
});

el.searchForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const q = String(new FormData(el.searchForm).get('q') ?? '').trim();
  if (q) router.go({ view: 'search', q });
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
