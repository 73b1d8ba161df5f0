// The search page (#/search/:q, the header's box; GET /api/search): what the value
// names, typed (a batch by id or out_trade_no, an event, an attempt by Douyin's
// logid, a user by openId), each a link to its view. main.ts opens a lone result's
// view directly.
import { badge, fill, fmtNum, fmtTime, h } from './dom.js';
import { type Route, routeHash } from './router.js';
import type { SearchAnswer, SearchResult } from './types.js';

/** Where a result leads: a batch's details (an event's or attempt's batch), else the user. */
export function resultRoute(r: SearchResult): Route {
  switch (r.kind) {
    case 'batch':
      return { view: 'batch', id: r.id };
    case 'event':
      // A pending event is in no batch yet: its user's page lists it.
      return r.batchId ? { view: 'batch', id: r.batchId } : { view: 'user', openId: r.openId };
    case 'attempt':
      return { view: 'batch', id: r.batchId };
    case 'user':
      return { view: 'user', openId: r.openId };
  }
}

const keyText = (k: { serviceId: string; serviceModeId: string; isTestEnv: boolean }) =>
  `${k.serviceId}/${k.serviceModeId}${k.isTestEnv ? ' (test)' : ''}`;

/** The result's title (the link) and what else identifies it. */
function describe(r: SearchResult): { title: string; details: (Node | string)[] } {
  switch (r.kind) {
    case 'batch':
      return {
        title: `Batch ${r.id}`,
        details: [
          badge(r.status),
          ` ${fmtNum(r.count)} uses · `,
          h('span', { class: 'mono' }, r.outTradeNo),
          ` · ${r.openId} ${keyText(r)} · ${fmtTime(r.createdAt)}`,
          ...(r.parentId ? [` · part of batch ${r.parentId}`] : []),
        ],
      };
    case 'event':
      return {
        title: `Event ${r.eventId}`,
        details: [
          badge(r.status),
          ` ${fmtNum(r.count)} uses · ${r.batchId ? `batch ${r.batchId}` : 'in no batch yet'}`,
          ` · ${r.openId} ${keyText(r)} · received ${fmtTime(r.receivedAt)}`,
        ],
      };
    case 'attempt':
      return {
        title: `Attempt ${r.attemptNo} of batch ${r.batchId}`,
        details: [
          badge(r.outcome === 'success' ? 'charged' : 'error'),
          r.errorKind ? ` ${r.errorKind}` : '',
          ' · logid ',
          h('span', { class: 'mono' }, r.logid),
          ` · ${fmtTime(r.startedAt)} · batch `,
          badge(r.batchStatus),
          ` · ${r.openId} ${keyText(r)}`,
        ],
      };
    case 'user':
      return {
        title: `User ${r.openId}`,
        details: [
          `${r.keys.length}${r.moreKeys ? '+' : ''} key${r.keys.length === 1 ? '' : 's'}: `,
          r.keys.map(keyText).join(', ') + (r.moreKeys ? ', …' : ''),
        ],
      };
  }
}

export function renderSearch(el: HTMLElement, a: SearchAnswer): void {
  if (a.results.length === 0) {
    fill(
      el,
      h(
        'p',
        { class: 'muted', 'data-testid': 'search-empty' },
        `Nothing found for ${a.q}: it is no batch id, out_trade_no, eventId, logid or openId the ledger holds.`,
      ),
    );
    return;
  }
  const n = a.results.length;
  fill(
    el,
    h(
      'p',
      { class: 'muted', 'data-testid': 'search-summary' },
      `${n} result${n === 1 ? '' : 's'} for ${a.q}${a.truncated ? ' (more matched; the first shown)' : ''}.`,
    ),
    h(
      'ul',
      { class: 'results', 'data-testid': 'search-results' },
      ...a.results.map((r) => {
        const { title, details } = describe(r);
        return h(
          'li',
          { 'data-testid': 'search-result', 'data-kind': r.kind },
          h('span', { class: 'badge st-kind' }, r.kind),
          ' ',
          h('a', { href: routeHash(resultRoute(r)), 'data-testid': 'search-result-link' }, title),
          h('div', { class: 'small muted' }, ...details),
        );
      }),
    ),
  );
}
