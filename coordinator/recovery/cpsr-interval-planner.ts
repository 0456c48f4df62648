/**
 * `--checkpoint-every cpsr`: the checkpoint interval from CPSR's planner (slides eq. 8-16,
 * shared/recovery/cpsr/planner.ts), fed with what the run measures:
 *
 * - alpha_1, alpha_2: the validation-loss curve L(t) = exp(-alpha_1 t + alpha_2), fitted over the
 *   iterations that reported a validation loss (the training loss while fewer than 3 did);
 * - tau_1, tau_2: the predictor's held-out error per parameter over the checkpoints the run has
 *   taken, loss_p = exp(-tau_1 k + tau_2), fitted over the background fits (cpsr-fitter.ts);
 * - T_s: the last checkpoint's measured seconds over the mean iteration's seconds;
 * - lambda: stages lost per iteration, a Gamma posterior mean: one pseudo-failure at the prior
 *   rate (`--failure-rate` x stages per hour) plus the failures observed over the iterations run;
 * - N_p: the largest stage's parameters; xi: a prior (`--cpsr-xi`), the one input no curve fits.
 *
 * Until both fits exist, or when they fall outside the model (cpsrInterval says why), the
 * interval is Young/Daly's sqrt(2 T_s / lambda) from the same T_s and lambda: `auto` stays the
 * baseline. Pure bookkeeping and arithmetic: the caller (CpsrStrategy) feeds it and reports.
 */
import { cpsrInterval, fitExpDecay, youngDalyIterations, type PlannerInputs } from '../../shared/recovery/cpsr/planner.js';

export interface IntervalPlannerConfig {
  /** Parameters of the largest stage (N_p). */
  np: number;
  /** Prior failure rate, stages lost per hour (all stages together). */
  priorFailuresPerHour: number;
  /** Curvature prior xi (loss per unit of N_p mse / 2). */
  xi: number;
  /** Loss points kept for the alpha fit (the newest). */
  maxLossPoints: number;
  /** Predictor fits kept for the tau fit (the newest). */
  maxFitPoints: number;
  /** Bounds on the planned interval, iterations. */
  min: number;
  max: number;
}

export const DEFAULT_INTERVAL_PLANNER: Omit<IntervalPlannerConfig, 'np' | 'priorFailuresPerHour'> = {
  xi: 1,
  maxLossPoints: 512,
  maxFitPoints: 32,
  min: 1,
  max: 10_000,
};

/** The interval in force and everything it was computed from (printed, logged, on the dashboard). */
export interface IntervalPlan {
  /** Iterations between checkpoints (rounded, within [min, max]). */
  interval: number;
  /** 'cpsr': eq. 16; 'young-daly': the baseline, with the reason CPSR's formula was not used. */
  source: 'cpsr' | 'young-daly';
  reason: string | null;
  /** The unrounded eq. 16 interval and Young/Daly's, iterations (null when not computable). */
  cpsr: number | null;
  youngDaly: number;
  inputs: {
    alpha1: number | null;
    alpha2: number | null;
    /** Which loss the alpha fit used, and over how many points. */
    lossCurve: 'validation' | 'training' | null;
    lossPoints: number;
    tau1: number | null;
    tau2: number | null;
    fitPoints: number;
    ts: number;
    tsMeasured: boolean;
    lambda: number;
    failuresObserved: number;
    iterationsObserved: number;
    xi: number;
    np: number;
  };
}

export class CpsrIntervalPlanner {
  private val: Array<[number, number]> = [];
  private train: Array<[number, number]> = [];
  private fits: Array<[number, number]> = [];
  private iterSeconds: number[] = [];
  private checkpointSeconds: number | null = null;
  private failures = 0;
  private firstIteration: number | null = null;
  private lastIteration = 0;

  constructor(readonly config: IntervalPlannerConfig) {
    if (!(config.np > 0 && config.priorFailuresPerHour > 0 && config.xi > 0)) throw new Error(`interval planner: N_p, the prior failure rate and xi must be > 0 (got ${config.np}, ${config.priorFailuresPerHour}, ${config.xi})`);
  }

  /** A completed iteration: its losses and seconds. Non-finite or non-positive values are ignored. */
  observeIteration(iteration: number, trainLoss: number, valLoss: number | null, seconds: number): void {
    const keep = (ring: Array<[number, number]>, y: number | null) => {
      if (y === null || !(y > 0) || !Number.isFinite(y)) return;
      ring.push([iteration, y]);
      if (ring.length > this.config.maxLossPoints) ring.shift();
    };
    keep(this.train, trainLoss);
    keep(this.val, valLoss);
    if (seconds > 0 && Number.isFinite(seconds)) {
      this.iterSeconds.push(seconds);
      if (this.iterSeconds.length > 50) this.iterSeconds.shift();
    }
    this.firstIteration ??= iteration;
    this.lastIteration = Math.max(this.lastIteration, iteration);
  }

