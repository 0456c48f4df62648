/**
 * tfjs backend selection for the volunteer Web Worker.
 *
 * Tries backends fastest-first (webgpu, webgl, wasm, cpu). For each one it
 * checks the browser prerequisites itself first so that the reason a faster
 * backend was skipped is something a volunteer can understand, then registers
 * the backend (dynamic import, so unused backends are never downloaded),
 * calls tf.setBackend + tf.ready and runs a small sanity matmul.
 */
import * as tf from '@tensorflow/tfjs-core';

import {
  DEFAULT_BACKEND_ORDER,
  isBackendName,
  type AdapterSummary,
  type BackendName,
  type SkippedBackend,
} from './messages';

// The wasm binaries are emitted as hashed assets by Vite (`?url`), so they
// are part of the build output and the wasm fallback works offline.
import wasmUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';

export interface BackendSelection {
  backend: BackendName;
  /** Only for webgpu. */
  adapterInfo: AdapterSummary | null;
  /** Backends before the chosen one (in preference order) that were not usable. */
  skipped: SkippedBackend[];
}

export interface SelectBackendOptions {
  /** Per-backend time limit for initialisation + sanity check. */
  timeoutMs?: number;
  log?: (message: string) => void;
  /**
   * Accept a software/fallback WebGPU adapter (e.g. SwiftShader). Default true.
   * On real machines such an adapter is usually much slower than the wasm
   * backend; set false to skip it (headless CI needs it though).
   */
  allowFallbackAdapter?: boolean;
}

/** Minimal structural WebGPU types (we do not depend on @webgpu/types). */
interface GpuAdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface GpuAdapterLike {
  info?: GpuAdapterInfoLike;
  isFallbackAdapter?: boolean;
  requestAdapterInfo?: () => Promise<GpuAdapterInfoLike>;
}
interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'low-power' | 'high-performance' }): Promise<GpuAdapterLike | null>;
}

class SkipBackend extends Error {}

function gpuFromNavigator(): GpuLike | undefined {
  const nav = (globalThis as { navigator?: unknown }).navigator as { gpu?: GpuLike } | undefined;
  return nav?.gpu;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new SkipBackend(`${what} timed out after ${Math.round(ms / 1000)} s`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(errorText(e)));
      },
    );
  });
}

export function summarizeAdapterInfo(info: GpuAdapterInfoLike | undefined, adapterFallback?: boolean): AdapterSummary {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const fallbackFlag = info?.isFallbackAdapter ?? adapterFallback;
  const isFallbackAdapter =
    fallbackFlag ?? (/swiftshader|llvmpipe|software|warp/i.test(`${vendor} ${architecture} ${description}`) ? true : null);
  const parts = [vendor, architecture, description || device].filter((p) => p.length > 0);
  const label = `${parts.length > 0 ? parts.join(' ') : 'unknown GPU'}${isFallbackAdapter ? ' (software / fallback adapter)' : ''}`;
  return { vendor, architecture, description, device, isFallbackAdapter, label };
}

/** Run tf.setBackend, turning tfjs' console warnings on failure into an error message. */
async function setBackendOrExplain(name: BackendName, timeoutMs: number): Promise<void> {
  const captured: string[] = [];
  const originalWarn = console.warn;
  console.warn = (...args: unknown[]) => {
    captured.push(args.map((a) => errorText(a)).join(' '));
    originalWarn.apply(console, args);
  };
  let ok: boolean;
  try {
    ok = await withTimeout(tf.setBackend(name), timeoutMs, `initialising the ${name} backend`);
  } finally {
    console.warn = originalWarn;
  }
  if (!ok) {
    const detail = captured
      .filter((line) => !/^Initialization of backend .* failed$/.test(line))
      .map((line) => line.split('\n')[0])
      .join('; ');
    throw new SkipBackend(`tfjs could not initialise the ${name} backend${detail ? `: ${detail}` : ''}`);
  }
  await withTimeout(tf.ready(), timeoutMs, `waiting for the ${name} backend`);
  if (tf.getBackend() !== name) {
    throw new SkipBackend(`tfjs reports backend "${tf.getBackend()}" after selecting ${name}`);
  }
}

/**
 * A matmul big enough (32x32 = 1024 elements) that the webgpu backend does not
 * hand it off to the CPU (WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD is 1000 in tfjs 4.22),
 * checked against a plain JS reference.
 */
async function sanityCheck(name: BackendName, timeoutMs: number): Promise<void> {
  const n = 32;
  const a = new Float32Array(n * n);
  const b = new Float32Array(n * n);
  for (let i = 0; i < n * n; i++) {
    a[i] = ((i * 7) % 13) / 13 - 0.5;
    b[i] = ((i * 5) % 11) / 11 - 0.5;
  }
  const expected = new Float32Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += a[r * n + k] * b[k * n + c];
      expected[r * n + c] = s;
    }
  }
  const out = tf.tidy(() => tf.add(tf.relu(tf.matMul(tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n]))), tf.scalar(1)));
  let got: Float32Array;
  try {
    got = (await withTimeout(out.data(), timeoutMs, `the ${name} sanity check`)) as Float32Array;
  } finally {
    out.dispose();
  }
  for (let i = 0; i < n * n; i++) {
    const want = Math.max(0, expected[i]) + 1;
    if (!Number.isFinite(got[i]) || Math.abs(got[i] - want) > 1e-2) {
      throw new SkipBackend(
        `the ${name} backend computed a wrong result in the sanity check (element ${i}: got ${got[i]}, expected ${want.toFixed(4)})`,
      );
    }
  }
}

