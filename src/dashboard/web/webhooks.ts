// The Webhooks page: the endpoints the meter's signed webhooks go to
// (/api/webhook-endpoints, docs/notifications.md). Make one, change its URL, event
// types, threshold or description, enable or disable it, rotate its secret, delete
// it; read its delivery log and redeliver. On every page, a notice for each disabled
// endpoint (the workers disable one failing for 24 h) with an Enable button. A
// signing secret comes in one answer only (made, rotated): it is shown in a
// read-only field until the operator closes it, and never again.
import { apiDelete, apiGet, apiPatch, apiPost, qs, UnauthorizedError } from './api.js';
import { badge, fill, fmtNum, fmtTime, h } from './dom.js';
import type {
  DeliveryPage,
  DeliveryView,
  EndpointView,
  EndpointWithSecret,
  WebhookEndpointList,
} from './types.js';

const DELIVERY_PAGE_SIZE = 25;
const DELIVERY_STATUSES = ['pending', 'delivered', 'failed', 'cancelled'] as const;
/** A rotation's choices: how long the old secret stays valid (keepOldForSec). */
const KEEP_OLD = [
  { sec: 86_400, label: 'old secret valid 24 h more' },
  { sec: 0, label: 'revoke the old secret now' },
];
/** Types worth a word next to their checkbox. */
const TYPE_NOTES: Record<string, string> = { 'batch.charged': 'one per charged batch: opt-in' };

interface EndpointInput {
  url: string;
  description: string;
  lowBalanceThreshold: number;
  eventTypes: string[];
}

export interface WebhooksPageElements {
  /** The endpoints' list. */
  list: HTMLElement;
  /** What the last list action did (a deletion, a failure to load). */
  message: HTMLElement;
  /** The "new endpoint" form. */
  create: HTMLElement;
  /** The disabled endpoints' notices, above every page. */
  notices: HTMLElement;
}

export interface WebhooksPage {
  /** Loads the endpoints and shows them, with the notices. */
  load(): Promise<void>;
  /** Loads the endpoints for the notices only (the overview shows them too). */
  loadNotices(): Promise<void>;
  /** Forgets what is shown, secrets included: on leaving the page or signing out. */
  clear(): void;
}

/** An error as text, or undefined when it was a lost session (handed to `onError`: sign in again). */
function failureText(err: unknown, onError: (err: unknown) => void): string | undefined {
  if (err instanceof UnauthorizedError) {
    onError(err);
    return undefined;
  }
  return err instanceof Error ? err.message : String(err);
}

const setMessage = (el: HTMLElement, text: string, bad: boolean) => {
  el.textContent = text;
  el.className = bad ? 'error' : 'muted';
};

const endpointPath = (id: string, rest = '') => `/api/webhook-endpoints/${encodeURIComponent(id)}${rest}`;

export function renderNotices(
  el: HTMLElement,
  items: EndpointView[],
  onEnable: (e: EndpointView, message: HTMLElement) => void,
): void {
  const disabled = items.filter((e) => !e.enabled);
  el.hidden = disabled.length === 0;
  fill(
    el,
    ...disabled.map((e) => {
      const message = h('span', { class: 'small', 'data-testid': 'notice-message' });
      return h(
        'div',
        {
          class: 'notice',
          role: 'alert',
          'data-testid': 'webhook-disabled-notice',
          'data-endpoint-id': e.id,
        },
        h(
          'div',
          { class: 'notice-text' },
          h('b', {}, `Webhook endpoint ${e.id} is disabled`),
          ` since ${fmtTime(e.disabledAt)}: `,
          h('span', { 'data-testid': 'notice-reason' }, e.disabledReason ?? 'no reason recorded'),
          '. Nothing is sent to ',
          h('span', { class: 'mono' }, e.url),
          ' until it is enabled. ',
          message,
        ),
        h(
          'button',
          { type: 'button', 'data-testid': `notice-enable-${e.id}`, onclick: () => onEnable(e, message) },
          'Enable',
        ),
      );
    }),
  );
}

