/**
 * Relay benchmark: how fast the coordinator moves activation-sized binary frames from one tab
 * to the next, next to a raw `ws` relay doing nothing but forwarding.
 *
 *   npm run bench:relay                 (64 KiB, 1 MiB, 8 MiB; ~2-3 minutes)
 *   npm run bench:relay -- --quick      (quarter of the messages)
 *   npm run bench:relay -- --sizes 1m   (subset: 64k, 1m, 8m)
 *   npm run bench:relay -- --verbose    (one line per phase on stderr)
 *   npm run bench:relay -- --wire int8  (frames in that wire encoding; default: the run default)
 *
 * Sizes name the float32 activation (64 KiB = batch 4 of the tiny preset); with --wire f16 / int8
 * the same activation travels as a smaller frame (the table prints the frame size) and the
 * coordinator checks it as a run with that encoding does (dtype, int8 scales / f16 finiteness).
 *
 * Two processes: the servers run in a child process (so they get their own core and event
 * loop), both clients of every pair run here (so one clock times a hop end to end).
 *
 * Paths measured, side by side, in alternating order:
 *   ws           raw `ws` server forwarding each binary message from client A to client B.
 *   sio-relay    the coordinator's relay path, replicated hop by hop on the real Coordinator's
 *                socket.io Server (same instance, so exactly its options: maxHttpBufferSize,
 *                ping, connectionStateRecovery, allowRequest), namespace /relay: per message
 *                the per-tab token bucket (socket.use), a guarded handler, the coordinator's own
 *                parseOutMessage and checkRelayFrame (coordinator/relay-check.ts), relayBytes metric, then
 *                nsp.to(B.id).emit('task', meta, frame, null) as the coordinator's taskSender does.
 *   sio-nocsr    the same handler on a socket.io Server with the same options *minus*
 *                connectionStateRecovery (what the session-recovery packet log costs).
 *   coordinator  a real Coordinator (2 stages, tiny preset, batch sized so one activation is the
 *                message size) driven by two fake volunteers that answer every task at once
 *                with a real tensor frame: activations A->B and gradients B->A go through
 *                attach() -> Scheduler.handleOut -> PipelinePass.onOut -> TaskBook.answer -> TaskBook.send. This path
 *                also carries the coordinator's own token/target frames (1/64 of an activation
 *                here), loss and barrier control messages and the two-phase barrier (grad_norm, step)
 *                every iteration.
 *
 * Every coordinator here runs with rateLimit lifted (BENCH_RATE_LIMIT): instant fake volunteers
 * would exceed the default 400 messages/s per tab at 64 KiB.
 *
 * Latency: one message in flight (window 1), p50/p99 of send at A -> 'task'/'message' at B.
 * Throughput: window 2 (the coordinator's pipeline depth with 2 stages: at most two
 * microbatches, hence two activation-sized frames, in flight); MB = 10^6 bytes of frame.
 * For `coordinator`, latency comes from a run with 1 microbatch per iteration (hops strictly
 * sequential) and throughput from a run with 16 microbatches per iteration.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { Server, type Namespace } from 'socket.io';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { TokenBucket } from '../coordinator/gateway/token-bucket.js';
import { DEFAULT_SETTINGS, modelConfigOf, wireOf, type RunSettings } from '../shared/run-settings.js';
import { encodeTensorFrame, FrameError, WIRE_DTYPES, WIRE_ENCODINGS, wireFrameBytes, type FrameKind, type WireEncoding } from '../shared/protocol/index.js';
import { MAX_SOCKET_BYTES, type TaskMeta } from '../shared/protocol/events.js';
import { checkRelayFrame, parseOutMessage } from '../coordinator/screening/relay-check.js';
import { flags, fmt, machine, median, percentile, table, sleep, fmtBytes, loadLine } from './util.js';
import { patched } from './paced-volunteer.js';

const PRESET = 'tiny';
const STAGES = 2;
const THR_MICROBATCHES = 16;
/** The relayed frames' encoding (--wire; the child process gets it in argv). */
const WIRE = wireFromArgv(process.argv);
const SETTINGS_BASE: RunSettings = { ...DEFAULT_SETTINGS, preset: PRESET, stages: STAGES, recovery: 'checkfree', wire: WIRE };
const CFG = modelConfigOf(SETTINGS_BASE);
/** Bytes of one sequence's activation: seqLen * dModel float32 (16 KiB for tiny). */
const SEQ_BYTES = CFG.seqLen * CFG.dModel * 4;