/** What it takes to use one backend. */
interface BackendProbe {
  /**
   * Check the browser prerequisites (a SkipBackend says, in words a volunteer understands, why
   * not) and register the backend with tfjs (a dynamic import: an unused backend is never
   * downloaded). Returns the adapter info where there is one (webgpu).
   */
  prepare(allowFallbackAdapter: boolean): Promise<AdapterSummary | null>;
  /** Once tfjs runs on it: the adapter info to report, from what `prepare` returned. */
  describe?(prepared: AdapterSummary | null): AdapterSummary | null;
}

const webgpu: BackendProbe = {
  async prepare(allowFallbackAdapter) {
    const gpu = gpuFromNavigator();
    if (!gpu) {
      const secure = (globalThis as { isSecureContext?: boolean }).isSecureContext;
      throw new SkipBackend(
        secure === false
          ? 'navigator.gpu is missing: this page is not a secure context (WebGPU needs https:// or http://localhost)'
          : 'navigator.gpu is missing (WebGPU needs a secure context and a supporting browser)',
      );
    }
    let adapter: GpuAdapterLike | null;
    try {
      adapter = await withTimeout(gpu.requestAdapter({ powerPreference: 'high-performance' }), 15_000, 'navigator.gpu.requestAdapter()');
    } catch (err) {
      if (err instanceof SkipBackend) throw err;
      throw new SkipBackend(`requesting a GPU adapter failed: ${errorText(err)}`);
    }
    if (!adapter) {
      throw new SkipBackend(
        'no GPU adapter (navigator.gpu.requestAdapter() returned null: the GPU is blocklisted, WebGPU is disabled, or no supported driver was found)',
      );
    }
    let info = adapter.info;
    if (!info && typeof adapter.requestAdapterInfo === 'function') {
      try {
        info = await adapter.requestAdapterInfo();
      } catch {
        info = undefined;
      }
    }
    const summary = summarizeAdapterInfo(info, adapter.isFallbackAdapter);
    if (!allowFallbackAdapter && summary.isFallbackAdapter) {
      throw new SkipBackend(`only a software GPU adapter is available (${summary.label}); the wasm backend is usually faster`);
    }
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!tf.findBackendFactory('webgpu')) {
      throw new SkipBackend('the tfjs webgpu backend did not register (navigator.gpu not visible to tfjs)');
    }
    return summary;
  },
  describe(prepared) {
    // Prefer the info of the device tfjs actually opened (GPUDevice.adapterInfo, Chrome 132+).
    const device = (tf.backend() as unknown as { device?: { adapterInfo?: GpuAdapterInfoLike } }).device;
    return device?.adapterInfo ? summarizeAdapterInfo(device.adapterInfo, prepared?.isFallbackAdapter ?? undefined) : prepared;
  },
};

const webgl: BackendProbe = {
  async prepare() {
    const isWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';
    if (isWorker && typeof OffscreenCanvas === 'undefined') {
      throw new SkipBackend('WebGL2 unavailable in workers (OffscreenCanvas missing)');
    }
    if (typeof OffscreenCanvas !== 'undefined') {
      const strict = new OffscreenCanvas(1, 1).getContext('webgl2', { failIfMajorPerformanceCaveat: true });
      if (!strict) {
        const lax = new OffscreenCanvas(1, 1).getContext('webgl2');
        throw new SkipBackend(
          lax
            ? 'WebGL2 is only available through software rendering (major performance caveat)'
            : 'WebGL2 context could not be created (GPU blocklisted, WebGL disabled, or unsupported)',
        );
      }
    }
    await import('@tensorflow/tfjs-backend-webgl');
    if (!tf.findBackendFactory('webgl')) {
      throw new SkipBackend('the tfjs webgl backend did not register');
    }
    return null;
  },
};

let wasmPathsSet = false;

const wasm: BackendProbe = {
  async prepare() {
    if (typeof WebAssembly !== 'object') {
      throw new SkipBackend('WebAssembly is not available in this browser');
    }
    const backend = await import('@tensorflow/tfjs-backend-wasm');
    if (!wasmPathsSet) {
      // usePlatformFetch=true: fetch the binary ourselves. Emscripten's own
      // loader does not recognise ES-module workers (no importScripts) and
      // has no fallback if streaming compilation fails.
      backend.setWasmPaths(
        {
          'tfjs-backend-wasm.wasm': absolute(wasmUrl),
          'tfjs-backend-wasm-simd.wasm': absolute(wasmSimdUrl),
          'tfjs-backend-wasm-threaded-simd.wasm': absolute(wasmThreadedSimdUrl),
        },
        true,
      );
      wasmPathsSet = true;
    }
    return null;
  },
};

