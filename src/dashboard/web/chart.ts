// The last hour as an SVG chart, drawn by hand (no chart library, nothing fetched
// from outside): events received and uses deducted per minute as lines on the left
// axis, failed Douyin calls as red bars on their own (right) axis, because errors
// are usually a few where events are thousands.
import { fmtNum, svg } from './dom.js';
import type { MinutePoint } from './types.js';

const W = 640;
const H = 220;
const PAD = { left: 48, right: 40, top: 12, bottom: 24 };

/** A round axis maximum at or above v (1, 2, 5 × 10^n). */
export function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function renderChart(points: MinutePoint[]): SVGElement {
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const n = Math.max(points.length, 2);
  const x = (i: number) => PAD.left + (innerW * i) / (n - 1);
  const leftMax = niceMax(Math.max(0, ...points.map((p) => Math.max(p.eventsIn, p.deductions))));
  const rightMax = niceMax(Math.max(0, ...points.map((p) => p.errors)));
  const yL = (v: number) => PAD.top + innerH - (innerH * v) / leftMax;
  const yR = (v: number) => PAD.top + innerH - (innerH * v) / rightMax;

  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'chart',
    role: 'img',
    'aria-label': 'events received, uses deducted and call errors per minute',
    'data-testid': 'chart-svg',
  });

  // Grid and left axis labels.
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const y = PAD.top + innerH - innerH * f;
    root.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'grid' }));
    root.append(
      svg('text', { x: PAD.left - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, fmtNum(leftMax * f)),
    );
  }
  root.append(
    svg(
      'text',
      { x: W - PAD.right + 6, y: PAD.top + 4, class: 'axis err', 'text-anchor': 'start' },
      fmtNum(rightMax),
    ),
    svg(
      'text',
      { x: W - PAD.right + 6, y: PAD.top + innerH + 4, class: 'axis err', 'text-anchor': 'start' },
      '0',
    ),
  );
  // Time labels: the first minute, the middle and now.
  if (points.length > 0) {
    const label = (i: number, anchor: string) => {
      const t = new Date(points[i]!.t).toLocaleTimeString([], {
        hour: '2-digit',
        minute: '2-digit',
        hour12: false,
      });
      root.append(svg('text', { x: x(i), y: H - 6, class: 'axis', 'text-anchor': anchor }, t));
    };
    label(0, 'start');
    label(Math.floor((points.length - 1) / 2), 'middle');
    label(points.length - 1, 'end');
  }

  // Error bars (right axis).
  const barW = Math.max(1, innerW / n - 1);
  points.forEach((p, i) => {
    if (p.errors <= 0) return;
    const y = yR(p.errors);
    root.append(
      svg('rect', {
        x: x(i) - barW / 2,
        y,
        width: barW,
        height: PAD.top + innerH - y,
        class: 'bar-errors',
      }),
    );
  });

  // The two lines.
  const line = (value: (p: MinutePoint) => number, cls: string) =>
    svg('polyline', {
      points: points.map((p, i) => `${x(i).toFixed(1)},${yL(value(p)).toFixed(1)}`).join(' '),
      class: cls,
      'data-testid': cls,
    });
  root.append(
    line((p) => p.eventsIn, 'line-events'),
    line((p) => p.deductions, 'line-deductions'),
  );

  // One invisible column per minute with a tooltip of its numbers.
  points.forEach((p, i) => {
    const t = new Date(p.t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
    root.append(
      svg(
        'rect',
        { x: x(i) - innerW / n / 2, y: PAD.top, width: innerW / n, height: innerH, class: 'hover' },
        svg(
          'title',
          {},
          `${t}: ${fmtNum(p.eventsIn)} events, ${fmtNum(p.deductions)} uses deducted, ${fmtNum(p.errors)} errors`,
        ),
      ),
    );
  });
  return root;
}
