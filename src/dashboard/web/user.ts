// One user: events by status, charged totals per service mode, what Douyin says
// remains right now (or why it could not say; 20 services a lookup, "More services"
// for the next), their orders from Douyin's webhook, recent batches and events.
import { apiGet, qs } from './api.js';
import { renderBatches } from './batches.js';
import { fill, fmtNum, fmtTime, h } from './dom.js';
import { renderUserOrders } from './orders.js';
import type { Purchase, UserResponse } from './types.js';
import { renderUserEvents } from './user-events.js';

const num = (v: unknown) => (typeof v === 'number' ? fmtNum(v) : '–');

function purchaseRow(serviceId: string, p: Purchase) {
  const title = [p.specificationTitle, p.serviceName].find((v) => typeof v === 'string') as
    | string
    | undefined;
  return h(
    'tr',
    { 'data-testid': 'remaining-row' },
    h('td', { class: 'mono' }, serviceId),
    h(
      'td',
      { class: 'mono' },
      String(p.serviceModeId ?? '–'),
      title ? h('span', { class: 'muted small' }, ` ${title}`) : null,
    ),
    h('td', { class: 'num', 'data-testid': 'remaining-times' }, num(p.remainServiceTimes)),
    h(
      'td',
      { class: 'hide-sm' },
      typeof p.expireTime === 'number' ? fmtTime(new Date(p.expireTime).toISOString()) : '–',
    ),
  );
}

/** The rows of one service's live purchases (or of why Douyin could not say). */
function remainingRows(r: UserResponse['remaining'][number]): HTMLTableRowElement[] {
  if ('error' in r)
    return [
      h(
        'tr',
        {},
        h('td', { class: 'mono' }, r.serviceId),
        h(
          'td',
          { colspan: 3, class: 'error', 'data-testid': 'remaining-error' },
          `Douyin: ${r.error.message}`,
        ),
      ),
    ];
  if (r.purchases.length > 0) return r.purchases.map((p) => purchaseRow(r.serviceId, p));
  return [
    h(
      'tr',
      {},
      h('td', { class: 'mono' }, r.serviceId),
      h('td', { colspan: 3, class: 'muted' }, 'no purchases'),
    ),
  ];
}

/** The next services' remaining times, appended to `rows` (each lookup reads at most 20 from Douyin). */
function moreServicesButton(openId: string, rows: HTMLElement, first: string | null): HTMLButtonElement {
  let cursor = first;
  const more = h(
    'button',
    { type: 'button', class: 'link', 'data-testid': 'remaining-more' },
    'More services',
  );
  more.hidden = cursor === null;
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const u = await apiGet<UserResponse>(
        `/api/users/${encodeURIComponent(openId)}${qs({ cursor: cursor ?? undefined })}`,
      );
      rows.append(...u.remaining.flatMap(remainingRows));
      cursor = u.nextCursor;
      more.hidden = cursor === null;
    } catch (err) {
      rows.append(h('tr', {}, h('td', { colspan: 4, class: 'error' }, (err as Error).message)));
    } finally {
      more.disabled = false;
    }
  });
  return more;
}

export function renderUser(el: HTMLElement, u: UserResponse, onSelectBatch: (id: string) => void): void {
  if (u.keys.length === 0 && u.remaining.length === 0) {
    fill(el, h('p', { class: 'muted', 'data-testid': 'user-unknown' }, `No usage recorded for ${u.openId}.`));
    return;
  }
  const events = Object.entries(u.events);
  const batchesEl = h('div', { class: 'table-wrap' });
  renderBatches(batchesEl, u.recentBatches, onSelectBatch);
  const eventsEl = h('div', {});
  renderUserEvents(eventsEl, u.openId, onSelectBatch);
  const ordersEl = h('div', { 'data-testid': 'user-orders' }, 'Loading…');
  void renderUserOrders(ordersEl, u.openId);
  const remainingBody = h('tbody', {}, ...u.remaining.flatMap(remainingRows));
  fill(
    el,
    h('h3', {}, u.openId),
    h(
      'div',
      { class: 'group-stats' },
      ...(events.length > 0
        ? events.map(([st, v]) =>
            h(
              'div',
              { class: 'stat' },
              h('span', { class: 'label' }, `${st} events`),
              h('b', { 'data-testid': `user-events-${st}` }, fmtNum(v.events)),
              h('span', { class: 'small muted' }, `${fmtNum(v.uses)} uses`),
            ),
          )
        : [h('p', { class: 'muted' }, 'No events.')]),
    ),
    h('h4', {}, 'Charged (uses deducted on Douyin)'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'data-testid': 'user-charged' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'service / mode'),
            h('th', { class: 'num' }, 'uses'),
            h('th', { class: 'num' }, 'batches'),
          ),
        ),
        h(
          'tbody',
          {},
          ...u.charged.map((c) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, `${c.serviceId}/${c.serviceModeId}${c.isTestEnv ? ' (test)' : ''}`),
              h('td', { class: 'num', 'data-testid': 'user-charged-uses' }, fmtNum(c.uses)),
              h('td', { class: 'num' }, fmtNum(c.batches)),
            ),
          ),
        ),
      ),
    ),
    h('h4', {}, 'Remaining on Douyin (live)'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'data-testid': 'user-remaining' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'service'),
            h('th', {}, 'mode'),
            h('th', { class: 'num' }, 'remaining'),
            h('th', { class: 'hide-sm' }, 'expires'),
          ),
        ),
        remainingBody,
      ),
    ),
    moreServicesButton(u.openId, remainingBody, u.nextCursor),
    h('h4', {}, 'Orders (Douyin’s webhook)'),
    ordersEl,
    h('h4', {}, 'Recent batches'),
    batchesEl,
    h('h4', {}, 'Events'),
    eventsEl,
  );
}