/** The values of an endpoint form. */
function readForm(form: HTMLFormElement): EndpointInput {
  const data = new FormData(form);
  return {
    url: String(data.get('url') ?? '').trim(),
    description: String(data.get('description') ?? ''),
    lowBalanceThreshold: Number(data.get('lowBalanceThreshold')),
    eventTypes: data.getAll('eventTypes').map(String),
  };
}

/** The event types' checkboxes, `checked` ticked. */
const typeChecks = (types: string[], checked: string[]) =>
  h(
    'fieldset',
    { class: 'types' },
    h('legend', {}, 'Event types'),
    ...types.map((t) =>
      h(
        'label',
        { class: 'check' },
        h('input', {
          type: 'checkbox',
          name: 'eventTypes',
          value: t,
          checked: checked.includes(t),
          'data-testid': `form-type-${t}`,
        }),
        h('span', { class: 'mono' }, t),
        TYPE_NOTES[t] ? h('span', { class: 'muted small' }, `(${TYPE_NOTES[t]})`) : null,
      ),
    ),
  );

/** A form of an endpoint's fields, new or edited; a failed `onSubmit` is shown under it. */
function endpointForm(o: {
  testid: string;
  types: string[];
  values: EndpointInput;
  submitLabel: string;
  onSubmit: (v: EndpointInput) => Promise<void>;
  onCancel?: () => void;
  onError: (err: unknown) => void;
}): HTMLFormElement {
  const v = o.values;
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'form-error' });
  const submit = h('button', { type: 'submit', 'data-testid': 'form-submit' }, o.submitLabel);
  const form = h(
    'form',
    { class: 'endpoint-form', 'data-testid': o.testid },
    h(
      'label',
      {},
      'URL',
      h('input', {
        name: 'url',
        type: 'url',
        required: true,
        maxlength: 2048,
        placeholder: 'https://example.com/meter-webhook',
        autocomplete: 'off',
        value: v.url,
        'data-testid': 'form-url',
      }),
    ),
    h(
      'label',
      {},
      'Description',
      h('input', {
        name: 'description',
        maxlength: 500,
        value: v.description,
        'data-testid': 'form-description',
      }),
    ),
    h(
      'label',
      {},
      'Low-balance threshold',
      h('input', {
        name: 'lowBalanceThreshold',
        type: 'number',
        min: 0,
        step: 1,
        required: true,
        value: v.lowBalanceThreshold,
        'data-testid': 'form-threshold',
      }),
      h('span', { class: 'muted small' }, 'balance.low: a user has fewer uses left than this'),
    ),
    typeChecks(o.types, v.eventTypes),
    h(
      'div',
      { class: 'actions' },
      submit,
      o.onCancel
        ? h(
            'button',
            { type: 'button', class: 'secondary', onclick: o.onCancel, 'data-testid': 'form-cancel' },
            'Cancel',
          )
        : null,
    ),
    error,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      await o.onSubmit(readForm(form));
    } catch (err) {
      error.textContent = failureText(err, o.onError) ?? '';
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** A secret shown once, with the warning that it is. */
function secretBox(title: string, secret: string, onDone: () => void): HTMLElement {
  return h(
    'div',
    { class: 'secret', 'data-testid': 'webhook-secret-box' },
    h(
      'label',
      {},
      title,
      h('input', {
        readonly: true,
        value: secret,
        class: 'mono',
        spellcheck: 'false',
        autocomplete: 'off',
        'data-testid': 'webhook-secret',
        onfocus: (ev: Event) => (ev.target as HTMLInputElement).select(),
      }),
    ),
    h(
      'p',
      { class: 'small warn-text', 'data-testid': 'webhook-secret-note' },
      'Copy it now, it is not shown again. Receivers check each delivery’s signature with it.',
    ),
    h(
      'button',
      { type: 'button', class: 'secondary', onclick: onDone, 'data-testid': 'webhook-secret-done' },
      'I have copied it',
    ),
  );
}

const countsText = (e: EndpointView) =>
  DELIVERY_STATUSES.map((s) => `${fmtNum(e.deliveries[s])} ${s}`).join(' · ');

const fact = (term: string, value: Node | string, testid?: string) => [
  h('dt', {}, term),
  h('dd', { 'data-testid': testid }, value),
];

function endpointFacts(e: EndpointView): HTMLElement {
  return h(
    'dl',
    { class: 'facts' },
    ...fact('event types', e.eventTypes.join(', '), 'endpoint-types'),
    ...fact('low balance', `below ${fmtNum(e.lowBalanceThreshold)} uses`, 'endpoint-threshold'),
    ...fact('deliveries', countsText(e), 'endpoint-counts'),
    ...fact(
      'failing since',
      e.failingSince ? h('span', { class: 'bad-text' }, fmtTime(e.failingSince)) : '–',
      'endpoint-failing',
    ),
    ...(e.previousSecretUntil ? fact('old secret valid until', fmtTime(e.previousSecretUntil)) : []),
    ...(e.disabledAt ? fact('disabled', `${fmtTime(e.disabledAt)}: ${e.disabledReason ?? ''}`) : []),
    ...fact('created', fmtTime(e.createdAt)),
  );
}

function deliveryRow(d: DeliveryView, canRedeliver: boolean, onRedeliver: (row: HTMLElement) => void) {
  const row: HTMLTableRowElement = h(
    'tr',
    { 'data-testid': 'delivery-row', 'data-delivery-id': d.id, 'data-status': d.status },
    h(
      'td',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'secondary',
          disabled: !canRedeliver,
          title: canRedeliver ? 'send it again, same notification id and body' : 'enable the endpoint first',
          'data-testid': 'delivery-redeliver',
          onclick: () => onRedeliver(row),
        },
        'Redeliver',
      ),
    ),
    h('td', {}, fmtTime(d.notificationCreatedAt)),
    h('td', { class: 'mono' }, d.type),
    h('td', { class: 'mono small' }, d.notificationId),
    h(
      'td',
      { 'data-testid': 'delivery-status' },
      badge(d.status),
      d.redeliveries > 0 ? h('span', { class: 'muted small' }, ` redelivered ×${d.redeliveries}`) : null,
    ),
    h('td', { class: 'num', 'data-testid': 'delivery-attempts' }, fmtNum(d.attempts)),
    h('td', { class: 'num', 'data-testid': 'delivery-code' }, d.lastStatusCode ?? '–'),
    h('td', { class: 'wide', 'data-testid': 'delivery-error' }, d.lastError ?? '–'),
    h('td', {}, fmtTime(d.nextAttemptAt)),
  );
  return row;
}

