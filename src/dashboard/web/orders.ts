// A user's orders from Douyin's webhook (GET /api/orders), newest first, on the
// user page; and the keys whose reconciliation found drift (GET /api/drift).
import { apiGet } from './api.js';
import { fill, fmtNum, fmtTime, h } from './dom.js';

interface Order {
  orderId: string;
  orderEvent: number;
  serviceId: string | null;
  serviceModeId: string | null;
  remainServiceTimes: number | null;
  receivedAt: string;
}

interface Drift {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  checkedAt: string;
  expected: number;
  actual: number;
  drift: number;
  cumulativeDrift: number;
  uncertain: number;
}

const ORDER_EVENTS: Record<number, string> = {
  1: 'paid',
  2: 'accepted',
  3: 'implementation confirmed',
  4: 'user confirmed',
  5: 'cancelled',
};

const table = (testid: string, head: string[], rows: HTMLTableRowElement[]) =>
  h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'data-testid': testid },
      h('thead', {}, h('tr', {}, ...head.map((c) => h('th', {}, c)))),
      h('tbody', {}, ...rows),
    ),
  );

/** Loads and shows the user's orders into `el`. */
export async function renderUserOrders(el: HTMLElement, openId: string): Promise<void> {
  try {
    const { items } = await apiGet<{ items: Order[] }>(
      `/api/orders?openId=${encodeURIComponent(openId)}&limit=50`,
    );
    if (items.length === 0) {
      fill(el, h('p', { class: 'muted', 'data-testid': 'orders-empty' }, 'No orders from Douyin’s webhook.'));
      return;
    }
    fill(
      el,
      table(
        'orders-table',
        ['received', 'order', 'event', 'service / mode', 'remaining'],
        items.map((o) =>
          h(
            'tr',
            { 'data-testid': 'order-row' },
            h('td', {}, fmtTime(o.receivedAt)),
            h('td', { class: 'mono' }, o.orderId),
            h('td', { 'data-testid': 'order-event' }, ORDER_EVENTS[o.orderEvent] ?? String(o.orderEvent)),
            h('td', { class: 'mono' }, `${o.serviceId ?? '–'}/${o.serviceModeId ?? '–'}`),
            h('td', { class: 'num' }, o.remainServiceTimes === null ? '–' : fmtNum(o.remainServiceTimes)),
          ),
        ),
      ),
    );
  } catch (err) {
    fill(el, h('p', { class: 'error' }, (err as Error).message));
  }
}

export function renderDrift(el: HTMLElement, items: Drift[]): void {
  if (items.length === 0) {
    fill(el, h('p', { class: 'muted', 'data-testid': 'drift-empty' }, 'No drift found by reconciliation.'));
    return;
  }
  fill(
    el,
    table(
      'drift-table',
      ['key', 'checked', 'Douyin', 'expected', 'drift', 'since first check', 'uncertain'],
      items.map((d) =>
        h(
          'tr',
          { 'data-testid': 'drift-row' },
          h('td', { class: 'mono' }, `${d.openId} ${d.serviceId}/${d.serviceModeId}`),
          h('td', {}, fmtTime(d.checkedAt)),
          h('td', { class: 'num' }, fmtNum(d.actual)),
          h('td', { class: 'num' }, fmtNum(d.expected)),
          h('td', { class: 'num' }, fmtNum(d.drift)),
          h('td', { class: 'num bad-text', 'data-testid': 'drift-cumulative' }, fmtNum(d.cumulativeDrift)),
          h('td', { class: 'num' }, fmtNum(d.uncertain)),
        ),
      ),
    ),
  );
}

export type { Drift };
