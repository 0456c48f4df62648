/**
 * This tab's contribution (from the worker's status) and this browser's across visits: every
 * increase the worker reports is added to the totals in localStorage (local-identity.ts).
 */
import { useEffect, useRef, useState } from 'react';
import { addToTotals, loadTotals, type BrowserTotals } from './local-identity';
import type { VolunteerStatus } from './messages';

export function useContributionTotals(s: VolunteerStatus): { tab: BrowserTotals; browser: BrowserTotals } {
  const [browser, setBrowser] = useState(loadTotals);
  const seen = useRef<BrowserTotals>({ tokens: 0, gpuSeconds: 0, microbatches: 0 });
  const tab = { tokens: s.tokens, gpuSeconds: s.gpuSecondsDonated, microbatches: s.microbatches };
  useEffect(() => {
    const prev = seen.current;
    // A new worker starts from zero again: then everything it reports is new.
    const base = tab.tokens < prev.tokens || tab.gpuSeconds < prev.gpuSeconds || tab.microbatches < prev.microbatches ? { tokens: 0, gpuSeconds: 0, microbatches: 0 } : prev;
    const delta = { tokens: tab.tokens - base.tokens, gpuSeconds: tab.gpuSeconds - base.gpuSeconds, microbatches: tab.microbatches - base.microbatches };
    seen.current = tab;
    if (delta.tokens > 0 || delta.gpuSeconds > 0 || delta.microbatches > 0) setBrowser(addToTotals(delta));
  }, [tab.tokens, tab.gpuSeconds, tab.microbatches]);
  return { tab, browser };
}
