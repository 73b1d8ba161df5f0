// Douyin call health over the last five minutes: error rate, latency, the newest
// failures with their logids (what Douyin support asks for), and the shared token.
import { describeError, fill, fmtAge, fmtMs, fmtNum, fmtPct, fmtTime, h } from './dom.js';
import type { DouyinHealth } from './types.js';

/** One line on the access token: cached or not, how long it has left, a failed refresh. */
function tokenLine(t: DouyinHealth['token']): HTMLElement {
  if (!t)
    return h(
      'p',
      { class: 'small muted', 'data-testid': 'token-status' },
      'Token: unknown (no Douyin client on this server, or Redis did not answer).',
    );
  const now = Date.now();
  const failedSince =
    t.lastError && (t.fetchedAt === null || t.lastError.at > t.fetchedAt) ? t.lastError : null;
  const state = t.cached
    ? `Token: cached, expires in ${fmtAge((t.expiresAt! - now) / 1000)}${
        t.fetchedAt ? `, fetched ${fmtAge((now - t.fetchedAt) / 1000)} ago` : ''
      }.`
    : 'Token: none cached (the next call fetches one).';
  return h(
    'p',
    { class: failedSince ? 'small bad-text' : 'small', 'data-testid': 'token-status' },
    state,
    failedSince
      ? ` Last refresh failed ${fmtTime(new Date(failedSince.at).toISOString())}: ${failedSince.kind}${
          failedSince.errorCode === null ? '' : ` ${failedSince.errorCode}`
        }, ${failedSince.description}`
      : '',
  );
}

export function renderHealth(el: HTMLElement, d: DouyinHealth): void {
  const rateClass =
    d.errorRate === null ? '' : d.errorRate > 0.2 ? 'bad' : d.errorRate > 0.02 ? 'warn' : 'good';
  const kinds = Object.entries(d.errorsByKind);
  fill(
    el,
    h(
      'div',
      { class: 'group-stats' },
      h(
        'div',
        { class: 'stat' },
        h('span', { class: 'label' }, 'calls'),
        h('b', { 'data-testid': 'health-attempts' }, fmtNum(d.attempts)),
      ),
      h(
        'div',
        { class: `stat ${rateClass}` },
        h('span', { class: 'label' }, 'error rate'),
        h('b', { 'data-testid': 'health-error-rate' }, fmtPct(d.errorRate)),
      ),
      h(
        'div',
        { class: 'stat' },
        h('span', { class: 'label' }, 'p50'),
        h('b', { 'data-testid': 'health-p50' }, fmtMs(d.p50Ms)),
      ),
      h(
        'div',
        { class: 'stat' },
        h('span', { class: 'label' }, 'p95'),
        h('b', { 'data-testid': 'health-p95' }, fmtMs(d.p95Ms)),
      ),
    ),
    tokenLine(d.token),
    kinds.length > 0
      ? h('p', { class: 'small' }, 'Errors by kind: ', kinds.map(([k, n]) => `${k} ${fmtNum(n)}`).join(' · '))
      : h('p', { class: 'small muted' }, 'No failed calls.'),
    d.lastErrors.length > 0
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { 'data-testid': 'health-errors' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'time'),
                h('th', {}, 'batch'),
                h('th', {}, 'kind'),
                h('th', { class: 'wide' }, 'error'),
                h('th', {}, 'logid'),
              ),
            ),
            h(
              'tbody',
              {},
              ...d.lastErrors.map((e) =>
                h(
                  'tr',
                  {},
                  h('td', {}, fmtTime(e.startedAt)),
                  h('td', { class: 'num' }, e.batchId),
                  h('td', {}, e.errorKind ?? '–'),
                  h('td', { class: 'wide' }, describeError(e)),
                  h('td', { class: 'mono' }, e.logid ?? '–'),
                ),
              ),
            ),
          ),
        )
      : null,
  );
}
