// One user: events by status, charged totals per service mode, what Douyin says
// remains right now (or why it could not say), their recent batches and events.
import { renderBatches } from './batches.js';
import { fill, fmtNum, fmtTime, h } from './dom.js';
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
        h(
          'tbody',
          {},
          ...u.remaining.flatMap((r) =>
            'error' in r
              ? [
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
                ]
              : r.purchases.length > 0
                ? r.purchases.map((p) => purchaseRow(r.serviceId, p))
                : [
                    h(
                      'tr',
                      {},
                      h('td', { class: 'mono' }, r.serviceId),
                      h('td', { colspan: 3, class: 'muted' }, 'no purchases'),
                    ),
                  ],
          ),
        ),
      ),
    ),
    h('h4', {}, 'Recent batches'),
    batchesEl,
    h('h4', {}, 'Events'),
    eventsEl,
  );
}
