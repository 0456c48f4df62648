/**
 * SkipPipe on the pages (docs/skippipe.md): which stages the last iteration's training paths
 * left out, and why: no volunteer serves the stage (it is trained around until one arrives), or the
 * skip ratio (paths visit only part of the stages; every stage still runs its share).
 */
import type { RunStatus } from '../../shared/protocol/events';

export type SkipStatus = NonNullable<RunStatus['skip']>;

export interface StageSkip {
  stage: number;
  /** Microbatches that ran the stage in the last iteration (null before the first). */
  visits: number | null;
  /** Why it ran no microbatch: 'vacant' (no volunteer), 'ratio' (the skip paths left it out), or null (it ran). */
  skipped: 'vacant' | 'ratio' | null;
}

/** Per stage: its visits in the last iteration and why it was skipped, if it was. */
export function stageSkips(skip: SkipStatus, nStages: number): StageSkip[] {
  return Array.from({ length: nStages }, (_, stage) => {
    const visits = skip.visits?.[stage] ?? null;
    const skipped = skip.vacant.includes(stage) ? 'vacant' : visits === 0 ? 'ratio' : null;
    return { stage, visits, skipped };
  });
}

/** One line for the volunteer page: "" without skip paths. */
export function fmtSkip(skip: SkipStatus | undefined): string {
  if (!skip) return '';
  const vacant = skip.vacant.length === 0 ? '' : skip.vacant.length === 1 ? `; training without stage ${skip.vacant[0]} until a volunteer takes it` : `; training without stages ${skip.vacant.join(', ')} until volunteers take them`;
  return `partial pipelines: each microbatch skips about ${Math.round(skip.ratio * 100)}% of the stages${vacant}`;
}

/** "0, 2,3" as [0, 2, 3]; null for anything but a comma-separated list of stage numbers ("" too). */
export function parseStages(text: string): number[] | null {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d{1,5}$/.test(p))) return null;
  return parts.map(Number);
}

/**
 * The export-link request for the Export control: the full model for an empty field, else only the
 * listed stages (GET /api/operator/export-link?stages=..., coordinator/operator/partial-model-file.ts
 * makes them a model of their own). An error for a field that is not a stage list.
 */
export function exportLinkPath(text: string): { path: string } | { error: string } {
  if (!text.trim()) return { path: '/api/operator/export-link' };
  const stages = parseStages(text);
  if (!stages) return { error: 'stages to export: numbers separated by commas, e.g. 0,2,3 (empty: the full model)' };
  return { path: `/api/operator/export-link?stages=${stages.join(',')}` };
}

/**
 * The stages a sample can run through now: every served stage, in order, when the first and the
 * last are among them (a partial model needs its embedding and head); null when either is
 * unserved. Equal to every stage when none is vacant.
 */
export function servedSubset(stages: readonly { stage: number; state: string }[]): number[] | null {
  if (stages.length === 0) return null;
  const served = stages.filter((s) => s.state === 'training').map((s) => s.stage).sort((a, b) => a - b);
  const last = Math.max(...stages.map((s) => s.stage));
  return served[0] === 0 && served[served.length - 1] === last ? served : null;
}
