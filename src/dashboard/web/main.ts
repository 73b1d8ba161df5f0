// The operators' dashboard: sign-in, then a page that refreshes itself every ~2 s.
import { ApiError, apiDelete, apiGet, apiPost, qs, UnauthorizedError } from './api.js';
import { renderBatchDetail, renderBatches, renderDead } from './batches.js';
import { renderChart } from './chart.js';
import { byId, fill } from './dom.js';
import { renderHealth } from './health.js';
import { renderStatus } from './status.js';
import type {
  BatchDetail,
  BatchPage,
  DouyinHealth,
  ReplayResult,
  StatusResponse,
  TimeseriesResponse,
  UserResponse,
} from './types.js';
import { renderUser } from './user.js';

const REFRESH_MS = 2_000;

const el = {
  signin: byId('signin'),
  signinForm: byId<HTMLFormElement>('signin-form'),
  signinError: byId('signin-error'),
  dashboard: byId('dashboard'),
  whoami: byId('whoami'),
  signout: byId<HTMLButtonElement>('signout'),
  updated: byId('updated'),
  banner: byId('banner'),
  status: byId('status'),
  chart: byId('chart'),
  health: byId('health'),
  dead: byId('dead'),
  replayAll: byId<HTMLButtonElement>('replay-all'),
  replayMessage: byId('replay-message'),
  batchStatus: byId<HTMLSelectElement>('batch-status'),
  batches: byId('batches'),
  batchDetail: byId('batch-detail'),
  userForm: byId<HTMLFormElement>('user-form'),
  user: byId('user'),
};

let timer: number | undefined;
let signedIn = false;
let lookedUpUser: string | undefined;

function showBanner(message: string | undefined): void {
  el.banner.hidden = !message;
  el.banner.textContent = message ?? '';
}

function showSignIn(): void {
  signedIn = false;
  if (timer !== undefined) window.clearTimeout(timer);
  el.dashboard.hidden = true;
  el.signout.hidden = true;
  el.whoami.textContent = '';
  el.updated.textContent = '';
  el.signin.hidden = false;
  el.signinForm.querySelector<HTMLInputElement>('input[name=user]')?.focus();
}

function showDashboard(user: string): void {
  signedIn = true;
  el.signin.hidden = true;
  el.dashboard.hidden = false;
  el.signout.hidden = false;
  el.whoami.textContent = user;
  void refresh();
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
    const [s, series, health, recent, dead] = await Promise.all([
      apiGet<StatusResponse>('/api/status'),
      apiGet<TimeseriesResponse>('/api/timeseries?minutes=60'),
      apiGet<DouyinHealth>('/api/douyin-health'),
      apiGet<BatchPage>(`/api/batches${qs({ status, limit: 25 })}`),
      apiGet<BatchPage>('/api/batches?status=dead&limit=100'),
    ]);
    renderStatus(el.status, s);
    fill(el.chart, renderChart(series.points));
    renderHealth(el.health, health);
    renderBatches(el.batches, recent.items, showBatch);
    renderDead(el.dead, dead.items, replayOne);
    el.replayAll.disabled = dead.items.length === 0;
    el.updated.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    showBanner(undefined);
  } catch (err) {
    handle(err);
    if (!signedIn) return;
  }
  if (signedIn) timer = window.setTimeout(() => void refresh(), REFRESH_MS);
}

async function showBatch(id: string): Promise<void> {
  try {
    const d = await apiGet<BatchDetail>(`/api/batches/${encodeURIComponent(id)}`);
    renderBatchDetail(el.batchDetail, d, () => {
      el.batchDetail.hidden = true;
    });
    el.batchDetail.scrollIntoView({ block: 'nearest' });
  } catch (err) {
    handle(err);
  }
}

function reportReplay(r: ReplayResult): void {
  const parts = [`Replayed ${r.replayed.length} batch${r.replayed.length === 1 ? '' : 'es'}`];
  if (r.replayed.length > 0) parts.push(`(${r.replayed.join(', ')})`);
  if (r.skipped.length > 0)
    parts.push(`; skipped ${r.skipped.map((s) => `${s.id}: ${s.reason}`).join('; ')}`);
  el.replayMessage.textContent = `${parts.join(' ')}.`;
}

async function replayOne(id: string): Promise<void> {
  try {
    reportReplay(await apiPost<ReplayResult>(`/api/batches/${encodeURIComponent(id)}/replay`));
    await refresh();
  } catch (err) {
    handle(err);
  }
}

el.replayAll.addEventListener('click', async () => {
  if (!window.confirm('Replay every dead batch with its same out_trade_no and count?')) return;
  try {
    reportReplay(await apiPost<ReplayResult>('/api/batches/replay-dead'));
    await refresh();
  } catch (err) {
    handle(err);
  }
});

el.batchStatus.addEventListener('change', () => void refresh());

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