function wireFromArgv(argv: string[]): WireEncoding {
  const i = argv.findIndex((a) => a === '--wire' || a.startsWith('--wire='));
  const w = i < 0 ? wireOf(DEFAULT_SETTINGS) : argv[i]!.includes('=') ? argv[i]!.split('=')[1]! : argv[i + 1]!;
  if (!(WIRE_ENCODINGS as readonly string[]).includes(w)) throw new Error(`unknown --wire "${w}"; choose one of: ${WIRE_ENCODINGS.join(', ')}`);
  return w as WireEncoding;
}

interface SizeSpec {
  key: string;
  label: string;
  batch: number;
  lat: number;
  thr: number;
  warm: number;
}
const SIZES: SizeSpec[] = [
  { key: '64k', label: '64 KiB', batch: (64 * 1024) / SEQ_BYTES, lat: 600, thr: 1200, warm: 100 },
  { key: '1m', label: '1 MiB', batch: (1024 * 1024) / SEQ_BYTES, lat: 300, thr: 600, warm: 40 },
  { key: '8m', label: '8 MiB', batch: (8 * 1024 * 1024) / SEQ_BYTES, lat: 40, thr: 80, warm: 6 },
];
const ROUNDS = 6;
/**
 * The coordinator's per-tab flood control (rateLimit, default 400 messages/s, burst 800) would
 * reject a fake volunteer that answers instantly (hundreds of 64 KiB hops per second); a real tab
 * is compute-bound far below it. The bench lifts it to measure the relay itself; the token-bucket
 * check still runs on every message.
 */
const BENCH_RATE_LIMIT = 1_000_000;
const PHASE_TIMEOUT_S = 180;
const MODES = ['ws', 'sio-relay', 'sio-nocsr', 'coordinator'] as const;
type Mode = (typeof MODES)[number];

interface ServerUrls {
  ws: string;
  sizes: Record<string, { lat: string; thr: string; relay: string; nocsr: string }>;
}
type MemReport = { rss: number; arrayBuffers: number; retainedBytes: number; retainedPackets: number; rejected: number };

// ---------------------------------------------------------------------------------------------
// Server side (child process)
// ---------------------------------------------------------------------------------------------

function settingsFor(batch: number, microbatches: number): RunSettings {
  return { ...SETTINGS_BASE, batch, microbatches };
}

/** The coordinator's relay work for one result (attach + TaskBook.answer + send), then emit to B's room. */
function attachRelay(nsp: Namespace, coord: Coordinator, counters: { rejected: number }): void {
  const { batch } = coord.opts.settings;
  const T = coord.scheduler.opts.config.seqLen;
  const D = coord.scheduler.opts.config.dModel;
  const ids = new Map<string, string>();
  nsp.on('connection', (socket) => {
    const role = String((socket.handshake.auth as { role?: string }).role ?? '');
    ids.set(role, socket.id);
    const reject = (reason: string, message: string) => {
      counters.rejected++;
      coord.metrics.rejected.inc({ reason });
      socket.emit('rejected', { reason, message });
    };
    // As Coordinator.attach: a token bucket per tab, checked before any handler; handlers guarded.
    const bucket = new TokenBucket(coord.opts.rateLimit, 2 * coord.opts.rateLimit);
    socket.use((_packet, next) => {
      if (bucket.take()) return next();
      reject('rate_limit', 'too many messages');
    });
    const guard =
      <A extends unknown[]>(f: (...args: A) => void) =>
      (...args: A) => {
        try {
          f(...args);
        } catch (e) {
          reject('handler', (e as Error).message);
        }
      };
    socket.on('out', guard((meta: unknown, raw: unknown) => {
      const parsed = parseOutMessage(meta, raw);
      if (!parsed.ok) return reject(parsed.reason, parsed.message);
      const { meta: m, frame } = parsed;
      if (frame === null) return reject('schema', 'expected a frame');
      try {
        checkRelayFrame(frame, { kind: 'act', iteration: m.iteration, microbatch: m.mb, hop: m.hop, fromStage: 0, shape: [batch, T, D], wire: WIRE }, coord.scheduler.maxFrameBytes());
      } catch (e) {
        return reject(e instanceof FrameError ? e.reason : 'frame', (e as Error).message);
      }
      const task: TaskMeta = { attempt: m.attempt, iteration: m.iteration, mb: m.mb, dir: 'F', hop: m.hop + 1, stage: 1, segment: { embed: false, blocks: true, head: true } };
      coord.metrics.relayBytes.inc({ direction: 'forward' }, frame.byteLength);
      const to = ids.get('B');
      if (to) nsp.to(to).emit('task', task, frame, null);
    }));
    socket.onAny((event: string) => {
      if (event !== 'out') reject('unknown_event', event);
    });
  });
}

