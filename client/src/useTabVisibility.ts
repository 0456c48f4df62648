/**
 * A hidden tab is throttled by the browser (timers, and in some browsers the GPU queue), which
 * slows the whole pipeline. This measures it instead of guessing: each new iteration's step time
 * (this tab's compute for the iteration) and wall-clock gap since the previous one are filed
 * under "visible" or "hidden" by the page's visibility while it ran. It also holds the Screen Wake
 * Lock while training, where the browser has one, so the screen does not sleep.
 */
import { useEffect, useRef, useState } from 'react';

export interface VisibilityTimings {
  hidden: boolean;
  /** Medians over the iterations seen in each state (null before any). */
  visible: { stepMs: number | null; gapMs: number | null; n: number };
  whileHidden: { stepMs: number | null; gapMs: number | null; n: number };
}

const KEEP = 50;

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function useTabVisibility(iteration: number | null, stepMs: number | null): VisibilityTimings {
  const [hidden, setHidden] = useState(() => document.visibilityState === 'hidden');
  // Hidden at any moment since the previous iteration: the iteration counts as hidden.
  const hiddenSinceLast = useRef(document.visibilityState === 'hidden');
  const last = useRef<{ iteration: number; at: number } | null>(null);
  const samples = useRef({ visible: { step: [] as number[], gap: [] as number[] }, hidden: { step: [] as number[], gap: [] as number[] } });
  const [, bump] = useState(0);

  useEffect(() => {
    const on = () => {
      const h = document.visibilityState === 'hidden';
      if (h) hiddenSinceLast.current = true;
      setHidden(h);
    };
    document.addEventListener('visibilitychange', on);
    return () => document.removeEventListener('visibilitychange', on);
  }, []);

  useEffect(() => {
    if (iteration === null || stepMs === null) return;
    const now = performance.now();
    const prev = last.current;
    last.current = { iteration, at: now };
    if (!prev || iteration <= prev.iteration) return;
    const bucket = hiddenSinceLast.current ? samples.current.hidden : samples.current.visible;
    bucket.step.push(stepMs);
    bucket.gap.push((now - prev.at) / (iteration - prev.iteration));
    if (bucket.step.length > KEEP) bucket.step.shift();
    if (bucket.gap.length > KEEP) bucket.gap.shift();
    hiddenSinceLast.current = document.visibilityState === 'hidden';
    bump((x) => x + 1);
  }, [iteration, stepMs]);

  const s = samples.current;
  return {
    hidden,
    visible: { stepMs: median(s.visible.step), gapMs: median(s.visible.gap), n: s.visible.step.length },
    whileHidden: { stepMs: median(s.hidden.step), gapMs: median(s.hidden.gap), n: s.hidden.step.length },
  };
}

export type WakeLockState = { kind: 'off' } | { kind: 'held' } | { kind: 'unsupported' } | { kind: 'refused'; reason: string };

/** Holds a screen wake lock while `active` and the page is visible (browsers release it when hidden). */
export function useWakeLock(active: boolean): WakeLockState {
  const [state, setState] = useState<WakeLockState>({ kind: 'off' });
  useEffect(() => {
    if (!active) {
      setState({ kind: 'off' });
      return;
    }
    const wl = (navigator as Navigator & { wakeLock?: { request(type: 'screen'): Promise<{ release(): Promise<void>; addEventListener(t: 'release', l: () => void): void }> } }).wakeLock;
    if (!wl) {
      setState({ kind: 'unsupported' });
      return;
    }
    let sentinel: { release(): Promise<void> } | null = null;
    let stopped = false;
    const acquire = () => {
      if (stopped || document.visibilityState !== 'visible' || sentinel) return;
      wl.request('screen').then(
        (s) => {
          if (stopped) return void s.release();
          sentinel = s;
          setState({ kind: 'held' });
          s.addEventListener('release', () => {
            sentinel = null;
            if (!stopped) setState({ kind: 'off' });
          });
        },
        (e: Error) => setState({ kind: 'refused', reason: e.message || e.name }),
      );
    };
    acquire();
    document.addEventListener('visibilitychange', acquire);
    return () => {
      stopped = true;
      document.removeEventListener('visibilitychange', acquire);
      void sentinel?.release();
    };
  }, [active]);
  return state;
}
