// "Usage by service" on the overview (GET /api/service-usage): one small chart per
// service mode, uses received (blue area) and uses deducted on Douyin (green line)
// on the mode's own scale, with the totals beside it; test-mode keys are their own
// series, badged. A toggle switches between the last hour, the last day and the last
// 30 days.
//
// The hour is per minute (60 points) and is reloaded with the overview, every 2 s.
// The day is drawn in 15-minute buckets (96 points): per minute it would be 1,440
// points, four or more to a pixel on a 375 px phone and fifteen times the JSON,
// while hourly points (24) would hide a ten-minute outage or burst. A 15-minute
// bucket changes slowly, so the day is reloaded at most once a minute (the overview's
// refresh draws it from memory in between), and the server keeps it 30 s.
// The 30 days are a point per UTC day (30 points), read by the server from the days'
// totals (usage_daily) and today's events: reloaded at most once a minute too (the
// server keeps it 60 s).
import { apiGet, UnauthorizedError } from './api.js';
import { niceMax } from './chart.js';
import { fill, fmtNum, h, svg } from './dom.js';
import type { ServiceUsagePoint, ServiceUsageResponse, ServiceUsageSeries } from './types.js';

type View = 'hour' | 'day' | 'month';
const VIEWS = ['hour', 'day', 'month'] as const;

const PATH: Record<View, string> = {
  hour: '/api/service-usage?window=hour',
  day: '/api/service-usage?window=day&bucketMinutes=15',
  month: '/api/service-usage?window=month',
};
/** The day's and the 30 days' answers are asked again only when older than this. */
const SLOW_MAX_AGE_MS = 60_000;
/** How the empty view names its window. */
const SPAN: Record<View, string> = { hour: 'hour', day: 'day', month: '30 days' };

const W = 300;
const H = 48;

interface Card {
  root: HTMLElement;
  view: View;
  buttons: Record<View, HTMLButtonElement>;
  caption: HTMLElement;
  body: HTMLElement;
  /** The last answer of each view and when it was asked for. */
  data: Partial<Record<View, { askedAt: number; answer: ServiceUsageResponse }>>;
  /** Bumped by each request: only the newest request's answer of a view is kept. */
  asked: Record<View, number>;
}

let card: Card | undefined;

/**
 * Loads and draws the card in `root` (set up on the first call). Called with the
 * overview's other reads on every refresh; rejects as they do (the overview shows
 * the error), the toggle's own loads show theirs in the card.
 */
export async function refreshServiceUsage(root: HTMLElement): Promise<void> {
  if (card?.root !== root) card = setUp(root);
  await load(card);
}

function setUp(root: HTMLElement): Card {
  const button = (view: View, label: string) =>
    h(
      'button',
      { type: 'button', class: 'secondary', 'data-testid': `service-usage-${view}`, 'aria-pressed': 'false' },
      label,
    );
  const c: Card = {
    root,
    view: 'hour',
    buttons: {
      hour: button('hour', 'Last hour'),
      day: button('day', 'Last day'),
      month: button('month', '30 days'),
    },
    caption: h('span', { class: 'muted small', 'data-testid': 'service-usage-caption' }),
    body: h('div', { class: 'svc-list', 'data-testid': 'service-usage-list' }),
    data: {},
    asked: { hour: 0, day: 0, month: 0 },
  };
  for (const view of VIEWS)
    c.buttons[view].addEventListener('click', () => {
      if (c.view === view) return;
      c.view = view;
      draw(c);
      load(c).catch((err) => {
        if (c.view !== view || err instanceof UnauthorizedError) return; // the overview's refresh handles a 401
        fill(c.body, h('p', { class: 'error' }, err instanceof Error ? err.message : String(err)));
      });
    });
  fill(
    root,
    h(
      'div',
      { class: 'svc-controls' },
      h(
        'span',
        { class: 'seg', role: 'group', 'aria-label': 'window' },
        c.buttons.hour,
        c.buttons.day,
        c.buttons.month,
      ),
      c.caption,
    ),
    h(
      'div',
      { class: 'legend' },
      h('span', { class: 'key k-events' }, 'uses received'),
      h('span', { class: 'key k-deductions' }, 'uses deducted'),
    ),
    c.body,
  );
  draw(c);
  return c;
}

/** Asks for the shown view's data unless it is the day's or the 30 days' and recent enough, then draws it. */
async function load(c: Card): Promise<void> {
  const view = c.view;
  const held = c.data[view];
  if (view !== 'hour' && held && Date.now() - held.askedAt < SLOW_MAX_AGE_MS) return;
  const n = ++c.asked[view];
  const askedAt = Date.now();
  const answer = await apiGet<ServiceUsageResponse>(PATH[view]);
  if (n !== c.asked[view]) return;
  c.data[view] = { askedAt, answer };
  if (c.view === view) draw(c);
}

