// One user's events, newest first, a page at a time (GET /api/users/:openId/events),
// each linking to the batch that charged it.
import { apiGet } from './api.js';
import { badge, fill, fmtNum, fmtTime, h } from './dom.js';
import type { UserEventsPage, UserEventView } from './types.js';

const PAGE_SIZE = 20;

export function renderUserEvents(el: HTMLElement, openId: string, onSelectBatch: (id: string) => void): void {
  const rows = h('tbody', {});
  const more = h(
    'button',
    { type: 'button', class: 'link', 'data-testid': 'user-events-more' },
    'Older events',
  );
  more.hidden = true;
  let cursor: string | null = null;

  const row = (e: UserEventView) =>
    h(
      'tr',
      { 'data-testid': 'user-event-row' },
      h('td', {}, fmtTime(e.receivedAt)),
      h('td', { class: 'mono' }, e.eventId),
      h('td', { class: 'mono hide-sm' }, `${e.key.serviceId}/${e.key.serviceModeId}`),
      h('td', { class: 'num' }, fmtNum(e.count)),
      h('td', {}, badge(e.status)),
      h(
        'td',
        { class: 'num' },
        e.batchId
          ? h(
              'button',
              { type: 'button', class: 'link', onclick: () => onSelectBatch(e.batchId!) },
              e.batchId,
            )
          : '–',
      ),
    );

  const load = async () => {
    more.disabled = true;
    const query = `limit=${PAGE_SIZE}${cursor ? `&cursor=${cursor}` : ''}`;
    const page = await apiGet<UserEventsPage>(`/api/users/${encodeURIComponent(openId)}/events?${query}`);
    rows.append(...page.items.map(row));
    cursor = page.nextCursor;
    more.hidden = cursor === null;
    more.disabled = false;
  };
  const failed = (err: unknown) => fill(el, h('p', { class: 'error' }, `Events: ${(err as Error).message}`));
  more.addEventListener('click', () => void load().catch(failed));

  fill(
    el,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'data-testid': 'user-events' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'received'),
            h('th', {}, 'event id'),
            h('th', { class: 'hide-sm' }, 'service/mode'),
            h('th', { class: 'num' }, 'count'),
            h('th', {}, 'status'),
            h('th', { class: 'num' }, 'batch'),
          ),
        ),
        rows,
      ),
    ),
    more,
  );
  void load().catch(failed);
}