const cpu: BackendProbe = {
  async prepare() {
    await import('@tensorflow/tfjs-backend-cpu');
    return null;
  },
};

/** Every backend's probe; `selectBackend` tries them in the order it is given (fastest first by default). */
const PROBES: Record<BackendName, BackendProbe> = { webgpu, webgl, wasm, cpu };

function absolute(url: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  return base ? new URL(url, base).href : url;
}

async function tryBackend(name: BackendName, timeoutMs: number, allowFallbackAdapter: boolean): Promise<AdapterSummary | null> {
  const probe = PROBES[name];
  const info = await probe.prepare(allowFallbackAdapter);
  try {
    await setBackendOrExplain(name, timeoutMs);
    await sanityCheck(name, timeoutMs);
  } catch (err) {
    // Free whatever the half-initialised backend holds (GPU device, wasm memory).
    try {
      if (tf.findBackend(name)) tf.removeBackend(name);
    } catch {
      /* ignore */
    }
    throw err;
  }
  return probe.describe ? probe.describe(info) : info;
}

/**
 * Select the fastest working tfjs backend, in `order`.
 * Throws only if none works (the error message lists every reason).
 */
export async function selectBackend(
  order: readonly string[] = DEFAULT_BACKEND_ORDER,
  options: SelectBackendOptions = {},
): Promise<BackendSelection> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const skipped: SkippedBackend[] = [];
  const unknown: string[] = [];
  for (const candidate of order) {
    if (!isBackendName(candidate)) {
      unknown.push(candidate);
      continue;
    }
    try {
      options.log?.(`trying tfjs backend ${candidate}`);
      const adapterInfo = await tryBackend(candidate, timeoutMs, options.allowFallbackAdapter ?? true);
      options.log?.(`using tfjs backend ${candidate}`);
      return { backend: candidate, adapterInfo, skipped };
    } catch (err) {
      const reason = err instanceof SkipBackend ? err.message : `unexpected error: ${errorText(err)}`;
      options.log?.(`skipping ${candidate}: ${reason}`);
      skipped.push({ backend: candidate, reason });
    }
  }
  const details = skipped.map((s) => `${s.backend}: ${s.reason}`);
  if (unknown.length > 0) details.push(`unknown backend name(s): ${unknown.join(', ')}`);
  throw new Error(`No usable tfjs backend. ${details.join(' | ')}`);
}

/**
 * Short matmul benchmark on the current backend: `size`x`size` float32
 * matmuls, `reps` timed after `warmup` untimed ones. Returns GFLOP/s
 * (2*n^3 flops per matmul). The timed matmuls are queued back to back and
 * only the last result is read back, so readback latency is paid once.
 */
export async function measureThroughput(size = 128, reps = 5, warmup = 2): Promise<number> {
  const a = tf.randomUniform([size, size], -1, 1, 'float32', 1);
  const b = tf.randomUniform([size, size], -1, 1, 'float32', 2);
  try {
    for (let i = 0; i < warmup; i++) {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    }
    const outs: tf.Tensor[] = [];
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) outs.push(tf.matMul(a, b));
    await outs[outs.length - 1].data();
    const seconds = (performance.now() - t0) / 1000;
    outs.forEach((t) => t.dispose());
    const flops = 2 * size ** 3 * reps;
    return flops / Math.max(seconds, 1e-9) / 1e9;
  } finally {
    a.dispose();
    b.dispose();
  }
}

/**
 * What the active backend can hold, for the coordinator's placement (shared/model/memory.ts
 * fitsDevice): WebGPU's buffer limits from the device tfjs opened; for the other backends the
 * browser's `navigator.deviceMemory` (GiB, rounded and capped by the browser) halved for the page
 * and everything else. Absent fields are unknown (the coordinator then does not check them).
 */
export function deviceLimits(backend: BackendName): { maxBufferSize?: number; maxStorageBufferBindingSize?: number; memoryBytes?: number } {
  const whole = (x: unknown) => (typeof x === 'number' && Number.isSafeInteger(x) && x > 0 ? x : undefined);
  if (backend === 'webgpu') {
    const limits = (tf.backend() as unknown as { device?: { limits?: { maxBufferSize?: number; maxStorageBufferBindingSize?: number } } }).device?.limits;
    return { maxBufferSize: whole(limits?.maxBufferSize), maxStorageBufferBindingSize: whole(limits?.maxStorageBufferBindingSize) };
  }
  const gib = typeof navigator !== 'undefined' ? (navigator as unknown as { deviceMemory?: number }).deviceMemory : undefined;
  return { memoryBytes: typeof gib === 'number' && gib > 0 ? whole(Math.floor((gib * 2 ** 30) / 2)) : undefined };
}