/** Bytes held by socket.io's connection-state-recovery packet log in every namespace of `io`. */
function retained(io: Server): { bytes: number; packets: number } {
  let bytes = 0;
  let packets = 0;
  const nsps = (io as unknown as { _nsps: Map<string, Namespace> })._nsps;
  for (const nsp of nsps.values()) {
    const log = (nsp.adapter as unknown as { packets?: { data: unknown[] }[] }).packets ?? [];
    packets += log.length;
    for (const p of log) for (const d of p.data) if (d instanceof Uint8Array) bytes += d.byteLength;
  }
  return { bytes, packets };
}

async function listenHttp(h: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((r) => h.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(h.address() as AddressInfo).port}`;
}

async function serverMain(keys: string[]): Promise<void> {
  const counters = { rejected: 0 };
  // Raw ws relay: forwards every binary message from A to B of the same pair.
  const wsHttp = createServer();
  const wss = new WebSocketServer({ server: wsHttp, maxPayload: MAX_SOCKET_BYTES });
  const peers = new Map<string, WebSocket>();
  wss.on('connection', (ws, req) => {
    const role = new URL(req.url ?? '/', 'http://x').searchParams.get('role') ?? '';
    peers.set(role, ws);
    if (role === 'A') ws.on('message', (data: RawData, isBinary: boolean) => peers.get('B')?.send(data as Buffer, { binary: isBinary }));
  });
  const wsUrl = (await listenHttp(wsHttp)).replace('http', 'ws');

  const coords: Coordinator[] = [];
  const extraServers: Server[] = [];
  const sizes: ServerUrls['sizes'] = {};
  for (const key of keys) {
    const spec = SIZES.find((s) => s.key === key)!;
    const mk = (microbatches: number) =>
      new Coordinator({
        ...DEFAULT_COORDINATOR,
        settings: settingsFor(spec.batch, microbatches),
        port: 0,
        silent: true,
        evalEvery: 0,
        rateLimit: BENCH_RATE_LIMIT,
        connectionRate: 1e6, // every client of the benchmark connects from 127.0.0.1
        // The fake volunteers hold step acks between phases (that is how the bench pauses a run).
        stepTimeoutMs: 3_600_000,
        clientDir: '/nonexistent',
      });
    const lat = mk(1);
    const thr = mk(THR_MICROBATCHES);
    coords.push(lat, thr);
    const latUrl = await lat.listen();
    const thrUrl = await thr.listen();
    attachRelay(thr.io.of('/relay'), thr, counters);
    // Same options, minus connectionStateRecovery (and its session-aware adapter), and minus the
    // coordinator's Host check (it admits only the coordinator's own port, not this server's).
    const { connectionStateRecovery: _csr, adapter: _adapter, allowRequest: _allow, ...rest } = (thr.io as unknown as { _opts: Record<string, unknown> })._opts;
    const h = createServer();
    const plain = new Server(h, rest);
    extraServers.push(plain);
    attachRelay(plain.of('/relay'), thr, counters);
    const plainUrl = await listenHttp(h);
    sizes[key] = { lat: latUrl, thr: thrUrl, relay: `${thrUrl}/relay`, nocsr: `${plainUrl}/relay` };
  }
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'mem') {
      let bytes = 0;
      let packets = 0;
      for (const io of [...coords.map((c) => c.io), ...extraServers]) {
        const r = retained(io as unknown as Server);
        bytes += r.bytes;
        packets += r.packets;
      }
      const m = process.memoryUsage();
      const rep: MemReport = { rss: m.rss, arrayBuffers: m.arrayBuffers, retainedBytes: bytes, retainedPackets: packets, rejected: counters.rejected };
      process.send!({ type: 'mem', ...rep });
    } else if (msg.type === 'stop') {
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0)); // the bench process is gone
  process.send!({ type: 'ready', urls: { ws: wsUrl, sizes } satisfies ServerUrls });
}

// ---------------------------------------------------------------------------------------------
// Client side (this process)
// ---------------------------------------------------------------------------------------------

interface PhaseResult {
  lat: number[];
  bytes: number;
  seconds: number;
  messages: number;
}

/** A frame template of `batch` sequences in the run encoding; `patched` clones it with a task's header fields. */
function template(batch: number, kind: FrameKind): Uint8Array {
  const data = new Float32Array(batch * CFG.seqLen * CFG.dModel);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  return encodeTensorFrame({ kind, iteration: 0, microbatch: 0, hop: 0, fromStage: 0, toStage: -1, dtype: WIRE_DTYPES[WIRE], shape: [batch, CFG.seqLen, CFG.dModel] }, data);
}

/** A sender A and a receiver B; `send(i)` delivers message i, `onRecv(i)` fires at B. */
interface Pair {
  send(i: number, frame: Uint8Array): void;
  onRecv: (i: number) => void;
  rejected: number;
  close(): void;
}

async function wsPair(url: string): Promise<Pair> {
  const open = (role: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`${url}/?role=${role}`, { maxPayload: MAX_SOCKET_BYTES });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  const b = await open('B');
  const a = await open('A');
  const pair: Pair = {
    send: (_i, frame) => a.send(frame, { binary: true }),
    onRecv: () => {},
    rejected: 0,
    close: () => {
      a.close();
      b.close();
    },
  };
  b.on('message', (data: RawData) => {
    const buf = data as Buffer;
    pair.onRecv(buf.readUInt32LE(8));
  });
  return pair;
}

async function sioPair(url: string): Promise<Pair> {
  const open = (role: string) =>
    new Promise<ClientSocket>((resolve, reject) => {
      const s = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { role } });
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    });
  const b = await open('B');
  const a = await open('A');
  const pair: Pair = {
    send: (i, frame) => a.emit('out', { attempt: 1, iteration: i, mb: 0, dir: 'F', hop: 0, computeMs: 0 }, frame),
    onRecv: () => {},
    rejected: 0,
    close: () => {
      a.close();
      b.close();
    },
  };
  for (const s of [a, b]) s.on('rejected', () => void pair.rejected++);
  b.on('task', (meta: TaskMeta) => pair.onRecv(meta.iteration));
  return pair;
}

/** n messages, at most `window` in flight; latency per message, throughput over the phase. */
function drive(pair: Pair, n: number, window: number, t: Uint8Array): Promise<PhaseResult> {
  return new Promise((resolve) => {
    const sentAt = new Float64Array(n);
    const lat: number[] = [];
    let sent = 0;
    let recv = 0;
    const t0 = performance.now();
    const sendOne = () => {
      const i = sent++;
      const frame = patched(t, i, 0, 0, 0); // built before the clock starts, as the fake volunteers do
      sentAt[i] = performance.now();
      pair.send(i, frame);
    };
    pair.onRecv = (i) => {
      lat.push(performance.now() - sentAt[i]!);
      if (++recv === n) resolve({ lat, bytes: n * t.byteLength, seconds: (performance.now() - t0) / 1000, messages: n });
      else if (sent < n) sendOne();
    };
    while (sent < Math.min(window, n)) sendOne();
  });
}

/**
 * Two fake volunteers for a real Coordinator. They answer every task at once (real tensor frames
 * with correct headers) and hold the step acks of the iteration that ends a phase: that pauses
 * the coordinator at its barrier until the next phase releases it.
 */
class FakeSwarm {
  private socks: ClientSocket[] = [];
  private stageOf = new Map<ClientSocket, number>();
  private held = new Map<number, (() => void)[]>();
  private stopAt = 0;
  private heldIteration = -1;
  private onStop: (() => void) | null = null;
  private sentAt = new Map<string, number>();
  private lat: number[] = [];
  private bytes = 0;
  private messages = 0;
  rejected = 0;

  constructor(private act: Uint8Array, private grad: Uint8Array) {}

  async connect(url: string): Promise<void> {
    const stopped = new Promise<void>((r) => (this.onStop = r));
    for (let i = 0; i < STAGES; i++) {
      const s = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
      this.socks.push(s);
      s.on('assign', (a: { stage: number | null }, ack: (r: unknown) => void) => {
        if (a.stage !== null) this.stageOf.set(s, a.stage);
        ack({ ok: true });
      });
      s.on('rejected', (r: unknown) => {
        this.rejected++;
        console.error('rejected by the coordinator:', r);
      });
      s.on('task', (meta: TaskMeta, input: Uint8Array | null) => this.task(s, meta, input));
      // Barrier phase 1 (gradient norms, screened for outliers): answered at once, always the same norm.
      s.on('grad_norm', (info: { iteration: number }, ack: (r: unknown) => void) => ack({ iteration: info.iteration, preClipNorm: 1 }));
      s.on('step', (info: { iteration: number }, ack: (r: unknown) => void) => {
        const list = this.held.get(info.iteration) ?? [];
        list.push(() => ack({ iteration: info.iteration, preClipNorm: 1, postClipNorm: 1, stepMs: 0 }));
        this.held.set(info.iteration, list);
        if (list.length < STAGES) return;
        if (info.iteration < this.stopAt) this.release(info.iteration);
        else {
          this.heldIteration = info.iteration;
          this.onStop?.();
        }
      });
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.emit('hello', { backend: 'wasm', adapter: null, throughputGflops: 1, agent: 'bench/fake' }, () => {});
    }
    await stopped; // iteration 0 ran and is held at its barrier
  }

  private release(iteration: number): void {
    for (const f of this.held.get(iteration) ?? []) f();
    this.held.delete(iteration);
  }

  private task(s: ClientSocket, meta: TaskMeta, input: Uint8Array | null): void {
    const now = performance.now();
    const key = `${meta.attempt}:${meta.mb}:${meta.dir}:${meta.hop}`;
    const sent = this.sentAt.get(key);
    if (sent !== undefined && input) {
      this.lat.push(now - sent);
      this.bytes += input.byteLength;
      this.messages++;
      this.sentAt.delete(key);
    }
    const stage = this.stageOf.get(s)!;
    const out: Record<string, unknown> = { attempt: meta.attempt, iteration: meta.iteration, mb: meta.mb, dir: meta.dir, hop: meta.hop, computeMs: 0 };
    let frame: Uint8Array | null = null;
    if (meta.dir !== 'B') {
      if (meta.segment.head) out.loss = 5;
      else {
        frame = patched(this.act, meta.iteration, meta.mb, meta.hop, stage);
        this.sentAt.set(`${meta.attempt}:${meta.mb}:${meta.dir}:${meta.hop + 1}`, performance.now());
      }
    } else if (!meta.segment.embed) {
      frame = patched(this.grad, meta.iteration, meta.mb, meta.hop, stage);
      this.sentAt.set(`${meta.attempt}:${meta.mb}:B:${meta.hop - 1}`, performance.now());
    }
    s.emit('out', out, frame);
  }

  /** Runs `iterations` more iterations and returns the relayed activation/gradient hops. */
  async phase(iterations: number): Promise<PhaseResult> {
    this.lat = [];
    this.bytes = 0;
    this.messages = 0;
    this.sentAt.clear();
    const stopped = new Promise<void>((r) => (this.onStop = r));
    this.stopAt = this.heldIteration + iterations;
    const t0 = performance.now();
    this.release(this.heldIteration);
    await stopped;
    return { lat: this.lat, bytes: this.bytes, seconds: (performance.now() - t0) / 1000, messages: this.messages };
  }

  close(): void {
    for (const s of this.socks) s.close();
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

interface Acc {
  lat: number[];
  /** MB/s of each round's throughput phase (for per-round ratios to ws, adjacent in time). */
  roundMBs: number[];
  bytes: number;
  seconds: number;
  latN: number;
  thrN: number;
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), { quick: 'boolean', verbose: 'boolean', sizes: 'string', server: 'string', wire: 'string' });
  const verbose = f.verbose === true;
  if (typeof f.server === 'string') return serverMain(f.server.split(','));
  const scale = f.quick ? 0.25 : 1;
  const keys = typeof f.sizes === 'string' ? f.sizes.split(',') : SIZES.map((s) => s.key);
  for (const k of keys) if (!SIZES.some((s) => s.key === k)) throw new Error(`unknown size ${k}; choose from ${SIZES.map((s) => s.key).join(',')}`);

  console.log(`relay benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(`model ${PRESET}: seqLen ${CFG.seqLen}, dModel ${CFG.dModel}; ${STAGES} stages; activation = batch x ${fmtBytes(SEQ_BYTES)}`);

  console.log(
    `wire ${WIRE}: frames of ${keys.map((k) => SIZES.find((s) => s.key === k)!).map((s) => `${s.label} f32 -> ${fmtBytes(wireFrameBytes([s.batch, CFG.seqLen, CFG.dModel], WIRE))}`).join(', ')}; MB/s counts frame bytes`,
  );
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--server', keys.join(','), '--wire', WIRE], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const fromChild = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`server process exited (${code})`));
      const on = (m: { type: string } & T) => {
        if (m.type !== type) return;
        child.off('message', on);
        child.off('exit', onExit);
        resolve(m);
      };
      child.on('message', on);
      child.once('exit', onExit);
    });
  const { urls } = await fromChild<{ urls: ServerUrls }>('ready');
  const mem = async () => {
    const p = fromChild<MemReport>('mem');
    child.send({ type: 'mem' });
    return p;
  };

  // checkRelayFrame alone: the coordinator's validation of one relayed frame (reads it in place, scans it for finiteness).
  const decodeRows: string[][] = [];
  for (const key of keys) {
    const spec = SIZES.find((s) => s.key === key)!;
    const t = template(spec.batch, 'act');
    const want = { kind: 'act' as const, iteration: 0, microbatch: 0, hop: 0, fromStage: 0, shape: [spec.batch, CFG.seqLen, CFG.dModel], wire: WIRE };
    const check = () => checkRelayFrame(t, want, t.byteLength + 64);
    const reps = Math.max(5, Math.round((200 * 1024 * 1024) / t.byteLength));
    for (let i = 0; i < 3; i++) check();
    let t0 = performance.now();
    for (let i = 0; i < reps; i++) check();
    const dec = (performance.now() - t0) / reps;
    t0 = performance.now();
    for (let i = 0; i < reps; i++) t.slice();
    const cp = (performance.now() - t0) / reps;
    decodeRows.push([spec.label, fmt(dec, 3), fmt(t.byteLength / dec / 1e3, 0), fmt(cp, 3)]);
  }

  const results = new Map<string, Acc>();
  const memRows: string[][] = [];
  let rejected = 0;
  for (const key of keys) {
    const spec = SIZES.find((s) => s.key === key)!;
    const u = urls.sizes[key]!;
    const act = template(spec.batch, 'act');
    const grad = template(spec.batch, 'grad');
    const ws = await wsPair(urls.ws);
    const relay = await sioPair(u.relay);
    const nocsr = await sioPair(u.nocsr);
    const coordLat = new FakeSwarm(act, grad);
    const coordThr = new FakeSwarm(act, grad);
    await withTimeout(coordLat.connect(u.lat), 60_000, 'fake volunteers joining the latency coordinator (protocol changed?)');
    await withTimeout(coordThr.connect(u.thr), 60_000, 'fake volunteers joining the throughput coordinator (protocol changed?)');
    const pairs: Record<Exclude<Mode, 'coordinator'>, Pair> = { ws, 'sio-relay': relay, 'sio-nocsr': nocsr };
    const latN = Math.max(4, Math.round((spec.lat * scale) / ROUNDS));
    const thrN = Math.max(4, Math.round((spec.thr * scale) / ROUNDS));
    const warmN = Math.max(2, Math.round(spec.warm * scale));
    const run = async (mode: Mode, kind: 'lat' | 'thr', n: number): Promise<PhaseResult> => {
      const t0 = performance.now();
      const p =
        mode !== 'coordinator'
          ? drive(pairs[mode], n, kind === 'lat' ? 1 : 2, act)
          : kind === 'lat'
            ? coordLat.phase(Math.max(1, Math.round(n / 2)))
            : coordThr.phase(Math.max(1, Math.ceil(n / (2 * THR_MICROBATCHES))));
      try {
        return await withTimeout(p, PHASE_TIMEOUT_S * 1000, `${spec.label} ${mode} ${kind} (${n} messages)`);
      } finally {
        if (verbose) process.stderr.write(`  ${spec.label} ${mode} ${kind} n=${n}: ${fmt((performance.now() - t0) / 1000, 2)} s\n`);
      }
    };
    for (const mode of MODES) {
      await run(mode, 'lat', warmN);
      await run(mode, 'thr', warmN);
    }
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [...MODES] : [...MODES].reverse();
      for (const mode of order) {
        const id = `${key}/${mode}`;
        const acc = results.get(id) ?? { lat: [], roundMBs: [], bytes: 0, seconds: 0, latN: 0, thrN: 0 };
        const l = await run(mode, 'lat', latN);
        acc.lat.push(...l.lat);
        acc.latN += l.messages;
        const t = await run(mode, 'thr', thrN);
        acc.bytes += t.bytes;
        acc.seconds += t.seconds;
        acc.thrN += t.messages;
        acc.roundMBs.push(t.bytes / t.seconds / 1e6);
        results.set(id, acc);
      }
    }
    const m = await mem();
    memRows.push([spec.label, fmt(m.rss / 2 ** 20, 0), fmt(m.arrayBuffers / 2 ** 20, 0), String(m.retainedPackets), fmt(m.retainedBytes / 2 ** 20, 0)]);
    rejected += ws.rejected + relay.rejected + nocsr.rejected + coordLat.rejected + coordThr.rejected + m.rejected;
    for (const p of Object.values(pairs)) p.close();
    coordLat.close();
    coordThr.close();
  }

  const rows: string[][] = [];
  const ratios: Record<string, Record<string, number>> = {};
  for (const key of keys) {
    const spec = SIZES.find((s) => s.key === key)!;
    const base = results.get(`${key}/ws`)!;
    const baseP50 = percentile(base.lat, 50);
    for (const mode of MODES) {
      const a = results.get(`${key}/${mode}`)!;
      const mbs = a.bytes / a.seconds / 1e6;
      const p50 = percentile(a.lat, 50);
      // Ratio per round (each mode's phase sits next to the ws phase of the same round), then the
      // median: robust to other load on the machine drifting during the run.
      const perRound = a.roundMBs.map((x, r) => x / base.roundMBs[r]!);
      const ratio = median(perRound);
      (ratios[key] ??= {})[mode] = ratio;
      rows.push([
        mode === 'ws' ? spec.label : '',
        mode,
        fmt(mbs, 0),
        fmt(ratio, 2),
        `${fmt(Math.min(...perRound), 2)}-${fmt(Math.max(...perRound), 2)}`,
        fmt(p50, 3),
        fmt(percentile(a.lat, 99), 3),
        fmt(p50 / baseP50, 2),
        `${a.latN}/${a.thrN}`,
      ]);
    }
  }
  console.log('\nhop = client A sends -> client B receives, through the server process');
  console.log(table(['size', 'path', 'MB/s', 'x ws', 'x ws range', 'p50 ms', 'p99 ms', 'p50 x ws', 'msgs lat/thr'], rows));
  console.log(`MB/s pooled over ${ROUNDS} rounds; 'x ws' = median over rounds of (this path's MB/s / ws MB/s in the same round), range = min-max`);
  console.log('\ncheckRelayFrame per message (the coordinator\'s validation of a relayed frame: in place, finiteness scan), and a plain copy for scale:');
  console.log(table(['size', 'check ms', 'check MB/s', 'slice() ms'], decodeRows));
  console.log('\nserver process after each size (retained = frames held by socket.io connection-state-recovery packet logs):');
  console.log(table(['after size', 'rss MiB', 'arrayBuffers MiB', 'retained packets', 'retained MiB'], memRows));
  if (rejected) console.log(`\nWARNING: ${rejected} message(s) rejected: the figures are not valid`);
  if (ratios['1m']) {
    for (const mode of ['sio-relay', 'coordinator'] as const) {
      const r = ratios['1m'][mode]!;
      console.log(`target: ${mode} throughput >= 0.8 x raw ws at 1 MiB: ${fmt(r, 2)} -> ${r >= 0.8 ? 'met' : 'NOT met'}`);
    }
  }
  console.log(`end: ${loadLine()}`);
  child.send({ type: 'stop' });
  await sleep(100);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1); // the server child exits with us (IPC channel closed)
});