/** An endpoint's delivery log: newest first, a status filter, "Load more", Redeliver per row. */
function deliveryLog(
  e: EndpointView,
  status: string,
  onStatus: (status: string) => void,
  onError: (err: unknown) => void,
): HTMLElement {
  const rows = h('tbody', {});
  const message = h('p', { class: 'muted', 'data-testid': 'delivery-message' });
  const more = h('button', { type: 'button', class: 'link', 'data-testid': 'deliveries-more' }, 'Load more');
  const filter = h(
    'select',
    { 'data-testid': 'delivery-status-filter' },
    h('option', { value: '' }, 'all'),
    ...DELIVERY_STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)),
  );
  let cursor: string | null = null;

  const redeliver = async (row: HTMLElement) => {
    const id = row.getAttribute('data-delivery-id') ?? '';
    try {
      const r = await apiPost<{ delivery: DeliveryView }>(
        endpointPath(e.id, `/deliveries/${encodeURIComponent(id)}/redeliver`),
      );
      row.replaceWith(deliveryRow(r.delivery, e.enabled, (next) => void redeliver(next)));
      setMessage(message, `Delivery ${id} is queued to be sent again.`, false);
    } catch (err) {
      const text = failureText(err, onError);
      if (text !== undefined) setMessage(message, `Delivery ${id}: ${text}`, true);
    }
  };
  const load = async () => {
    more.disabled = true;
    try {
      const page = await apiGet<DeliveryPage>(
        endpointPath(
          e.id,
          `/deliveries${qs({ status: filter.value, limit: DELIVERY_PAGE_SIZE, cursor: cursor ?? undefined })}`,
        ),
      );
      rows.append(...page.items.map((d) => deliveryRow(d, e.enabled, (row) => void redeliver(row))));
      cursor = page.nextCursor;
      more.hidden = cursor === null;
      if (rows.childElementCount === 0)
        setMessage(message, filter.value ? `No ${filter.value} deliveries.` : 'No deliveries yet.', false);
    } catch (err) {
      const text = failureText(err, onError);
      if (text !== undefined) setMessage(message, `Deliveries: ${text}`, true);
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => void load());
  filter.addEventListener('change', () => {
    onStatus(filter.value);
    rows.replaceChildren();
    cursor = null;
    message.textContent = '';
    void load();
  });
  more.hidden = true;
  void load();

  return h(
    'div',
    { class: 'delivery-log', 'data-testid': 'delivery-log' },
    h(
      'div',
      { class: 'card-head' },
      h('h4', {}, 'Delivery log'),
      h('label', { class: 'inline' }, 'Status', filter),
    ),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'data-testid': 'delivery-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            // The action first: on a phone it is visible without scrolling sideways.
            h('th', {}, ''),
            h('th', {}, 'time'),
            h('th', {}, 'type'),
            h('th', {}, 'notification'),
            h('th', {}, 'status'),
            h('th', { class: 'num' }, 'attempts'),
            h('th', { class: 'num' }, 'last code'),
            h('th', { class: 'wide' }, 'last error'),
            h('th', {}, 'next attempt'),
          ),
        ),
        rows,
      ),
    ),
    more,
    message,
  );
}

