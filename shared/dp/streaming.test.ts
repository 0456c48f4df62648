import { describe, it, expect } from 'vitest';
import { checkStreaming, dilocoJoinsAllowed, syncsAppliedBy, fragmentDueAfter, fragmentOffset, fragmentRanges, mergeFragment, syncAppliedAfter, streamingOf, streamingJoinWarning, inWarmup } from './streaming.js';
import { checkDpSettings, DEFAULT_DP, syncsAfter } from './dp-settings.js';
import { DilocoReplica } from './diloco-replica.js';
import { DilocoSyncSession } from './diloco-sync-session.js';
import { encodeSyncChunk } from './sync-chunks.js';

describe('the Streaming DiLoCo fragment schedule', () => {
  it('fragment f syncs after iterations t with (t + 1) mod H = floor(f H / F)', () => {
    const plan = { every: 4, fragments: 2, overlap: 1 };
    expect([0, 1].map((f) => fragmentOffset(plan, f))).toEqual([0, 2]);
    expect(Array.from({ length: 9 }, (_, t) => fragmentDueAfter(plan, t))).toEqual([null, 1, null, 0, null, 1, null, 0, null]);
    // applied tau = 1 iteration after each start
    expect(Array.from({ length: 9 }, (_, t) => syncAppliedAfter(plan, t))).toEqual([null, null, 1, null, 3, null, 5, null, 7]);
    const four = { every: 4, fragments: 4, overlap: 1 };
    expect(Array.from({ length: 8 }, (_, t) => fragmentDueAfter(four, t))).toEqual([1, 2, 3, 0, 1, 2, 3, 0]);
    // H = 5, F = 3: offsets 0, 1, 3
    expect(Array.from({ length: 5 }, (_, t) => fragmentDueAfter({ every: 5, fragments: 3 }, t))).toEqual([1, null, 2, null, 0]);
  });

  it('one fragment is plain DiLoCo: a sync after every H-th iteration, nothing applied later', () => {
    const plan = streamingOf({ every: 3 });
    expect(plan).toEqual({ every: 3, fragments: 1, overlap: 0, merge: 'mix', warmup: 0 });
    expect(Array.from({ length: 7 }, (_, t) => syncsAfter({ mode: 'diloco', every: 3 }, t))).toEqual([false, false, true, false, false, true, false]);
    expect(Array.from({ length: 7 }, (_, t) => syncAppliedAfter(plan, t))).toEqual([null, null, 2, null, null, 5, null]);
    expect(syncsAfter({ mode: 'exact', every: 1 }, 0)).toBe(false);
  });

  it('counts syncs applied and gates joins: plain DiLoCo right after a sync, streaming while none is under way', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((d) => syncsAppliedBy({ every: 3, fragments: 1, overlap: 0 }, d))).toEqual([0, 0, 0, 1, 1, 1, 2]);
    // H 4, F 4, tau 1: one sync starts after every iteration, applied after the next
    expect([0, 1, 2, 5].map((d) => syncsAppliedBy({ every: 4, fragments: 4, overlap: 1 }, d))).toEqual([0, 0, 1, 4]);
    // H 4, F 2, tau 1: starts after 1, 3, 5; applied after 2, 4, 6
    expect([2, 3, 4, 7].map((d) => syncsAppliedBy({ every: 4, fragments: 2, overlap: 1 }, d))).toEqual([0, 1, 1, 3]);
    const plain = { every: 4, fragments: 1, overlap: 0 };
    expect([0, 3, 4, 8].map((d) => dilocoJoinsAllowed(plain, d, false))).toEqual([true, false, true, true]);
    expect(dilocoJoinsAllowed({ every: 4, fragments: 2, overlap: 1 }, 3, true)).toBe(false);
    expect(dilocoJoinsAllowed({ every: 4, fragments: 2, overlap: 1 }, 3, false)).toBe(true);
  });

  it('refuses F > H and tau > floor(H / F)', () => {
    expect(() => checkStreaming({ every: 4, fragments: 4, overlap: 1 })).not.toThrow();
    expect(() => checkStreaming({ every: 4, fragments: 5, overlap: 0 })).toThrow(/exceeds --dp-every/);
    expect(() => checkStreaming({ every: 4, fragments: 2, overlap: 3 })).toThrow(/floor/);
    expect(() => checkStreaming({ every: 4, fragments: 0, overlap: 0 })).toThrow(/--dp-fragments/);
    expect(() => checkDpSettings({ ...DEFAULT_DP, mode: 'diloco', every: 8, fragments: 2, overlap: -1 })).toThrow(/--dp-overlap/);
  });

  it('splits a vector into contiguous fragments on whole int8 blocks', () => {
    // floor(1000 / 3) = 333 -> 256, floor(2000 / 3) = 666 -> 640
    expect(fragmentRanges(1000, 3)).toEqual([
      { index: 0, start: 0, count: 256 },
      { index: 1, start: 256, count: 384 },
      { index: 2, start: 640, count: 360 },
    ]);
    expect(fragmentRanges(77, 1)).toEqual([{ index: 0, start: 0, count: 77 }]);
    expect(() => fragmentRanges(200, 2)).toThrow(/cannot be split/);
  });

  it('merges by replacing at tau = 0 and by alpha local + (1 - alpha) global at tau >= 1 (by hand)', () => {
    const w = Float32Array.of(1, 2, 3, 4);
    mergeFragment(w, { index: 1, start: 1, count: 2 }, Float32Array.of(10, 20), 0);
    expect(Array.from(w)).toEqual([1, 10, 20, 4]);
    const v = Float32Array.of(1, 2, 3, 4);
    mergeFragment(v, { index: 1, start: 2, count: 2 }, Float32Array.of(5, -4), 1);
    expect(Array.from(v)).toEqual([1, 2, 0.5 * 3 + 0.5 * 5, 0.5 * 4 + 0.5 * -4]);
    const u = Float32Array.of(1, 2);
    mergeFragment(u, { index: 0, start: 0, count: 2 }, Float32Array.of(3, 6), 2, { alpha: 0.25 });
    expect(Array.from(u)).toEqual([0.25 * 1 + 0.75 * 3, 0.25 * 2 + 0.75 * 6]);
    // delta: global + (local now - the snapshot the pseudo-gradient was read from)
    const d = Float32Array.of(1, 2, 3, 4);
    mergeFragment(d, { index: 1, start: 2, count: 2 }, Float32Array.of(5, -4), 1, { merge: 'delta', snapshot: Float32Array.of(0, 0, 2.5, 4.5) });
    expect(Array.from(d)).toEqual([1, 2, 5 + (3 - 2.5), -4 + (4 - 4.5)]);
    expect(() => mergeFragment(d, { index: 0, start: 0, count: 2 }, Float32Array.of(1, 1), 1, { merge: 'delta' })).toThrow(/snapshot/);
    expect(() => checkStreaming({ every: 4, fragments: 2, overlap: 1, merge: 'blend' as 'mix' })).toThrow(/--dp-merge/);
  });
});

