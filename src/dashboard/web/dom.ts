// Small DOM helpers. Everything shown comes from producers and Douyin, so text is
// always set with textContent (never innerHTML).

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((ev: Event) => void)>;

/** Creates an element: h('td', { class: 'num', 'data-testid': 'x' }, 'text', child). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(
  tag: string,
  attrs: Record<string, string | number> = {},
  ...children: Child[]
): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

const numberFormat = new Intl.NumberFormat('en-US');

export const fmtNum = (n: number | null | undefined) =>
  n === null || n === undefined ? '–' : numberFormat.format(n);

export function fmtAge(sec: number | null | undefined): string {
  if (sec === null || sec === undefined) return '–';
  if (sec < 1) return '<1 s';
  if (sec < 120) return `${Math.round(sec)} s`;
  if (sec < 7200) return `${Math.round(sec / 60)} min`;
  return `${Math.round(sec / 3600)} h`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour12: false }) : d.toLocaleString([], { hour12: false });
}

export const fmtMs = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? '–' : `${Math.round(ms)} ms`;

export const fmtPct = (r: number | null | undefined) =>
  r === null || r === undefined ? '–' : `${(r * 100).toFixed(r < 0.1 ? 1 : 0)} %`;

/** A status word as a coloured badge. */
export const badge = (status: string) => h('span', { class: `badge st-${status}` }, status);

/** One line for a failed call: HTTP status (unless the description says it already), code, description. */
export function describeError(a: {
  httpStatus: number | null;
  errorCode: number | null;
  description: string | null;
}): string {
  const d = a.description ?? '';
  const http =
    a.httpStatus && a.httpStatus !== 200 && !d.includes(`HTTP ${a.httpStatus}`) ? `HTTP ${a.httpStatus}` : '';
  return [http, a.errorCode ?? '', d].filter(Boolean).join(' ');
}
