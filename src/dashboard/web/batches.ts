// Batch tables: recent batches (with a status filter), the dead-letter list with
// its Replay and Resolve buttons, and one batch's details (events and every call
// attempt; the same buttons when it is dead or insufficient). Test-mode batches
// (is_test_env: Douyin deducts nothing) carry a "test" badge everywhere.
import { badge, describeError, fill, fmtNum, fmtTime, h } from './dom.js';
import type { BatchDetail, BatchView } from './types.js';

/** What an operator can do with a dead or insufficient batch. */
export interface BatchActions {
  replay(b: BatchView): void;
  resolve(b: BatchView, as: 'charged' | 'uncharged'): void;
}

/** Batches an operator may replay or resolve by hand. */
const ACTIONABLE = ['dead', 'insufficient'];

const testBadge = (b: BatchView) =>
  b.isTestEnv
    ? h(
        'span',
        { class: 'badge st-test', 'data-testid': 'test-badge', title: 'test mode: Douyin deducts nothing' },
        'test',
      )
    : null;

const userCell = (b: BatchView) =>
  h(
    'td',
    { class: 'mono' },
    b.openId,
    h('span', { class: 'muted small' }, ` ${b.serviceId}/${b.serviceModeId}`),
  );

/** Replay, Resolve as charged, Resolve as uncharged; test ids carry `prefix`. */
function actionButtons(b: BatchView, actions: BatchActions, prefix: string): HTMLElement {
  const button = (testid: string, label: string, onclick: () => void, cls = '') =>
    h('button', { type: 'button', class: cls, 'data-testid': testid, onclick }, label);
  return h(
    'span',
    { class: 'actions' },
    button(`${prefix}replay-${b.id}`, 'Replay', () => actions.replay(b)),
    button(
      `${prefix}resolve-charged-${b.id}`,
      'Resolve as charged',
      () => actions.resolve(b, 'charged'),
      'secondary',
    ),
    button(
      `${prefix}resolve-uncharged-${b.id}`,
      'Resolve as uncharged',
      () => actions.resolve(b, 'uncharged'),
      'secondary',
    ),
  );
}

export function renderBatches(el: HTMLElement, items: BatchView[], onSelect: (id: string) => void): void {
  if (items.length === 0) {
    fill(el, h('p', { class: 'muted' }, 'No batches.'));
    return;
  }
  fill(
    el,
    h(
      'table',
      { 'data-testid': 'batches-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'id'),
          h('th', {}, 'status'),
          h('th', { class: 'num' }, 'count'),
          h('th', { class: 'hide-sm' }, 'user'),
          h('th', { class: 'num hide-sm' }, 'events'),
          h('th', {}, 'out_trade_no'),
          h('th', { class: 'num' }, 'attempts'),
          h('th', {}, 'logid'),
          h('th', { class: 'hide-sm' }, 'created'),
        ),
      ),
      h(
        'tbody',
        {},
        ...items.map((b) =>
          h(
            'tr',
            {
              class: 'clickable',
              'data-testid': 'batch-row',
              'data-batch-id': b.id,
              'data-status': b.status,
              title: 'show details',
              onclick: () => onSelect(b.id),
            },
            h('td', { class: 'num' }, b.id),
            h('td', { 'data-testid': 'batch-status' }, badge(b.status), ' ', testBadge(b)),
            h('td', { class: 'num' }, fmtNum(b.count)),
            withClass(userCell(b), 'hide-sm'),
            h('td', { class: 'num hide-sm' }, fmtNum(b.eventCount)),
            h('td', { class: 'mono' }, b.outTradeNo),
            h('td', { class: 'num' }, fmtNum(b.attempts)),
            h('td', { class: 'mono small' }, b.latestLogid ?? '–'),
            h('td', { class: 'hide-sm' }, fmtTime(b.createdAt)),
          ),
        ),
      ),
    ),
  );
}

function withClass<T extends HTMLElement>(el: T, cls: string): T {
  el.classList.add(cls);
  return el;
}

/** The dead letters' selection (kept across refreshes) and what the operator can do with it. */
export interface DeadSelection {
  /** Selected batch ids. */
  ids: Set<string>;
  /** The reason filter: a reason's first word (`deadline`, `derived_dead`…), or '' for all. */
  reason: string;
  /** Redraw after the selection or the filter changed. */
  changed(): void;
  act(kind: 'replay' | 'charged' | 'uncharged', batches: BatchView[]): void;
}