describe('a fragment sync through DilocoSyncSession (by hand, f32)', () => {
  it('moves only the fragment, steps only its momentum and anchor, and mixes at an overlapped apply', () => {
    const N = 512;
    const hyper = { lr: 0.5, momentum: 0.5, wire: 'f32' as const, streaming: { every: 2, fragments: 2, overlap: 1 } };
    const w0 = Float32Array.from({ length: N }, (_, i) => i / 64);
    const reps = [0, 1].map(() => DilocoReplica.start(0, w0, hyper, 128));
    const cur = [0, 1].map((r) => Float32Array.from(w0, (x, i) => x - (r + 1) * 0.25 * (i % 3)));
    // after iteration 0: (0 + 1) mod 2 = 1 = floor(1 * 2 / 2): fragment 1, values [256, 512)
    const sessions = reps.map((rep, r) => new DilocoSyncSession(rep, 0, cur[r]!));
    expect(sessions[0]!.fragment).toEqual({ index: 1, start: 256, count: 256 });
    expect(sessions[0]!.chunkCount).toBe(2);
    // the mean of pseudo-gradients (r + 1) * 0.25 * (i % 3) over r = 0, 1 is 0.375 * (i % 3), sent as the coordinator would
    for (let c = 0; c < 2; c++) {
      const mean = Float32Array.from({ length: 128 }, (_, j) => 0.375 * ((256 + c * 128 + j) % 3));
      const frame = encodeSyncChunk({ stage: 0, iteration: 0, direction: 'down', wire: 'f32' }, { index: c, start: c * 128, count: 128 }, mean);
      for (const s of sessions) s.acceptMean(c, frame);
    }
    // one more iteration of training moved every weight by +1 on replica 0 before the apply (tau = 1)
    const now = Float32Array.from(cur[0]!, (x) => x + 1);
    const out = sessions[0]!.apply(now);
    for (const i of [0, 5, 255]) expect(out[i]).toBe(now[i]); // fragment 0 untouched
    for (const i of [256, 257, 300, 511]) {
      const g = 0.375 * (i % 3);
      const m = g; // momentum was 0
      const globalNew = Math.fround(w0[i]! - 0.5 * (g + 0.5 * m));
      expect(out[i]).toBe(Math.fround(0.5 * now[i]! + 0.5 * globalNew));
    }
    const st = reps[0]!.state();
    expect(st.momentum[10]).toBe(0);
    expect(st.momentum[256]).toBe(Math.fround(0.375)); // 256 mod 3 = 1
    expect(st.synced[10]).toBe(w0[10]);
    expect(st.synced[256]).toBe(Math.fround(w0[256]! - 0.5 * (0.375 + 0.5 * 0.375)));
    // after iteration 1: fragment 0
    expect(new DilocoSyncSession(reps[0]!, 1, out).fragment).toEqual({ index: 0, start: 0, count: 256 });
    expect(() => new DilocoSyncSession(reps[0]!, 2, out)).not.toThrow(); // (2 + 1) mod 2 = 1: fragment 1 again
    const three = DilocoReplica.start(0, w0, { ...hyper, streaming: { every: 3, fragments: 2, overlap: 1 } }, 128);
    expect(() => new DilocoSyncSession(three, 1, w0)).toThrow(/no fragment syncs/); // offsets 0 and 1: (1 + 1) mod 3 = 2
  });
});

