import { describe, expect, it } from 'vitest';
import { backwardPath, blockOrder, forwardPath, nextHop, swapCounter, type Hop } from './paths';

/** Compact notation: "stage:part+part", e.g. "0:embed+blocks". */
function fmt(path: Hop[]): string[] {
  return path.map(({ stage, segment }) => {
    const parts = (['embed', 'blocks', 'head'] as const).filter((p) => segment[p]);
    return `${stage}:${parts.join('+')}`;
  });
}

const STAGES = [1, 2, 3, 4, 5, 6, 7, 8];
const MICROBATCHES = [0, 1, 2, 3, 4, 5, 6, 7];

describe('forwardPath invariants', () => {
  for (const nStages of STAGES) {
    for (const swap of [false, true]) {
      it(`S=${nStages} swap=${swap}`, () => {
        for (const mb of MICROBATCHES) {
          const path = forwardPath(mb, nStages, swap);

          // Blocks: every stage exactly once, in blockOrder.
          const blockStages = path.filter((h) => h.segment.blocks).map((h) => h.stage);
          expect(blockStages).toEqual(blockOrder(mb, nStages, swap));
          expect([...blockStages].sort((a, b) => a - b)).toEqual([...Array(nStages).keys()]);

          // Embed exactly once, on stage 0, in the first hop.
          const embeds = path.filter((h) => h.segment.embed);
          expect(embeds).toHaveLength(1);
          expect(path[0].stage).toBe(0);
          expect(path[0].segment.embed).toBe(true);

          // Head exactly once, on stage S-1, in the last hop.
          const heads = path.filter((h) => h.segment.head);
          expect(heads).toHaveLength(1);
          expect(path[path.length - 1].stage).toBe(nStages - 1);
          expect(path[path.length - 1].segment.head).toBe(true);

          // Adjacent hops are on different stages (merged) and no hop is empty.
          for (let i = 1; i < path.length; i++) expect(path[i].stage).not.toBe(path[i - 1].stage);
          for (const h of path) expect(h.segment.embed || h.segment.blocks || h.segment.head).toBe(true);

          // Without swap, or on even microbatches, one hop per stage in order.
          if (!swap || mb % 2 === 0 || nStages === 1) {
            expect(path.map((h) => h.stage)).toEqual([...Array(nStages).keys()]);
          }
        }
      });
    }
  }
});

describe('forwardPath explicit cases', () => {
  it('S=1 is a single hop regardless of swap', () => {
    for (const mb of MICROBATCHES) expect(fmt(forwardPath(mb, 1, true))).toEqual(['0:embed+blocks+head']);
  });

  it('S=2', () => {
    expect(fmt(forwardPath(0, 2, true))).toEqual(['0:embed+blocks', '1:blocks+head']);
    expect(fmt(forwardPath(1, 2, true))).toEqual(['0:embed', '1:blocks', '0:blocks', '1:head']);
    expect(fmt(forwardPath(3, 2, true))).toEqual(['0:embed', '1:blocks', '0:blocks', '1:head']);
    expect(fmt(forwardPath(1, 2, false))).toEqual(['0:embed+blocks', '1:blocks+head']);
  });

  it('S=3 alternates which pair is swapped on odd microbatches', () => {
    expect(fmt(forwardPath(0, 3, true))).toEqual(['0:embed+blocks', '1:blocks', '2:blocks+head']);
    expect(blockOrder(1, 3, true)).toEqual([1, 0, 2]);
    expect(fmt(forwardPath(1, 3, true))).toEqual(['0:embed', '1:blocks', '0:blocks', '2:blocks+head']);
    expect(blockOrder(3, 3, true)).toEqual([0, 2, 1]);
    expect(fmt(forwardPath(3, 3, true))).toEqual(['0:embed+blocks', '2:blocks', '1:blocks', '2:head']);
    expect(blockOrder(5, 3, true)).toEqual([1, 0, 2]);
    expect(blockOrder(7, 3, true)).toEqual([0, 2, 1]);
  });

  it('S=4', () => {
    expect(fmt(forwardPath(0, 4, true))).toEqual(['0:embed+blocks', '1:blocks', '2:blocks', '3:blocks+head']);
    expect(fmt(forwardPath(1, 4, true))).toEqual([
      '0:embed',
      '1:blocks',
      '0:blocks',
      '3:blocks',
      '2:blocks',
      '3:head',
    ]);
  });

  it('S=6', () => {
    expect(blockOrder(5, 6, true)).toEqual([1, 0, 2, 3, 5, 4]);
    expect(fmt(forwardPath(5, 6, true))).toEqual([
      '0:embed',
      '1:blocks',
      '0:blocks',
      '2:blocks',
      '3:blocks',
      '5:blocks',
      '4:blocks',
      '5:head',
    ]);
    expect(fmt(forwardPath(4, 6, true))).toEqual([
      '0:embed+blocks',
      '1:blocks',
      '2:blocks',
      '3:blocks',
      '4:blocks',
      '5:blocks+head',
    ]);
  });

  it('rejects invalid arguments', () => {
    expect(() => forwardPath(0, 0, false)).toThrow(RangeError);
    expect(() => forwardPath(-1, 2, false)).toThrow(RangeError);
    expect(() => forwardPath(0.5, 2, false)).toThrow(RangeError);
  });
});