/** The fields of `v` that differ from the endpoint's. */
function changes(e: EndpointView, v: EndpointInput): Partial<EndpointInput> {
  const patch: Partial<EndpointInput> = {};
  if (v.url !== e.url) patch.url = v.url;
  if (v.description !== e.description) patch.description = v.description;
  if (v.lowBalanceThreshold !== e.lowBalanceThreshold) patch.lowBalanceThreshold = v.lowBalanceThreshold;
  if ([...v.eventTypes].sort().join() !== [...e.eventTypes].sort().join()) patch.eventTypes = v.eventTypes;
  return patch;
}

/** What an endpoint's block can ask of the page. */
interface EndpointActions {
  types: string[];
  /** A secret from a rotation, until closed. */
  secret: string | undefined;
  /** The outcome of the last action on it. */
  message: { text: string; bad: boolean } | undefined;
  /** The delivery log's status filter when it is open. */
  logStatus: string | undefined;
  save(patch: Partial<EndpointInput>): Promise<void>;
  setEnabled(enabled: boolean): void;
  rotate(keepOldForSec: number): void;
  remove(): void;
  closeSecret(): void;
  /** Notes the delivery log open with this filter, or closed (undefined). */
  setLog(status: string | undefined): void;
  onError(err: unknown): void;
}

/** The rotation's choice of how long the old secret stays valid, then Rotate. */
function rotatePanel(a: EndpointActions, onCancel: () => void): HTMLElement {
  const keep = h(
    'select',
    { 'data-testid': 'rotate-keep' },
    ...KEEP_OLD.map((k) => h('option', { value: k.sec }, k.label)),
  );
  return h(
    'div',
    { class: 'actions' },
    keep,
    h(
      'button',
      { type: 'button', 'data-testid': 'rotate-submit', onclick: () => a.rotate(Number(keep.value)) },
      'Rotate secret',
    ),
    h('button', { type: 'button', class: 'secondary', onclick: onCancel }, 'Cancel'),
  );
}

