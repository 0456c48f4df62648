/** "Control what you give": the GPU-share slider, pause/resume, the hidden-tab notice and the wake lock. */
import { useId } from 'react';
import { num } from './format';
import { DUTY_PERCENT_MAX, DUTY_PERCENT_MIN } from './messages';
import type { VisibilityTimings, WakeLockState } from './useTabVisibility';

interface Props {
  running: boolean;
  paused: boolean;
  dutyPercent: number;
  onDuty: (percent: number) => void;
  onPause: () => void;
  onResume: () => void;
  visibility: VisibilityTimings;
  wakeLock: WakeLockState;
}

function wakeLockText(w: WakeLockState): string {
  switch (w.kind) {
    case 'held':
      return 'The screen is kept awake while this tab trains.';
    case 'unsupported':
      return 'This browser has no Screen Wake Lock: keep the screen on yourself, or the tab may stop.';
    case 'refused':
      return `The browser refused to keep the screen awake (${w.reason}).`;
    case 'off':
      return 'The screen may sleep (the wake lock is taken while training in a visible tab).';
  }
}

export function ControlsPanel(p: Props) {
  const sliderId = useId();
  const v = p.visibility;
  const slower = v.visible.gapMs && v.whileHidden.gapMs ? v.whileHidden.gapMs / v.visible.gapMs : null;
  return (
    <section className="panel controls" aria-labelledby={`${sliderId}-h`}>
      <h2 id={`${sliderId}-h`}>Control what you give</h2>
      <div className="control-row">
        <label htmlFor={sliderId}>Use at most {p.dutyPercent}% of my GPU</label>
        <input
          id={sliderId}
          type="range"
          min={DUTY_PERCENT_MIN}
          max={DUTY_PERCENT_MAX}
          step={10}
          value={p.dutyPercent}
          aria-valuetext={`${p.dutyPercent} percent`}
          data-testid="duty-slider"
          onChange={(e) => p.onDuty(Number(e.currentTarget.value))}
        />
      </div>
      <p className="hint">Below 100% the tab rests between tasks so it computes at most that share of the time (the swarm waits for it).</p>
      {p.running && (
        <button type="button" className="pause" data-testid="pause-button" onClick={p.paused ? p.onResume : p.onPause} aria-pressed={p.paused}>
          {p.paused ? 'Resume' : 'Pause'}
        </button>
      )}
      {v.hidden && p.running && !p.paused && (
        <p className="notice" role="alert" data-testid="hidden-notice">
          This tab is in the background: the browser may throttle it and slow the whole swarm. Keep it visible for full speed.
        </p>
      )}
      <p className="hint" data-testid="throttle-measure">
        Seconds per iteration while visible: {num(v.visible.gapMs && v.visible.gapMs / 1000, 2)} ({v.visible.n} seen); while hidden:{' '}
        {num(v.whileHidden.gapMs && v.whileHidden.gapMs / 1000, 2)} ({v.whileHidden.n} seen)
        {slower !== null && <> — {slower.toFixed(1)}× when hidden</>}. Compute per iteration: {num(v.visible.stepMs, 0, ' ms')} visible,{' '}
        {num(v.whileHidden.stepMs, 0, ' ms')} hidden.
      </p>
      <p className="hint" data-testid="wake-lock" data-value={p.wakeLock.kind}>
        {wakeLockText(p.wakeLock)}
      </p>
    </section>
  );
}