describe('the join warning', () => {
  it('warns only where a sync is always under way (tau = floor(H / F) > 0)', () => {
    const plan = (every: number, fragments: number, overlap: number) => streamingOf({ every, fragments, overlap });
    expect(streamingJoinWarning(plan(4, 4, 1))).toMatch(/cannot join.*--dp-overlap <= 0/);
    expect(streamingJoinWarning(plan(20, 4, 5))).toMatch(/--dp-overlap <= 4/);
    expect(streamingJoinWarning(plan(20, 4, 4))).toBeNull();
    expect(streamingJoinWarning(plan(20, 1, 0))).toBeNull();
    expect(streamingJoinWarning(plan(4, 4, 0))).toBeNull();
  });
});

describe('the synced warm-up (--dp-warmup W)', () => {
  it('syncs the whole stage after each of the first W iterations, then every H; joins after every warm-up iteration', () => {
    const plan = streamingOf({ every: 4, warmup: 3 });
    expect(Array.from({ length: 12 }, (_, t) => fragmentDueAfter(plan, t))).toEqual([0, 0, 0, 0, null, null, null, 0, null, null, null, 0]);
    expect(Array.from({ length: 12 }, (_, t) => syncsAfter({ mode: 'diloco', every: 4, warmup: 3 }, t))).toEqual([true, true, true, true, false, false, false, true, false, false, false, true]);
    expect(syncsAppliedBy(plan, 12)).toBe(6); // after iterations 0, 1, 2, 3, 7, 11
    expect([0, 1, 2, 3, 4, 5, 8].map((done) => dilocoJoinsAllowed(plan, done, false))).toEqual([true, true, true, true, true, false, true]);
    expect(inWarmup(plan, 2)).toBe(true);
    expect(inWarmup(plan, 3)).toBe(false);
    // Absent or 0: the schedule without a warm-up.
    expect(Array.from({ length: 4 }, (_, t) => fragmentDueAfter(streamingOf({ every: 4 }), t))).toEqual([null, null, null, 0]);
  });

  it('is refused with fragments or overlap, and when not a whole number >= 0', () => {
    expect(() => checkStreaming({ every: 4, fragments: 2, overlap: 0, warmup: 2 })).toThrow(/--dp-warmup needs plain DiLoCo/);
    expect(() => checkStreaming({ every: 4, fragments: 1, overlap: 1, warmup: 2 })).toThrow(/--dp-warmup needs plain DiLoCo/);
    expect(() => checkStreaming({ every: 4, fragments: 1, overlap: 0, warmup: -1 })).toThrow(/--dp-warmup must be/);
    expect(() => checkStreaming({ every: 4, fragments: 1, overlap: 0, warmup: 1.5 })).toThrow(/--dp-warmup must be/);
    expect(() => checkDpSettings({ ...DEFAULT_DP, mode: 'diloco', warmup: 5 })).not.toThrow();
  });
});
