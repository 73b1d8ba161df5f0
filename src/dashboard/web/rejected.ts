// Events the ledger refused (rejected_event): how many, and the newest with their
// reason. They are not charged; an operator reads why and fixes the producer.
import type { RejectedEventView } from '../../ledger/rejected-events.js';
import { fill, fmtNum, fmtTime, h } from './dom.js';

export interface RejectedEvents {
  total: number;
  latest: RejectedEventView[];
}

export function renderRejected(el: HTMLElement, r: RejectedEvents): void {
  if (r.latest.length === 0) {
    fill(el, h('p', { class: 'muted', 'data-testid': 'rejected-empty' }, 'No rejected events.'));
    return;
  }
  const count = h(
    'b',
    { 'data-testid': 'rejected-total', class: r.total > 0 ? 'bad-text' : '' },
    fmtNum(r.total),
  );
  fill(
    el,
    h('p', { class: 'small' }, count, ' rejected in all; the newest:'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'data-testid': 'rejected-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'time'),
            h('th', {}, 'eventId'),
            h('th', {}, 'source'),
            h('th', { class: 'wide' }, 'reason'),
          ),
        ),
        h(
          'tbody',
          {},
          ...r.latest.map((e) =>
            h(
              'tr',
              { 'data-testid': 'rejected-row', title: e.raw },
              h('td', {}, fmtTime(e.receivedAt)),
              h('td', { class: 'mono' }, e.eventId ?? '–'),
              h('td', {}, e.source),
              h('td', { class: 'wide' }, e.reason),
            ),
          ),
        ),
      ),
    ),
  );
}
