// The pipeline at a glance: events and batches by status, BullMQ queue depths,
// how long the oldest event has been waiting for a batch, and charge alerts
// (success answers for batches a run could no longer settle).
import { fill, fmtAge, fmtNum, h } from './dom.js';
import type { StatusResponse } from './types.js';

const EVENT_STATES = ['pending', 'batched', 'charged', 'overage', 'insufficient', 'dead'];
const BATCH_STATES = ['open', 'charged', 'partial', 'insufficient', 'dead', 'voided'];
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'];

const stat = (testid: string, label: string, value: string, cls = '') =>
  h(
    'div',
    { class: `stat ${cls}` },
    h('span', { class: 'label' }, label),
    h('b', { 'data-testid': testid }, value),
  );

const group = (title: string, ...stats: HTMLElement[]) =>
  h('div', { class: 'group' }, h('h3', {}, title), h('div', { class: 'group-stats' }, ...stats));

export function renderStatus(el: HTMLElement, s: StatusResponse): void {
  const age = s.oldestPendingEventAgeSec;
  const alerts = s.chargeAlerts;
  fill(
    el,
    ...(alerts.total > 0
      ? [
          h(
            'div',
            { class: 'alert bad', 'data-testid': 'charge-alerts' },
            `${fmtNum(alerts.total)} charge alert(s): a success answer arrived for a batch no longer open. Newest: `,
            ...alerts.latest.map((a) =>
              h('code', {}, `${a.kind} batch ${a.batchId ?? '?'} (${a.outTradeNo ?? '?'}) ${a.at} `),
            ),
          ),
        ]
      : []),
    group(
      'Events',
      ...EVENT_STATES.map((st) =>
        stat(
          `stat-events-${st}`,
          st,
          fmtNum(s.events[st] ?? 0),
          st === 'dead' && (s.events[st] ?? 0) > 0 ? 'bad' : '',
        ),
      ),
      stat('stat-oldest-pending', 'oldest pending', fmtAge(age), age !== null && age > 60 ? 'warn' : ''),
    ),
    group(
      'Batches',
      ...BATCH_STATES.map((st) =>
        stat(
          `stat-batches-${st}`,
          st,
          fmtNum(s.batches[st] ?? 0),
          st === 'dead' && (s.batches[st] ?? 0) > 0 ? 'bad' : '',
        ),
      ),
    ),
    ...Object.entries(s.queues).map(([queue, counts]) =>
      group(
        `Queue “${queue}”`,
        ...QUEUE_STATES.map((st) =>
          stat(
            `stat-queue-${queue}-${st}`,
            st,
            fmtNum(counts[st] ?? 0),
            st === 'failed' && (counts[st] ?? 0) > 0 ? 'warn' : '',
          ),
        ),
      ),
    ),
  );
}