function endpointBlock(e: EndpointView, a: EndpointActions): HTMLElement {
  const panel = h('div', { class: 'panel' });
  panel.hidden = true;
  const closePanel = () => {
    panel.hidden = true;
    panel.replaceChildren();
  };
  const openPanel = (content: HTMLElement) => {
    fill(panel, content);
    panel.hidden = false;
  };
  const edit = () =>
    openPanel(
      endpointForm({
        testid: 'endpoint-edit-form',
        types: a.types,
        values: e,
        submitLabel: 'Save',
        onCancel: closePanel,
        onError: a.onError,
        onSubmit: (v) => a.save(changes(e, v)),
      }),
    );
  const log = h('div', {});
  const toggleLog = () => {
    const open = log.childElementCount === 0;
    a.setLog(open ? '' : undefined);
    fill(log, open ? deliveryLog(e, '', a.setLog, a.onError) : null);
  };
  if (a.logStatus !== undefined) fill(log, deliveryLog(e, a.logStatus, a.setLog, a.onError));
  const button = (testid: string, label: string, onclick: () => void, cls = 'secondary') =>
    h('button', { type: 'button', class: cls, 'data-testid': testid, onclick }, label);

  return h(
    'article',
    {
      class: `endpoint${e.enabled ? '' : ' off'}`,
      'data-testid': 'webhook-endpoint',
      'data-endpoint-id': e.id,
      'data-enabled': String(e.enabled),
    },
    h(
      'div',
      { class: 'endpoint-head' },
      h('span', { class: 'mono endpoint-url', 'data-testid': 'endpoint-url' }, e.url),
      h(
        'span',
        { 'data-testid': 'endpoint-state' },
        badge(e.enabled ? 'enabled' : 'disabled'),
        h('span', { class: 'muted small' }, ` #${e.id}`),
      ),
    ),
    e.description ? h('p', { class: 'muted', 'data-testid': 'endpoint-description' }, e.description) : null,
    endpointFacts(e),
    a.secret ? secretBox(`New signing secret of endpoint ${e.id}`, a.secret, a.closeSecret) : null,
    h(
      'div',
      { class: 'actions' },
      button('endpoint-edit', 'Edit', edit),
      e.enabled
        ? button('endpoint-disable', 'Disable', () => a.setEnabled(false))
        : button('endpoint-enable', 'Enable', () => a.setEnabled(true), ''),
      button('endpoint-rotate', 'Rotate secret', () => openPanel(rotatePanel(a, closePanel))),
      button('endpoint-delete', 'Delete', a.remove),
      button('endpoint-deliveries', 'Delivery log', toggleLog),
    ),
    h(
      'p',
      { class: a.message?.bad ? 'error' : 'muted', 'data-testid': 'endpoint-message' },
      a.message?.text ?? '',
    ),
    panel,
    log,
  );
}