  /** A checkpoint was written in `seconds`. */
  observeCheckpoint(seconds: number): void {
    if (seconds > 0 && Number.isFinite(seconds)) this.checkpointSeconds = seconds;
  }

  /** A predictor fit: its held-out mean squared error per parameter after `checkpoints` checkpoints of the run. */
  observeFit(checkpoints: number, valMse: number | null): void {
    if (valMse === null || !(valMse > 0) || !Number.isFinite(valMse) || !(checkpoints >= 0)) return;
    this.fits.push([checkpoints, valMse]);
    if (this.fits.length > this.config.maxFitPoints) this.fits.shift();
  }

  /** A stage lost its last tab (a failure the strategy had to rebuild). */
  observeFailure(): void {
    this.failures++;
  }

  plan(): IntervalPlan {
    const c = this.config;
    const meanIter = this.iterSeconds.length ? this.iterSeconds.reduce((a, s) => a + s, 0) / this.iterSeconds.length : 1;
    const ts = this.checkpointSeconds !== null ? this.checkpointSeconds / Math.max(meanIter, 1e-3) : 1; // before the first: one iteration's worth
    const iterations = this.firstIteration === null ? 0 : this.lastIteration - this.firstIteration + 1;
    const priorPerIteration = (c.priorFailuresPerHour / 3600) * meanIter;
    // Gamma(1, 1 / prior) prior on the rate: (1 + failures) / (1 / prior + iterations).
    const lambda = (1 + this.failures) / (1 / priorPerIteration + iterations);
    const useVal = this.val.length >= 3;
    const loss = useVal ? this.val : this.train;
    const alpha = tryFit(loss);
    const tau = tryFit(this.fits);
    const youngDaly = youngDalyIterations(ts, lambda);
    const inputs: IntervalPlan['inputs'] = {
      alpha1: alpha?.rate ?? null,
      alpha2: alpha?.offset ?? null,
      lossCurve: alpha ? (useVal ? 'validation' : 'training') : null,
      lossPoints: loss.length,
      tau1: tau?.rate ?? null,
      tau2: tau?.offset ?? null,
      fitPoints: this.fits.length,
      ts,
      tsMeasured: this.checkpointSeconds !== null,
      lambda,
      failuresObserved: this.failures,
      iterationsObserved: iterations,
      xi: c.xi,
      np: c.np,
    };
    const clamp = (x: number) => Math.max(c.min, Math.min(c.max, Math.round(x)));
    const baseline = (reason: string): IntervalPlan => ({ interval: clamp(youngDaly), source: 'young-daly', reason, cpsr: null, youngDaly, inputs });
    if (!alpha) return baseline(`too few loss points to fit the loss curve (${loss.length}, needs 2 at distinct iterations)`);
    if (!tau) return baseline(`too few predictor fits to fit its error curve (${this.fits.length}, needs 2 after different checkpoint counts)`);
    const p: PlannerInputs = { tau1: tau.rate, tau2: tau.offset, alpha1: alpha.rate, alpha2: alpha.offset, xi: c.xi, np: c.np, lambda, ts };
    const plan = cpsrInterval(p);
    if (!plan.ok) return baseline(plan.reason);
    return { interval: clamp(plan.interval), source: 'cpsr', reason: null, cpsr: plan.interval, youngDaly, inputs };
  }
}

function tryFit(points: ReadonlyArray<[number, number]>) {
  if (points.length < 2) return null;
  try {
    return fitExpDecay(
      points.map((p) => p[0]),
      points.map((p) => p[1]),
    );
  } catch {
    return null; // e.g. every x the same
  }
}

/** One line for the log and the events: the interval and its inputs. */
export function describePlan(p: IntervalPlan): string {
  const f = (x: number | null, d = 4) => (x === null ? '-' : Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(2) : x.toFixed(d));
  const i = p.inputs;
  const head = p.source === 'cpsr' ? `checkpoint every ${p.interval} iteration(s) (CPSR eq. 16: ${f(p.cpsr, 1)}; Young/Daly would be ${f(p.youngDaly, 1)})` : `checkpoint every ${p.interval} iteration(s) (Young/Daly; CPSR's interval not used: ${p.reason})`;
  return `${head}; alpha_1 ${f(i.alpha1)} alpha_2 ${f(i.alpha2)} (${i.lossCurve ?? 'no'} loss, ${i.lossPoints} points), tau_1 ${f(i.tau1)} tau_2 ${f(i.tau2)} (${i.fitPoints} fits), T_s ${f(i.ts, 3)} it${i.tsMeasured ? '' : ' (prior)'}, lambda ${f(i.lambda)}/it (${i.failuresObserved} failure(s) over ${i.iterationsObserved} it), xi ${i.xi}, N_p ${i.np}`;
}
