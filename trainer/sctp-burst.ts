/**
 * usrsctp's burst limits, lifted for Node volunteers on libdatachannel (issue 23).
 *
 * usrsctp (the SCTP under libdatachannel) caps a send burst at `max_burst` packets (default 10)
 * and, with `use_cwnd_based_maxburst` (default on), also cuts the congestion window to
 * flight + max_burst x MTU whenever it sends with little in flight. A pipeline hop sends one frame
 * after an idle gap, so every frame restarted from a ~12 KB window that doubles per round trip:
 * ~5 round trips for a 256 KiB frame (bench:p2p-throughput, docs/p2p.md). Linux TCP keeps its
 * window across such gaps (shorter than its retransmission timeout), so the relay never paid this.
 *
 * libdatachannel has the knob (`SctpSettings.maxBurst`, 0 = no limit) but node-datachannel 0.33
 * does not pass it through, and the binary exports no usrsctp symbol. Its symbol table is not
 * stripped, though: this module finds usrsctp's own sysctl setters there
 * (`usrsctp_sysctl_set_sctp_use_cwnd_based_maxburst`, `..._max_burst_default`), adds the address
 * the binary was loaded at (/proc/self/maps) and calls them through koffi, a C FFI whose native
 * part ships in per-platform npm packages. Each value is read back through the matching getter
 * first (it must be what usrsctp ships) and after (it must be 0); on any surprise nothing is
 * written and the reason is returned. The settings are process-wide and hold while usrsctp stays
 * initialised, so node-datachannel's `preload()` keeps it initialised for the process's life.
 *
 * To be replaced by `setSctpSettings({ maxBurst: 0 })` once node-datachannel passes it on.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';

/** `lifted`: usrsctp sends a frame at its congestion window; `limited`: usrsctp's defaults. */
export const SCTP_BURSTS = ['lifted', 'limited'] as const;
export type SctpBurst = (typeof SCTP_BURSTS)[number];

/** A burst setting's name from a flag, argv or the environment, checked. */
export function parseSctpBurst(name: string): SctpBurst {
  if (!(SCTP_BURSTS as readonly string[]).includes(name)) throw new Error(`SCTP burst "${name}": expected ${SCTP_BURSTS.join(' or ')}`);
  return name as SctpBurst;
}

/**
 * What Node volunteers on libdatachannel do unless told otherwise: `lifted`;
 * `NODE_SCTP_BURST=limited` in the environment keeps usrsctp's defaults in every Node volunteer,
 * test and benchmark of that process and its children.
 */
export const DEFAULT_SCTP_BURST: SctpBurst = parseSctpBurst(process.env.NODE_SCTP_BURST || 'lifted');

export type BurstResult = { ok: true } | { ok: false; reason: string };

/** The usrsctp sysctls this module writes: the value usrsctp ships (`limited`) and `lifted`. */
const KNOBS = [
  { name: 'sctp_use_cwnd_based_maxburst', limited: 1, lifted: 0 },
  { name: 'sctp_max_burst_default', limited: 10, lifted: 0 },
] as const;

const BINARY = 'node_datachannel.node';

interface Knob {
  name: string;
  limited: number;
  lifted: number;
  read(): number;
  write(v: number): number;
}
let knobs: Knob[] | string | null = null;
/** What this process's usrsctp was last set to here (null: not yet, or the last setting failed). */
let setTo: SctpBurst | null = null;

/**
 * Sets usrsctp's burst limits in this whole process to `burst` (`lifted` or usrsctp's own
 * `limited`); the last call wins, for associations open and to come, and a call asking for what
 * is already set does nothing. Never throws: a platform, binary or FFI that does not fit leaves
 * usrsctp as it is and says why.
 */