/** A dead reason's kind: its first word, before the colon (`deadline: retry deadline …`). */
export const reasonKind = (b: BatchView) => (b.deadReason ?? 'unknown').split(':')[0]!.trim() || 'unknown';

export function renderDead(
  el: HTMLElement,
  all: BatchView[],
  actions: BatchActions,
  sel: DeadSelection,
): void {
  if (all.length === 0) {
    sel.ids.clear();
    fill(el, h('p', { class: 'muted', 'data-testid': 'dead-empty' }, 'No dead batches.'));
    return;
  }
  const kinds = [...new Set(all.map(reasonKind))].sort();
  if (sel.reason && !kinds.includes(sel.reason)) sel.reason = '';
  const items = sel.reason ? all.filter((b) => reasonKind(b) === sel.reason) : all;
  // A selected batch no longer shown (replayed, resolved, filtered out) is not acted on.
  const shown = new Set(items.map((b) => b.id));
  for (const id of sel.ids) if (!shown.has(id)) sel.ids.delete(id);
  const chosen = items.filter((b) => sel.ids.has(b.id));
  const uses = chosen.reduce((n, b) => n + b.count, 0);
  const bulkButton = (testid: string, label: string, kind: 'replay' | 'charged' | 'uncharged', cls = '') =>
    h(
      'button',
      { type: 'button', class: cls, 'data-testid': testid, onclick: () => sel.act(kind, chosen) },
      label,
    );
  const toolbar = h(
    'div',
    { class: 'bulk', 'data-testid': 'dead-bulk' },
    h(
      'label',
      {},
      'Reason ',
      h(
        'select',
        {
          'data-testid': 'dead-reason-filter',
          onchange: (ev: Event) => {
            sel.reason = (ev.target as HTMLSelectElement).value;
            sel.changed();
          },
        },
        h('option', { value: '' }, `all (${fmtNum(all.length)})`),
        ...kinds.map((k) =>
          h(
            'option',
            { value: k, ...(k === sel.reason ? { selected: '' } : {}) },
            `${k} (${fmtNum(all.filter((b) => reasonKind(b) === k).length)})`,
          ),
        ),
      ),
    ),
    h(
      'span',
      { class: 'muted', 'data-testid': 'dead-selected' },
      `${fmtNum(chosen.length)} selected, ${fmtNum(uses)} use${uses === 1 ? '' : 's'}`,
    ),
    ...(chosen.length > 0
      ? [
          bulkButton('bulk-replay', 'Replay selected', 'replay'),
          bulkButton('bulk-charged', 'Resolve selected as charged', 'charged', 'secondary'),
          bulkButton('bulk-uncharged', 'Resolve selected as uncharged', 'uncharged', 'secondary'),
        ]
      : []),
  );
  const check = (b: BatchView) =>
    h('input', {
      type: 'checkbox',
      'data-testid': `dead-select-${b.id}`,
      'aria-label': `select batch ${b.id}`,
      ...(sel.ids.has(b.id) ? { checked: '' } : {}),
      onchange: (ev: Event) => {
        if ((ev.target as HTMLInputElement).checked) sel.ids.add(b.id);
        else sel.ids.delete(b.id);
        sel.changed();
      },
    });
  const allChecked = items.length > 0 && items.every((b) => sel.ids.has(b.id));
  fill(
    el,
    toolbar,
    h(
      'table',
      { 'data-testid': 'dead-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h(
            'th',
            {},
            h('input', {
              type: 'checkbox',
              'data-testid': 'dead-select-all',
              'aria-label': 'select every batch shown',
              ...(allChecked ? { checked: '' } : {}),
              onchange: (ev: Event) => {
                for (const b of items)
                  if ((ev.target as HTMLInputElement).checked) sel.ids.add(b.id);
                  else sel.ids.delete(b.id);
                sel.changed();
              },
            }),
          ),
          // The action first: on a phone it is visible without scrolling sideways.
          h('th', {}, ''),
          h('th', {}, 'id'),
          h('th', {}, 'user'),
          h('th', { class: 'num' }, 'count'),
          h('th', {}, 'out_trade_no'),
          h('th', { class: 'num' }, 'attempts'),
          h('th', { class: 'wide' }, 'reason'),
          h('th', {}, 'logid'),
        ),
      ),
      h(
        'tbody',
        {},
        ...items.map((b) =>
          h(
            'tr',
            { 'data-testid': 'dead-row', 'data-batch-id': b.id },
            h('td', {}, check(b)),
            h('td', {}, actionButtons(b, actions, '')),
            h('td', { class: 'num' }, b.id, ' ', testBadge(b)),
            userCell(b),
            h('td', { class: 'num' }, fmtNum(b.count)),
            h('td', { class: 'mono' }, b.outTradeNo),
            h('td', { class: 'num' }, fmtNum(b.attempts)),
            h(
              'td',
              { class: 'wide', 'data-testid': 'dead-reason' },
              b.deadReason ?? '–',
              b.lastError
                ? h(
                    'div',
                    { class: 'muted small' },
                    `last error: ${b.lastErrorKind ?? ''} ${b.lastErrorCode ?? ''} ${b.lastError}`,
                  )
                : null,
            ),
            h('td', { class: 'mono small' }, b.latestLogid ?? '–'),
          ),
        ),
      ),
    ),
  );
}

