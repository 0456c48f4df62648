/**
 * CPSR's planner and fitter (slides eq. 8-16; derivation in docs/recovery.md, "CPSR planner"):
 * the checkpoint interval that minimises the expected fault-tolerance cost when a failure is
 * recovered by prediction instead of recomputation.
 *
 * Time is counted in iterations throughout: alpha_1 per iteration, lambda failures per
 * iteration (of the stage, or of the swarm for the swarm's interval), T_s the checkpoint's cost
 * in iterations of training time, T_c in iterations.
 *
 *   predictor loss   loss_p(t) = exp(-tau_1 t / T_c + tau_2)     (t / T_c = checkpoints seen)
 *   training loss    L(t)      = exp(-alpha_1 t + alpha_2)
 *   deviation        dF        = xi N_p loss_p / 2               (xi: curvature, N_p: parameters predicted)
 *   recovery cost    T_p(t)    = dF / |L'(t)| = C exp((alpha_1 - tau_1 / T_c) t),  C = xi N_p e^(tau_2 - alpha_2) / (2 alpha_1)
 *   expected cost    T_l(T_c)  ~ T_s / (lambda T_c) + C lambda / (lambda + tau_1 / T_c - alpha_1)
 *   minimum          T_c       = tau_1 / (B + lambda sqrt(A / T_s)),  A = tau_1 C,  B = alpha_1 - lambda
 */
import { youngDalyIntervalSeconds } from '../failure-model.js';
import { CpsrError } from './errors.js';

/** y = exp(-rate x + offset), fitted by least squares on ln y. */
export interface ExpFit {
  rate: number;
  offset: number;
  /** Coefficient of determination of the fit on ln y (1 = exact). */
  r2: number;
  points: number;
}

/** The fitter: least squares of ln y on x. Needs >= 2 points, finite x, y > 0, two distinct x. */
export function fitExpDecay(xs: readonly number[], ys: readonly number[]): ExpFit {
  if (xs.length !== ys.length) throw new CpsrError(`fit: ${xs.length} x for ${ys.length} y`);
  if (xs.length < 2) throw new CpsrError(`fit: needs at least 2 points, got ${xs.length}`);
  xs.forEach((x, i) => {
    if (!Number.isFinite(x) || !(ys[i]! > 0) || !Number.isFinite(ys[i]!)) throw new CpsrError(`fit: point ${i} (${x}, ${ys[i]}) must have a finite x and a finite y > 0`);
  });
  const n = xs.length;
  const ls = ys.map(Math.log);
  const mx = xs.reduce((a, x) => a + x, 0) / n;
  const my = ls.reduce((a, y) => a + y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2;
    sxy += (xs[i]! - mx) * (ls[i]! - my);
    syy += (ls[i]! - my) ** 2;
  }
  if (!(sxx > 0)) throw new CpsrError('fit: needs two distinct x');
  const slope = sxy / sxx;
  const r2 = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1;
  return { rate: -slope, offset: my - slope * mx, r2, points: n };
}

export interface PlannerInputs {
  /** Predictor loss fit over checkpoints seen: tau_1 (rate), tau_2 (offset). */
  tau1: number;
  tau2: number;
  /** Training (validation) loss fit over iterations: alpha_1 (rate), alpha_2 (offset). */
  alpha1: number;
  alpha2: number;
  /** Loss per unit of xi N_p loss_p / 2 (a curvature); estimateXi measures it. */
  xi: number;
  /** Parameters a failure makes the predictor predict (the lost stage's). */
  np: number;
  /** Failures per iteration. */
  lambda: number;
  /** Checkpoint cost, in iterations. */
  ts: number;
}

export type Plan =
  | { ok: true; interval: number; A: number; B: number; C: number; youngDaly: number }
  | { ok: false; reason: string; youngDaly: number };

/** Young/Daly's interval in iterations: sqrt(2 T_s / lambda). */
export function youngDalyIterations(ts: number, lambda: number): number {
  return youngDalyIntervalSeconds(ts, lambda);
}

/** C, A, B of the closed form (see the header); throws on inputs outside the model. */
export function plannerConstants(p: PlannerInputs): { A: number; B: number; C: number } {
  for (const [k, v] of Object.entries(p)) if (!Number.isFinite(v)) throw new CpsrError(`planner: ${k} must be finite, got ${v}`);
  if (!(p.alpha1 > 0)) throw new CpsrError(`planner: the training loss must be falling (alpha_1 = ${p.alpha1})`);
  if (!(p.tau1 > 0)) throw new CpsrError(`planner: the predictor's loss must be falling with more checkpoints (tau_1 = ${p.tau1})`);
  if (!(p.xi > 0 && p.np > 0 && p.lambda > 0 && p.ts > 0)) throw new CpsrError(`planner: xi, N_p, lambda and T_s must be > 0 (got ${p.xi}, ${p.np}, ${p.lambda}, ${p.ts})`);
  const C = (p.xi * p.np * Math.exp(p.tau2 - p.alpha2)) / (2 * p.alpha1);
  return { C, A: p.tau1 * C, B: p.alpha1 - p.lambda };
}

/**
 * The expected cost the closed form minimises (iterations per failure-free stretch; T_c >> T_s):
 * T_s / (lambda T_c) + C lambda / (lambda + tau_1 / T_c - alpha_1); Infinity where the expectation diverges.
 */
export function expectedCost(tc: number, p: PlannerInputs): number {
  const { C } = plannerConstants(p);
  const denom = p.lambda + p.tau1 / tc - p.alpha1;
  if (!(denom > 0)) return Infinity;
  return p.ts / (p.lambda * tc) + (C * p.lambda) / denom;
}

/** T_c = tau_1 / (B + lambda sqrt(A / T_s)); not ok (with the reason, and Young/Daly) when the fits fall outside the model. */
export function cpsrInterval(p: PlannerInputs): Plan {
  const youngDaly = p.ts > 0 && p.lambda > 0 ? youngDalyIterations(p.ts, p.lambda) : Infinity;
  let k;
  try {
    k = plannerConstants(p);
  } catch (e) {
    return { ok: false, reason: (e as Error).message, youngDaly };
  }
  const denom = k.B + p.lambda * Math.sqrt(k.A / p.ts);
  if (!(denom > 0)) return { ok: false, reason: `B + lambda sqrt(A / T_s) = ${denom} <= 0: the loss falls slower than failures arrive (no finite optimum)`, youngDaly };
  return { ok: true, interval: p.tau1 / denom, ...k, youngDaly };
}

/**
 * xi from one measurement: a stage replaced by a state whose mean squared distance per parameter
 * to the live one is `mse` raised the validation loss by `deltaLoss` (dF = xi N_p mse / 2).
 */
export function estimateXi(deltaLoss: number, np: number, mse: number): number {
  if (!(np > 0 && mse > 0) || !Number.isFinite(deltaLoss)) throw new CpsrError(`estimateXi: needs N_p > 0, mse > 0 and a finite loss change (got ${np}, ${mse}, ${deltaLoss})`);
  return Math.max((2 * deltaLoss) / (np * mse), Number.MIN_VALUE);
}