/** The page's state and actions over the elements in index.html; `onError`: a lost session or a failed load. */
export function createWebhooksPage(el: WebhooksPageElements, onError: (err: unknown) => void): WebhooksPage {
  let list: WebhookEndpointList | undefined;
  /** The secret of the endpoint just made, until closed. */
  let created: { id: string; secret: string } | undefined;
  let createShown = false;
  /** Whether the page is shown (else only the notices are kept current). */
  let shown = false;
  const secrets = new Map<string, string>();
  /** Bumped by clear(): an answer arriving after the page was left keeps no secret and draws nothing. */
  let generation = 0;
  const messages = new Map<string, { text: string; bad: boolean }>();
  const logs = new Map<string, string>();

  const fetchList = async () => {
    list = await apiGet<WebhookEndpointList>('/api/webhook-endpoints');
    renderNotices(el.notices, list.items, (e, message) => void enable(e, message));
    return list;
  };

  /** Runs an endpoint's action, notes its outcome, then shows every endpoint as it is now. */
  const act = async (id: string, run: () => Promise<string>) => {
    try {
      messages.set(id, { text: await run(), bad: false });
    } catch (err) {
      const text = failureText(err, onError);
      if (text === undefined) return;
      messages.set(id, { text, bad: true });
    }
    await load().catch(onError);
  };

  /** A notice's Enable: the notice says why when it fails. */
  const enable = async (e: EndpointView, message: HTMLElement) => {
    try {
      await apiPatch(endpointPath(e.id), { enabled: true });
      messages.set(e.id, { text: 'Enabled.', bad: false });
      if (shown) await load();
      else await fetchList();
    } catch (err) {
      const text = failureText(err, onError);
      if (text !== undefined) setMessage(message, text, true);
    }
  };

  const remove = async (e: EndpointView) => {
    if (!window.confirm(`Delete webhook endpoint ${e.id} (${e.url}) with its delivery log?`)) return;
    try {
      await apiDelete(endpointPath(e.id));
      secrets.delete(e.id);
      logs.delete(e.id);
      setMessage(el.message, `Deleted webhook endpoint ${e.id} (${e.url}).`, false);
    } catch (err) {
      const text = failureText(err, onError);
      if (text === undefined) return;
      setMessage(el.message, `Endpoint ${e.id}: ${text}`, true);
    }
    await load().catch(onError);
  };

  const actions = (e: EndpointView): EndpointActions => {
    const message = messages.get(e.id);
    messages.delete(e.id);
    return {
      types: list?.eventTypes ?? e.eventTypes,
      secret: secrets.get(e.id),
      message,
      logStatus: logs.get(e.id),
      save: async (patch) => {
        if (Object.keys(patch).length === 0) throw new Error('Nothing changed.');
        await apiPatch(endpointPath(e.id), patch);
        messages.set(e.id, { text: `Saved: ${Object.keys(patch).join(', ')}.`, bad: false });
        await load();
      },
      setEnabled: (enabled) => {
        if (
          !enabled &&
          !window.confirm(
            `Disable webhook endpoint ${e.id} (${e.url})?\n\nNothing is sent to it until it is enabled again; its pending deliveries are cancelled.`,
          )
        )
          return;
        void act(e.id, async () => {
          await apiPatch(endpointPath(e.id), { enabled });
          return enabled ? 'Enabled.' : 'Disabled.';
        });
      },
      rotate: (keepOldForSec) => {
        if (
          keepOldForSec === 0 &&
          !window.confirm(
            `Revoke the secret of webhook endpoint ${e.id} now?\n\nDeliveries are signed with the new secret only: the receiver refuses them until it has it.`,
          )
        )
          return;
        void act(e.id, async () => {
          const asked = generation;
          const r = await apiPost<EndpointWithSecret>(endpointPath(e.id, '/rotate-secret'), {
            keepOldForSec,
          });
          if (asked === generation) secrets.set(e.id, r.secret);
          return keepOldForSec > 0
            ? `Secret rotated; the old one stays valid until ${fmtTime(r.endpoint.previousSecretUntil)}.`
            : 'Secret rotated; the old one is revoked.';
        });
      },
      remove: () => void remove(e),
      closeSecret: () => {
        secrets.delete(e.id);
        void load().catch(onError);
      },
      setLog: (status) => {
        if (status === undefined) logs.delete(e.id);
        else logs.set(e.id, status);
      },
      onError,
    };
  };

  const renderList = (l: WebhookEndpointList) => {
    if (l.items.length === 0) {
      fill(
        el.list,
        h('p', { class: 'muted', 'data-testid': 'webhooks-empty' }, 'No webhook endpoints: nothing is sent.'),
      );
      return;
    }
    fill(el.list, ...l.items.map((e) => endpointBlock(e, actions(e))));
  };

  const renderCreate = (l: WebhookEndpointList) => {
    createShown = true;
    const form = endpointForm({
      testid: 'webhook-create-form',
      types: l.eventTypes,
      values: { url: '', description: '', lowBalanceThreshold: 10, eventTypes: l.defaultEventTypes },
      submitLabel: 'Create endpoint',
      onError,
      onSubmit: async (v) => {
        const asked = generation;
        const r = await apiPost<EndpointWithSecret>('/api/webhook-endpoints', v);
        if (asked !== generation) return;
        created = { id: r.endpoint.id, secret: r.secret };
        messages.set(r.endpoint.id, { text: 'Created.', bad: false });
        createShown = false;
        await load();
      },
    });
    const closeCreated = () => {
      created = undefined;
      renderCreate(l);
    };
    fill(
      el.create,
      created ? secretBox(`Signing secret of endpoint ${created.id}`, created.secret, closeCreated) : null,
      form,
    );
  };

  async function load(): Promise<void> {
    shown = true;
    const asked = generation;
    const l = await fetchList();
    if (asked !== generation) return;
    renderList(l);
    if (!createShown) renderCreate(l);
  }

  return {
    load,
    loadNotices: async () => {
      await fetchList();
    },
    clear: () => {
      generation += 1;
      shown = false;
      list = undefined;
      created = undefined;
      createShown = false;
      secrets.clear();
      messages.clear();
      logs.clear();
      el.list.replaceChildren();
      el.create.replaceChildren();
      el.message.textContent = '';
    },
  };
}