export function renderBatchDetail(
  el: HTMLElement,
  d: BatchDetail,
  onClose: () => void,
  actions: BatchActions,
): void {
  const b = d.batch;
  el.hidden = false;
  fill(
    el,
    h(
      'div',
      { class: 'card-head' },
      h('h3', {}, `Batch ${b.id} `, badge(b.status), ' ', testBadge(b)),
      h(
        'button',
        { type: 'button', class: 'link', onclick: onClose, 'data-testid': 'batch-detail-close' },
        'Close',
      ),
    ),
    h(
      'dl',
      { class: 'facts' },
      ...fact('user', `${b.openId} · ${b.serviceId}/${b.serviceModeId}${b.isTestEnv ? ' (test env)' : ''}`),
      ...fact('out_trade_no', b.outTradeNo),
      ...fact(
        'count',
        `${fmtNum(b.count)} (charged ${fmtNum(b.chargedCount)}, overage ${fmtNum(b.overageCount)})`,
      ),
      ...fact('events', fmtNum(d.events.total)),
      ...fact('created / finished', `${fmtTime(b.createdAt)} / ${fmtTime(b.finishedAt)}`),
      ...fact('deadline', fmtTime(b.deadlineAt)),
      ...(b.deadReason ? fact('dead reason', b.deadReason) : []),
      ...(b.resolvedAs ? fact('resolved', `as ${b.resolvedAs} by ${b.resolvedBy ?? 'unknown'}`) : []),
      ...(b.parentId ? fact('part of', `batch ${b.parentId}`) : []),
      ...(b.derived.length > 0
        ? fact('derived', b.derived.map((x) => `${x.id} ${x.status} ${x.count}`).join(', '))
        : []),
    ),
    ACTIONABLE.includes(b.status) ? h('div', { class: 'row' }, actionButtons(b, actions, 'detail-')) : null,
    // What the last action did here, skipped reasons included (main.ts fills it).
    h('p', { class: 'muted', 'data-testid': 'batch-action-message' }),
    h('h4', {}, `Call attempts (${d.attempts.length})`),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'data-testid': 'attempts-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, '#'),
            h('th', {}, 'time'),
            h('th', {}, 'outcome'),
            h('th', { class: 'num' }, 'ms'),
            h('th', { class: 'wide' }, 'error'),
            h('th', {}, 'logid'),
          ),
        ),
        h(
          'tbody',
          {},
          ...d.attempts.map((a) =>
            h(
              'tr',
              {},
              h('td', { class: 'num' }, a.attemptNo),
              h('td', {}, fmtTime(a.startedAt)),
              h('td', {}, badge(a.outcome === 'success' ? 'charged' : 'error'), ' ', a.errorKind ?? ''),
              h('td', { class: 'num' }, a.durationMs),
              h('td', { class: 'wide' }, describeError(a)),
              h('td', { class: 'mono small' }, a.logid ?? '–'),
            ),
          ),
        ),
      ),
    ),
    h('h4', {}, `Events (${d.events.shown} of ${fmtNum(d.events.total)})`),
    h(
      'div',
      { class: 'table-wrap short' },
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'eventId'),
            h('th', { class: 'num' }, 'count'),
            h('th', {}, 'status'),
            h('th', {}, 'received'),
          ),
        ),
        h(
          'tbody',
          {},
          ...d.events.items.map((e) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, e.eventId),
              h('td', { class: 'num' }, e.count),
              h('td', {}, badge(e.status)),
              h('td', {}, fmtTime(e.receivedAt)),
            ),
          ),
        ),
      ),
    ),
  );
}

const fact = (term: string, value: string) => [h('dt', {}, term), h('dd', {}, value)];
