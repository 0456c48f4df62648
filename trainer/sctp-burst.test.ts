import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DEFAULT_SCTP_BURST, loadedAt, parseSctpBurst, readElf, readSctpBurst, setSctpBurst } from './sctp-burst.js';
import { patternFrame, peerPair, type PeerEnd } from '../testing/peer-pair.js';
import { until } from '../testing/until.js';

const binary = () => {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve(`@node-datachannel/${process.platform}-${process.arch}-gnu/package.json`)), 'node_datachannel.node');
};
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';

describe('sctp-burst: usrsctp burst limits in node-datachannel', () => {
  let ends: PeerEnd[] = [];
  afterEach(async () => {
    for (const e of ends) e.links.closeAll();
    ends = [];
    setSctpBurst(DEFAULT_SCTP_BURST);
    await new Promise((r) => setTimeout(r, 200)); // libdatachannel closes asynchronously
  });

  it('finds a mapped binary by name at file offset 0', () => {
    const maps = [
      '7f00aa000000-7f00aa071000 r--p 00000000 fe:00 11 /x/y/other.node',
      '7fed3d071000-7fed3d53a000 r-xp 00071000 fe:00 12 /x/node_modules/@node-datachannel/linux-x64-gnu/node_datachannel.node',
      '7fed3d000000-7fed3d071000 r--p 00000000 fe:00 12 /x/node_modules/@node-datachannel/linux-x64-gnu/node_datachannel.node',
      '7fff00000000-7fff00001000 rw-p 00000000 00:00 0 [stack]',
    ].join('\n');
    expect(loadedAt(maps, 'node_datachannel.node')).toEqual({ start: 0x7fed3d000000n, path: '/x/node_modules/@node-datachannel/linux-x64-gnu/node_datachannel.node' });
    expect(loadedAt(maps, 'datachannel.node')).toBeNull(); // a whole file name, not a suffix of one
    expect(loadedAt(maps, 'absent.node')).toBeNull();
  });

  it.runIf(onLinuxX64)('reads the usrsctp sysctl functions from the shipped binary\'s symbol table', () => {
    const { symbols, firstLoadVaddr } = readElf(binary());
    expect(firstLoadVaddr).toBe(0n);
    for (const n of ['usrsctp_sysctl_get_sctp_use_cwnd_based_maxburst', 'usrsctp_sysctl_set_sctp_use_cwnd_based_maxburst', 'usrsctp_sysctl_get_sctp_max_burst_default', 'usrsctp_sysctl_set_sctp_max_burst_default'])
      expect(symbols.get(n), n).toBeGreaterThan(0n);
  });

  it('refuses what is not a 64-bit ELF, and names the settings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'elf-'));
    try {
      writeFileSync(join(dir, 'x.node'), Buffer.alloc(128, 1));
      expect(() => readElf(join(dir, 'x.node'))).toThrow(/not ELF/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(parseSctpBurst('lifted')).toBe('lifted');
    expect(() => parseSctpBurst('off')).toThrow(/lifted or limited/);
  });

  it.runIf(onLinuxX64)('sets both limits off and back to usrsctp\'s own, read back through usrsctp\'s getters', () => {
    expect(setSctpBurst('limited')).toEqual({ ok: true });
    expect(readSctpBurst()).toEqual({ sctp_use_cwnd_based_maxburst: 1, sctp_max_burst_default: 10 });
    expect(setSctpBurst('lifted')).toEqual({ ok: true });
    expect(readSctpBurst()).toEqual({ sctp_use_cwnd_based_maxburst: 0, sctp_max_burst_default: 0 });
    expect(setSctpBurst('limited')).toEqual({ ok: true });
    expect(readSctpBurst()).toEqual({ sctp_use_cwnd_based_maxburst: 1, sctp_max_burst_default: 10 });
  });

  it.runIf(onLinuxX64)('with the limits lifted, frames of 1 KiB to 4 MiB cross a link whole and in order', async () => {
    const [a, b] = (ends = peerPair('lifted-a', 'lifted-b', { sctpBurst: 'lifted' }));
    expect(readSctpBurst()).toEqual({ sctp_use_cwnd_based_maxburst: 0, sctp_max_burst_default: 0 });
    const sizes = [1024, 256 * 1024, 4 * 1024 * 1024, 64 * 1024, 1024 * 1024];
    const sent = sizes.map((n, i) => patternFrame(n, i + 1));
    await Promise.all(sent.map((f) => a.links.send('lifted-b', f)));
    await until(() => b.frames.length === sent.length, 'frames', 60_000);
    expect(b.frames.map((f) => f.frame.length)).toEqual(sizes);
    b.frames.forEach((f, i) => expect(Buffer.from(f.frame).equals(Buffer.from(sent[i]!)), `frame ${i}`).toBe(true));
    expect(a.downs).toEqual([]);
  });
});
