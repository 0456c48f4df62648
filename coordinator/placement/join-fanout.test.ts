import { describe, expect, it, vi } from 'vitest';
import { boundedEach, fanOutJoin, firstHolder } from './join-fanout.js';
import { Placement } from './placement.js';
import { StageTable } from './stage-table.js';
import { BundleTransfer } from '../tabs/bundle-transfer.js';
import { StagedBundle } from '../../shared/volunteer/staged-bundle.js';
import { TabSpeeds } from '../tabs/tab-speed.js';
import { EventLog } from '../record/events-log.js';
import { createLogger } from '../record/log.js';
import type { Volunteer } from '../tabs/registry.js';
import { configForStages, PRESETS } from '../../shared/model/config.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { decodeDilocoState, encodeDilocoState } from '../../shared/dp/diloco-state.js';
import { decodeStageState, encodeStageState } from '../../shared/protocol/index.js';
import { DEFAULT_DP } from '../../shared/dp/dp-settings.js';
import { maxBundleBytes } from '../gateway/message-limits.js';
import { modelMemory } from '../../shared/model/memory.js';
import type { NamedWeights } from '../../shared/model/stage.js';

describe('fanOutJoin', () => {
  it('pulls once and gives every joiner the same state', async () => {
    const pull = vi.fn(async (h: string) => ({ from: h }));
    const got = new Map<string, unknown>();
    const r = await fanOutJoin(['h1', 'h2'], ['a', 'b', 'c'], {
      pull,
      push: async (j, s) => (got.set(j, s), true),
      concurrency: 2,
    });
    expect(pull).toHaveBeenCalledTimes(1);
    expect(r.holder).toBe('h1');
    expect([...got.values()].every((s) => s === got.get('a'))).toBe(true);
    expect([...r.outcomes.values()].map((o) => o.kind)).toEqual(['joined', 'joined', 'joined']);
  });

  it('a failing holder is skipped for the next; a failing joiner does not fail the others', async () => {
    const pull = vi.fn(async (h: string) => {
      if (h === 'bad') throw new Error('bad bundle');
      return h;
    });
    const r = await fanOutJoin(['bad', 'good'], ['a', 'b', 'c', 'd'], {
      pull,
      push: async (j) => {
        if (j === 'b') throw new Error('b left');
        if (j === 'c') return false;
        await new Promise((res) => setTimeout(res, 5));
        return true;
      },
      concurrency: 2,
    });
    expect(pull.mock.calls.map((c) => c[0])).toEqual(['bad', 'good']);
    expect(r.holder).toBe('good');
    expect(r.failedHolders).toEqual([{ holder: 'bad', why: 'bad bundle' }]);
    expect(r.outcomes.get('a')!.kind).toBe('joined');
    expect(r.outcomes.get('b')).toMatchObject({ kind: 'failed', why: 'b left' });
    expect(r.outcomes.get('c')!.kind).toBe('failed');
    expect(r.outcomes.get('d')!.kind).toBe('joined');
  });

  it('no holder delivers: nothing is pushed, every joiner may retry', async () => {
    const push = vi.fn(async () => true);
    const r = await fanOutJoin(['x'], ['a', 'b'], { pull: async () => Promise.reject(new Error('silent')), push, concurrency: 4 });
    expect(push).not.toHaveBeenCalled();
    expect(r.holder).toBeNull();
    expect([...r.outcomes.values()].every((o) => o.kind === 'no-source' && o.why.includes('silent'))).toBe(true);
  });

  it('keeps at most `concurrency` pushes in flight, and runs them in parallel up to it', async () => {
    let inFlight = 0;
    let most = 0;
    await boundedEach([1, 2, 3, 4, 5, 6, 7], 3, async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((res) => setTimeout(res, 5));
      inFlight--;
    });
    expect(most).toBe(3);
    await expect(boundedEach([1], 0, async () => {})).rejects.toThrow(RangeError);
  });

  it('firstHolder rotates the holders', () => {
    expect(firstHolder(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(firstHolder(['a', 'b', 'c'], 4)).toEqual(['b', 'c', 'a']);
    expect(firstHolder([], 3)).toEqual([]);
  });
});

// ---- Placement with fake tabs: a one-stage run, so every joiner goes to the same group ----

const config = configForStages(PRESETS.tiny, 1);
const specs = stageParamSpecs(config, 0);
const P = flatLength(specs);

function namedOf(fill: number): NamedWeights {
  const w: NamedWeights = {};
  for (const s of specs) w[s.name] = new Float32Array(s.shape.reduce((a, b) => a * b, 1)).fill(fill);
  return w;
}

/** Byte equality (vitest's deep equality walks a typed array value by value: minutes for a few MB). */
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

interface FakeTab {
  v: Volunteer;
  /** get_weights requests answered, by parts, counting first chunks only (one per pull). */
  pulls: Record<string, number>;
  assigned: Uint8Array[];
  dilocoSet: Uint8Array[];
}

let ids = 0;
/** A tab that holds `fill`-valued state (a holder) or takes one (a joiner); `refuseAssign`: it fails its assignment. */
function fakeTab(fill: number, opts: { refuseAssign?: boolean; badState?: boolean } = {}): FakeTab {
  const state = encodeStageState({ weights: namedOf(fill), optimizer: { step: 3, lr: 1e-3, m: namedOf(fill / 10), v: namedOf(fill / 100) } });
  const diloco = encodeDilocoState({ synced: new Float32Array(P).fill(fill), momentum: new Float32Array(P).fill(-fill), syncs: 2 });
  // A bundle that decodes but fails checkStageState: one tensor short of the stage's.
  const short = (w: NamedWeights) => Object.fromEntries(Object.entries(w).slice(1));
  const bad = encodeStageState({ weights: short(namedOf(1)), optimizer: { step: 3, lr: 1e-3, m: short(namedOf(0)), v: short(namedOf(0)) } });
  const tab: FakeTab = { v: null as unknown as Volunteer, pulls: {}, assigned: [], dilocoSet: [] };
  // Large bundles arrive in pieces before the request that uses them (coordinator/tabs/bundle-push.ts).
  const staged = new StagedBundle();
  const handlers: Record<string, (...a: any[]) => void> = {
    put_bundle_chunk: (info: { offset: number; total: number }, bytes: Uint8Array, ack: (r: unknown) => void) => {
      staged.put(info, bytes);
      ack({ ok: true });
    },
    get_weights: (req: { parts: string; offset: number; maxBytes: number }, ack: (r: unknown) => void) => {
      const whole = req.parts === 'state' ? (opts.badState ? bad : state) : req.parts === 'diloco' ? diloco : null;
      if (!whole) return ack({ error: `no ${req.parts}` });
      if (req.offset === 0) tab.pulls[req.parts] = (tab.pulls[req.parts] ?? 0) + 1;
      ack({ total: whole.byteLength, offset: req.offset, bytes: whole.slice(req.offset, req.offset + req.maxBytes) });
    },
    assign: (a: { weights: Uint8Array | null; staged?: true }, ack: (r: unknown) => void) => {
      if (opts.refuseAssign) return ack({ error: 'out of memory' });
      tab.assigned.push(a.staged ? staged.take() : a.weights!);
      ack({ ok: true });
    },
    dp_set_state: (info: { staged?: true }, bundle: Uint8Array, ack: (r: unknown) => void) => {
      tab.dilocoSet.push(info.staged ? staged.take() : bundle);
      ack({ ok: true });
    },
  };
  const socket = {
    connected: true,
    once: () => {},
    off: () => {},
    emit: (event: string, ...args: unknown[]) => {
      const ack = args.pop() as (r: unknown) => void;
      setTimeout(() => handlers[event]!(...args, ack), 1);
    },
  };
  tab.v = { id: `t${++ids}`, socket: socket as unknown as Volunteer['socket'], caps: { backend: 'cpu' } as Volunteer['caps'], stage: null, joinedAt: 0, stats: null, lastStepMs: null, offences: 0 };
  return tab;
}

function placementFor(holders: FakeTab[], dilocoMode: boolean) {
  const stages = new StageTable(1);
  for (const h of holders) stages.adopt(0, h.v);
  const drop = vi.fn();
  const log = createLogger({ silent: true });
  const events = new EventLog(log);
  const placement = new Placement(
    { config, lr: 1e-3, maxReplicas: Infinity, rebalanceEvery: 0, wire: 'f32', stageMemory: modelMemory(config, { batch: 1, microbatches: 1 }), dp: { ...DEFAULT_DP, mode: dilocoMode ? 'diloco' : 'exact' }, joinConcurrency: 2 },
    { stages, transfer: new BundleTransfer(64 * 1024, maxBundleBytes(config)), speeds: new TabSpeeds(), events, log, drop, announceGroup: () => {}, issueClaim: () => 'claim' },
  );
  return { stages, placement, drop, events };
}

describe('Placement joins through one pull per stage', () => {
  it('several joiners to one stage get identical checked state and the diloco outer state with one pull; a failing joiner does not block the rest', async () => {
    const holder = fakeTab(0.5);
    const joiners = [fakeTab(0), fakeTab(0), fakeTab(0, { refuseAssign: true }), fakeTab(0), fakeTab(0)];
    const { stages, placement, drop, events } = placementFor([holder], true);
    for (const j of joiners) placement.enqueue(j.v);

    expect(await placement.admit()).toBe(4);
    expect(holder.pulls).toEqual({ state: 1, diloco: 1 });
    expect(stages.size(0)).toBe(5);
    expect(drop).toHaveBeenCalledTimes(1);
    expect(drop.mock.calls[0]![0]).toBe(joiners[2]!.v);
    for (const [i, j] of joiners.entries()) {
      if (i === 2) {
        expect(j.v.stage).toBeNull();
        expect(j.dilocoSet).toHaveLength(0);
        continue;
      }
      expect(j.v.stage).toBe(0);
      // The holder's values, re-encoded from the checked state; every joiner the same bytes.
      expect(sameBytes(j.assigned[0]!, joiners[0]!.assigned[0]!)).toBe(true);
      const got = decodeStageState(j.assigned[0]!);
      expect(got.weights[specs[0]!.name]![0]).toBe(0.5);
      expect(got.optimizer?.step).toBe(3);
      const outer = decodeDilocoState(j.dilocoSet[0]!, P);
      expect(outer.synced[P - 1]).toBe(0.5);
      expect(outer.momentum[0]).toBe(-0.5);
      expect(outer.syncs).toBe(2);
    }
    const fan = events.list().find((e) => (e.data as { fanout?: number } | undefined)?.fanout === 5);
    expect(fan?.message).toContain(`one pull of ${holder.v.id}'s state`);
  });

  it('a holder whose state fails its check is skipped; successive joins pull from different holders', async () => {
    const bad = fakeTab(1, { badState: true });
    const good = fakeTab(2);
    const { stages, placement } = placementFor([bad, good], false);
    const a = fakeTab(0);
    const b = fakeTab(0);
    placement.enqueue(a.v);
    placement.enqueue(b.v);
    expect(await placement.admit()).toBe(2);
    expect(bad.pulls.state).toBe(1);
    expect(good.pulls.state).toBe(1);
    expect(decodeStageState(a.assigned[0]!).weights[specs[0]!.name]![0]).toBe(2);
    expect(sameBytes(b.assigned[0]!, a.assigned[0]!)).toBe(true);
    expect(a.dilocoSet).toHaveLength(0); // exact mode: no outer state

    // The next fan-out asks the group's second holder first (the good one): no pull of the bad one.
    const c = fakeTab(0);
    placement.enqueue(c.v);
    expect(await placement.admit()).toBe(1);
    expect(bad.pulls.state).toBe(1);
    expect(good.pulls.state).toBe(2);
    expect(stages.size(0)).toBe(5);
  });

  it('when no holder delivers, the joiners stay waiting (reservations released)', async () => {
    const bad = fakeTab(1, { badState: true });
    const { stages, placement } = placementFor([bad], false);
    const a = fakeTab(0);
    placement.enqueue(a.v);
    expect(await placement.admit()).toBe(0);
    expect(placement.isWaiting(a.v)).toBe(true);
    expect(stages.reservations(0)).toBe(0);
    expect(a.assigned).toHaveLength(0);
  });
});