const clock = (iso: string) =>
  new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
/** A UTC day's date (the 30 days' buckets are UTC days). */
const date = (iso: string) =>
  new Date(iso).toLocaleDateString([], { month: 'short', day: 'numeric', timeZone: 'UTC' });

function draw(c: Card): void {
  for (const view of VIEWS) c.buttons[view].setAttribute('aria-pressed', String(view === c.view));
  c.root.dataset['window'] = c.view;
  const answer = c.data[c.view]?.answer;
  if (!answer) {
    c.caption.textContent = '';
    fill(c.body, h('p', { class: 'muted' }, 'Loading…'));
    return;
  }
  const per =
    answer.bucketMinutes === 1
      ? 'minute'
      : answer.bucketMinutes === 1440
        ? 'day'
        : `${answer.bucketMinutes} min`;
  // The day's ends show the same time of day: its start is named with its weekday.
  const since = new Date(answer.from).toLocaleString([], {
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hour12: false,
  });
  c.caption.textContent =
    c.view === 'hour'
      ? `per ${per}, ${clock(answer.from)}–${clock(answer.to)}`
      : c.view === 'day'
        ? `per ${per}, since ${since}`
        : `per ${per} (UTC), since ${date(answer.from)}`;
  if (answer.services.length === 0) {
    fill(
      c.body,
      h(
        'p',
        { class: 'muted', 'data-testid': 'service-usage-empty' },
        `No uses in the last ${SPAN[c.view]}.`,
      ),
    );
    return;
  }
  fill(c.body, ...answer.services.map((s) => row(s, per)));
}

function row(s: ServiceUsageSeries, per: string): HTMLElement {
  const peak = Math.max(0, ...s.points.map((p) => Math.max(p.received, p.deducted)));
  return h(
    'div',
    {
      class: 'svc',
      'data-testid': 'service-usage-row',
      'data-service-id': s.serviceId,
      'data-service-mode-id': s.serviceModeId,
      'data-test-env': String(s.isTestEnv),
    },
    h(
      'div',
      { class: 'svc-title' },
      h('span', { class: 'mono' }, s.serviceId),
      h('span', { class: 'muted' }, ' / '),
      h('span', { class: 'mono' }, s.serviceModeId),
      s.isTestEnv ? h('span', { class: 'badge st-test', 'data-testid': 'test-badge' }, 'test') : null,
    ),
    h(
      'div',
      { class: 'svc-totals small' },
      h('span', {}, 'received ', h('b', { 'data-testid': 'svc-received' }, fmtNum(s.totals.received))),
      h('span', {}, 'deducted ', h('b', { 'data-testid': 'svc-deducted' }, fmtNum(s.totals.deducted))),
      h('span', { class: 'muted' }, `peak ${fmtNum(peak)} / ${per}`),
    ),
    sparkline(s, per),
  );
}

/** The mode's buckets as a small chart scaled to its own peak, a tooltip per bucket. */
function sparkline(s: ServiceUsageSeries, per: string): SVGElement {
  const n = s.points.length;
  const max = niceMax(Math.max(0, ...s.points.map((p) => Math.max(p.received, p.deducted))));
  const x = (i: number) => (n <= 1 ? W / 2 : (W * i) / (n - 1));
  const y = (v: number) => H - 1 - ((H - 2) * v) / max;
  const coords = (value: (p: ServiceUsagePoint) => number) =>
    s.points.map((p, i) => `${x(i).toFixed(1)},${y(value(p)).toFixed(1)}`).join(' ');
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: 'none',
    class: 'spark',
    role: 'img',
    'aria-label': `${s.serviceId} / ${s.serviceModeId}: uses received and deducted per ${per}`,
  });
  root.append(
    svg('polygon', {
      points: `0,${H - 1} ${coords((p) => p.received)} ${W},${H - 1}`,
      class: 'spark-received',
    }),
    svg('polyline', { points: coords((p) => p.deducted), class: 'spark-deducted' }),
  );
  const colW = W / Math.max(n, 1);
  s.points.forEach((p, i) => {
    root.append(
      svg(
        'rect',
        { x: x(i) - colW / 2, y: 0, width: colW, height: H, class: 'hover' },
        svg(
          'title',
          {},
          `${per === 'day' ? date(p.t) : clock(p.t)}: ${fmtNum(p.received)} received, ${fmtNum(p.deducted)} deducted`,
        ),
      ),
    );
  });
  return root;
}
