/**
 * Backend selection as far as Node can take it: the probes run in the order asked for, each
 * skipped one says why in a volunteer's words, and the cpu backend (which Node has) is chosen and
 * passes the sanity matmul. WebGPU is faked through navigator.gpu; a real GPU is e2e/backend.spec.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { selectBackend } from './backend';

function withNavigator(nav: unknown): void {
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
}

const original = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
afterEach(() => {
  if (original) Object.defineProperty(globalThis, 'navigator', original);
  else delete (globalThis as { navigator?: unknown }).navigator;
});

async function webgpuReason(nav: unknown, allowFallbackAdapter = true): Promise<string | undefined> {
  withNavigator(nav);
  const sel = await selectBackend(['webgpu', 'cpu'], { allowFallbackAdapter });
  expect(sel.backend).toBe('cpu');
  return sel.skipped.find((s) => s.backend === 'webgpu')?.reason;
}

describe('selectBackend', () => {
  it('tries the backends in the order given, records why each was skipped, and ignores unknown names', async () => {
    withNavigator(undefined);
    const log: string[] = [];
    const sel = await selectBackend(['webgpu', 'webgl', 'nope', 'cpu'], { log: (line) => log.push(line) });
    expect(sel).toEqual({
      backend: 'cpu',
      adapterInfo: null,
      skipped: [
        { backend: 'webgpu', reason: 'navigator.gpu is missing (WebGPU needs a secure context and a supporting browser)' },
        { backend: 'webgl', reason: 'the tfjs webgl backend did not register' },
      ],
    });
    expect(log.filter((l) => l.startsWith('trying'))).toEqual(['trying tfjs backend webgpu', 'trying tfjs backend webgl', 'trying tfjs backend cpu']);
  });

  it('says why WebGPU was skipped: no adapter, a failing adapter request, a software adapter refused', async () => {
    expect(await webgpuReason({ gpu: { requestAdapter: async () => null } })).toMatch(/^no GPU adapter \(navigator\.gpu\.requestAdapter\(\) returned null/);
    const failing = { gpu: { requestAdapter: () => Promise.reject(new Error('driver crashed')) } };
    expect(await webgpuReason(failing)).toBe('requesting a GPU adapter failed: driver crashed');
    const software = { gpu: { requestAdapter: async () => ({ info: { vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader' } }) } };
    expect(await webgpuReason(software, false)).toBe(
      'only a software GPU adapter is available (google swiftshader SwiftShader (software / fallback adapter)); the wasm backend is usually faster',
    );
  });

  it('fails with every reason when no backend in the order works', async () => {
    withNavigator(undefined);
    await expect(selectBackend(['webgpu', 'bogus'])).rejects.toThrow(
      'No usable tfjs backend. webgpu: navigator.gpu is missing (WebGPU needs a secure context and a supporting browser) | unknown backend name(s): bogus',
    );
  });
});