export function setSctpBurst(burst: SctpBurst): BurstResult {
  if (setTo === burst) return { ok: true };
  setTo = null;
  knobs ??= find();
  if (typeof knobs === 'string') return { ok: false, reason: knobs };
  try {
    for (const k of knobs) {
      const rc = k.write(k[burst]);
      const now = k.read();
      if (rc !== 0 || now !== k[burst]) return { ok: false, reason: `setting ${k.name} to ${k[burst]} gave ${rc}, reads ${now}` };
    }
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  setTo = burst;
  return { ok: true };
}

/** The knobs' values now (`{ sctp_use_cwnd_based_maxburst, sctp_max_burst_default }`), or why they cannot be read. */
export function readSctpBurst(): Record<string, number> | string {
  knobs ??= find();
  if (typeof knobs === 'string') return knobs;
  return Object.fromEntries(knobs.map((k) => [k.name, k.read()]));
}

/** The knobs' getters and setters in the loaded binary, checked against usrsctp's shipped values; or why not. */
function find(): Knob[] | string {
  if (process.platform !== 'linux') return `not on ${process.platform} (reads /proc/self/maps)`;
  const require = createRequire(import.meta.url);
  try {
    // Initialises usrsctp now and keeps it so: a later re-initialisation would reset the sysctls.
    (require('node-datachannel') as { preload(): void }).preload();
  } catch (e) {
    return `node-datachannel: ${(e as Error).message}`;
  }
  const mapped = loadedAt(readFileSync('/proc/self/maps', 'utf8'), BINARY);
  if (!mapped) return `${BINARY} is not mapped in this process`;
  let symbols: Map<string, bigint>;
  let bias: bigint;
  try {
    const elf = readElf(mapped.path);
    symbols = elf.symbols;
    bias = mapped.start - elf.firstLoadVaddr;
  } catch (e) {
    return `${mapped.path}: ${(e as Error).message}`;
  }
  let koffi: Koffi;
  try {
    koffi = require('koffi') as Koffi;
    koffi.load(null); // koffi's calls through raw pointers crashed until a library had been loaded
  } catch (e) {
    return `koffi: ${(e as Error).message}`;
  }
  const getter = koffi.proto('uint32_t usrsctp_sysctl_getter(void)');
  const setter = koffi.proto('int usrsctp_sysctl_setter(uint32_t)');
  const fn = (name: string) => {
    const at = symbols.get(name);
    if (at === undefined) throw new Error(`no symbol ${name} in ${mapped.path}`);
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(bias + at);
    return koffi.decode(b, 'void *');
  };
  try {
    const found = KNOBS.map((k) => {
      const get = fn(`usrsctp_sysctl_get_${k.name}`);
      const set = fn(`usrsctp_sysctl_set_${k.name}`);
      return { ...k, read: () => koffi.call(get, getter) as number, write: (v: number) => koffi.call(set, setter, v) as number };
    });
    for (const k of found) {
      const now = k.read();
      if (now !== k.limited && now !== k.lifted) return `${k.name} reads ${now}, expected ${k.limited}: not the usrsctp this was written for`;
    }
    return found;
  } catch (e) {
    return (e as Error).message;
  }
}

interface Koffi {
  load(path: null): unknown;
  proto(signature: string): unknown;
  decode(buffer: Buffer, type: string): unknown;
  call(fn: unknown, proto: unknown, ...args: unknown[]): unknown;
}

/** Where `/proc/self/maps` says the file named `binary` starts (its mapping at file offset 0). */
export function loadedAt(maps: string, binary: string): { start: bigint; path: string } | null {
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ ([0-9a-f]+) \S+ \d+\s+(\/.*)$/.exec(line);
    if (m && BigInt(`0x${m[2]}`) === 0n && m[3]!.endsWith(`/${binary}`)) return { start: BigInt(`0x${m[1]}`), path: m[3]! };
  }
  return null;
}

/**
 * A 64-bit little-endian ELF shared object's function symbols from its `.symtab` (values are
 * addresses relative to the object's link address), and the link address of its first loaded
 * segment (the one mapped at file offset 0).
 */
export function readElf(path: string): { symbols: Map<string, bigint>; firstLoadVaddr: bigint } {
  const fd = openSync(path, 'r');
  try {
    const read = (at: bigint | number, n: number) => {
      const b = Buffer.alloc(n);
      if (readSync(fd, b, 0, n, Number(at)) !== n) throw new Error('short read');
      return b;
    };
    const h = read(0, 64);
    if (h.readUInt32BE(0) !== 0x7f454c46) throw new Error('not ELF');
    if (h[4] !== 2 || h[5] !== 1) throw new Error('not a 64-bit little-endian ELF');
    const phoff = h.readBigUInt64LE(32);
    const shoff = h.readBigUInt64LE(40);
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    const shentsize = h.readUInt16LE(58);
    const shnum = h.readUInt16LE(60);
    let firstLoadVaddr: bigint | null = null;
    for (let i = 0; i < phnum; i++) {
      const p = read(phoff + BigInt(i * phentsize), 56);
      if (p.readUInt32LE(0) === 1 /* PT_LOAD */ && p.readBigUInt64LE(8) === 0n) firstLoadVaddr = p.readBigUInt64LE(16);
    }
    if (firstLoadVaddr === null) throw new Error('no loaded segment at file offset 0');
    const sections = Array.from({ length: shnum }, (_, i) => {
      const s = read(shoff + BigInt(i * shentsize), 64);
      return { type: s.readUInt32LE(4), offset: s.readBigUInt64LE(24), size: s.readBigUInt64LE(32), link: s.readUInt32LE(40), entsize: s.readBigUInt64LE(56) };
    });
    const symtab = sections.find((s) => s.type === 2 /* SHT_SYMTAB */);
    if (!symtab) throw new Error('stripped: no .symtab');
    const strtab = sections[symtab.link];
    if (!strtab) throw new Error('.symtab names no string table');
    const strings = read(strtab.offset, Number(strtab.size));
    const table = read(symtab.offset, Number(symtab.size));
    const symbols = new Map<string, bigint>();
    for (let at = 0; at + 24 <= table.length; at += Number(symtab.entsize) || 24) {
      const info = table[at + 4]!;
      const value = table.readBigUInt64LE(at + 8);
      if ((info & 0xf) !== 2 /* STT_FUNC */ || value === 0n) continue;
      const nameAt = table.readUInt32LE(at);
      const end = strings.indexOf(0, nameAt);
      symbols.set(strings.toString('latin1', nameAt, end < 0 ? strings.length : end), value);
    }
    return { symbols, firstLoadVaddr };
  } finally {
    closeSync(fd);
  }
}