describe('swapCounter: the swaps alternate across iterations', () => {
  /** Which pairs (first: stages 0/1, last: S-2/S-1) swap in `iterations` iterations of M microbatches. */
  function swappedPairs(S: number, M: number, iterations: number): { first: number; last: number } {
    const n = { first: 0, last: 0 };
    for (let it = 0; it < iterations; it++) {
      for (let mb = 0; mb < M; mb++) {
        const order = blockOrder(swapCounter(it, M, mb), S, true);
        if (order[0] === 1) n.first++;
        if (order[S - 1] === S - 2) n.last++;
      }
    }
    return n;
  }

  it('S=3, M=2: both pairs are swapped (a counter local to the iteration never swaps the last pair)', () => {
    const n = swappedPairs(3, 2, 4);
    expect(n.first).toBe(2);
    expect(n.last).toBe(2);
    expect(blockOrder(swapCounter(0, 2, 1), 3, true)).toEqual([1, 0, 2]);
    expect(blockOrder(swapCounter(1, 2, 1), 3, true)).toEqual([0, 2, 1]);
  });

  it('M=1: every other iteration swaps, for every S >= 2', () => {
    for (const S of [2, 3, 4, 6]) {
      const n = swappedPairs(S, 1, 8);
      expect(n.first + n.last).toBeGreaterThan(0);
      expect(n.first).toBe(S === 3 ? 2 : 4);
      expect(n.last).toBe(S === 3 ? 2 : 4);
    }
  });

  it('with an even M the counter has the parity of the microbatch (the swaps of the first iteration repeat)', () => {
    for (let it = 0; it < 5; it++) for (let mb = 0; mb < 4; mb++) expect(swapCounter(it, 4, mb) % 2).toBe(mb % 2);
  });

  it('rejects invalid arguments', () => {
    expect(() => swapCounter(0, 0, 0)).toThrow(RangeError);
    expect(() => swapCounter(-1, 2, 0)).toThrow(RangeError);
    expect(() => swapCounter(0, 2, 2)).toThrow(/out of range/);
  });
});

describe('backwardPath', () => {
  it('is exactly the forward path reversed', () => {
    for (const nStages of STAGES) {
      for (const swap of [false, true]) {
        for (const mb of MICROBATCHES) {
          expect(backwardPath(mb, nStages, swap)).toEqual([...forwardPath(mb, nStages, swap)].reverse());
        }
      }
    }
  });
});

describe('nextHop', () => {
  it('walks forward hops, then backward hops, then ends', () => {
    for (const nStages of STAGES) {
      for (const mb of [0, 1, 3]) {
        const fwd = forwardPath(mb, nStages, true);
        const bwd = backwardPath(mb, nStages, true);
        const walked: Hop[] = [fwd[0]];
        let ref = nextHop(mb, nStages, true, 'F', 0);
        while (ref) {
          walked.push(ref.hop);
          ref = nextHop(mb, nStages, true, ref.dir, ref.hopIndex);
        }
        expect(walked).toEqual([...fwd, ...bwd]);
      }
    }
  });

  it('rejects an out-of-range hop index', () => {
    expect(() => nextHop(0, 4, false, 'F', 4)).toThrow(RangeError);
  });
});
