// Pausing and resuming charging from the dashboard (src/queue/charging-pause.ts):
// a notice on every page while paused (who, when, why, with Resume), and a
// Pause/Resume button in the Pipeline card. A pause asks for a reason and a
// confirmation; its answer is shown at once, and the next refresh confirms it.
import { ApiError, apiPost } from './api.js';
import { fill, fmtTime, h } from './dom.js';
import type { StatusResponse } from './types.js';

type ChargingState = StatusResponse['charging'];

export interface ChargingElements {
  /** Shown on every page while paused. */
  notice: HTMLElement;
  /** The button in the Pipeline card. */
  control: HTMLElement;
}

export function renderCharging(
  el: ChargingElements,
  state: ChargingState,
  onChange: (state: ChargingState) => void,
  onError: (err: unknown) => void,
): void {
  const act = async (path: string, body: unknown) => {
    try {
      onChange(await apiPost<ChargingState>(path, body));
    } catch (err) {
      if (err instanceof ApiError) window.alert(err.message);
      else onError(err);
    }
  };
  const pause = () => {
    const reason = window.prompt(
      'Pause charging for the whole deployment?\n\nNo DecrUserRemainTimes call is made until it is resumed; calls already out finish, events keep arriving and wait.\n\nReason (optional):',
      '',
    );
    if (reason === null) return;
    void act('/api/charging/pause', reason.trim() ? { reason: reason.trim() } : {});
  };
  const resume = () => {
    if (!window.confirm('Resume charging? The events that waited are charged now.')) return;
    void act('/api/charging/resume', {});
  };
  if (state.paused) {
    el.notice.hidden = false;
    fill(
      el.notice,
      h(
        'div',
        { class: 'notice bad', 'data-testid': 'charging-paused' },
        h('b', {}, 'Charging is paused. '),
        `No DecrUserRemainTimes call is made; events keep arriving and wait. Paused by ${state.by ?? '?'} at ${fmtTime(state.at ?? null)}`,
        state.reason ? `: ${state.reason}` : '.',
        ' ',
        h('button', { type: 'button', 'data-testid': 'charging-resume', onclick: resume }, 'Resume charging'),
      ),
    );
    fill(
      el.control,
      h(
        'button',
        { type: 'button', 'data-testid': 'charging-resume-card', onclick: resume },
        'Resume charging',
      ),
    );
  } else {
    el.notice.hidden = true;
    el.notice.replaceChildren();
    fill(
      el.control,
      h(
        'button',
        { type: 'button', class: 'secondary', 'data-testid': 'charging-pause', onclick: pause },
        'Pause charging',
      ),
    );
  }
}
