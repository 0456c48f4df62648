/** "See what it learns": the coordinator's shared sample of the model (the same text for every page). */
import { useId } from 'react';
import { clock } from './format';
import type { SharedSample } from './usePublicSwarm';

export function SamplePanel({ sample, everySeconds }: { sample: SharedSample | null; everySeconds: number | null }) {
  const id = useId();
  return (
    <section className="panel sample" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>The model now writes…</h2>
      {sample ? (
        <figure data-testid="sample" data-iteration={sample.iteration}>
          <blockquote>
            <span className="prompt">{sample.prompt}</span>
            {sample.text}
          </blockquote>
          <figcaption>
            after {sample.iteration} training step{sample.iteration === 1 ? '' : 's'}, at {clock(sample.at)}
            {everySeconds ? `; a new sample every ${everySeconds >= 60 ? `${Math.round(everySeconds / 60)} min` : `${everySeconds} s`}` : ''}
          </figcaption>
        </figure>
      ) : (
        <p data-testid="sample-empty">No sample yet: the coordinator writes one every few minutes once training has started.</p>
      )}
    </section>
  );
}
