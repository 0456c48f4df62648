/**
 * The coordinator's public numbers for the volunteer page (coordinator/public-routes.ts): the
 * swarm's volunteers, the top contributors (this browser's row marked) and the shared sample,
 * polled while the page is open.
 */
import { useEffect, useState } from 'react';

export interface PublicSwarm {
  state: string;
  iteration: number;
  volunteers: number;
  active: number;
  spares: number;
  contributors: number;
}

export interface ContributorRow {
  rank: number;
  nickname: string | null;
  tokens: number;
  gpuMs: number;
  microbatches: number;
  mine?: boolean;
}

export interface Contributors {
  top: ContributorRow[];
  me: { rank: number; tokens: number; gpuMs: number; microbatches: number } | null;
}

export interface SharedSample {
  prompt: string;
  text: string;
  iteration: number;
  at: number;
}

/** Polls `path` every `everyMs` (and at once); null until the first answer. */
function usePoll<T>(url: string, everyMs: number): T | null {
  const [value, setValue] = useState<T | null>(null);
  useEffect(() => {
    let stop = false;
    const load = () =>
      fetch(url, { cache: 'no-store' })
        .then((r) => (r.ok ? (r.json() as Promise<T>) : null))
        .then((v) => !stop && v !== null && setValue(v))
        .catch(() => {});
    void load();
    const t = setInterval(load, everyMs);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [url, everyMs]);
  return value;
}

export function usePublicSwarm(base: string, browserId: string, everyMs = 5000) {
  return {
    swarm: usePoll<PublicSwarm>(`${base}/api/public/swarm`, everyMs),
    contributors: usePoll<Contributors>(`${base}/api/public/contributors?n=10&me=${encodeURIComponent(browserId)}`, everyMs * 2),
    sample: usePoll<{ sample: SharedSample | null; everySeconds: number }>(`${base}/api/public/sample`, everyMs * 2),
  };
}
