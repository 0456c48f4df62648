import { it } from 'vitest';
import { peerPair } from './peer-pair.js';
it('dbg', async () => {
  for (let i = 0; i < 8; i++) {
    const [a, b] = peerPair('a', 'b', { linkOptions: { openTimeoutMs: 4000 } });
    const t0 = performance.now();
    const r = await a.links.send('b', new Uint8Array(10)).catch((e) => e.message);
    console.log(i, Math.round(performance.now() - t0), typeof r === 'string' ? r : 'ok', a.links.stats()[0]?.openMs, a.downs.map(d=>d.detail), b.downs.map(d=>d.detail));
    a.links.closeAll(); b.links.closeAll();
  }
}, 60000);
