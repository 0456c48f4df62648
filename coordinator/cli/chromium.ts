import type { LaunchOptions } from '@playwright/test';

/**
 * Launch options for the system (Debian) Chromium instead of a Playwright-
 * downloaded browser. WebGPU runs on SwiftShader (software Vulkan) there.
 *
 * Notes on the flags (checked with Chromium 150 + Playwright 1.65):
 * - --enable-unsafe-webgpu is the one that matters: without it
 *   navigator.gpu exists but requestAdapter() returns null on Linux.
 * - --use-webgpu-adapter=swiftshader pins the adapter to SwiftShader so runs
 *   are deterministic on machines that also have a real GPU.
 * - Do NOT add --enable-features=...: Playwright passes its own
 *   --enable-features list and Chromium keeps only the last occurrence.
 *   (Vulkan is not needed for SwiftShader WebGPU.)
 * - Playwright itself already adds --headless (new headless is the only
 *   one in Chromium >= 132), --no-sandbox (needed as root),
 *   --disable-dev-shm-usage and --enable-unsafe-swiftshader.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export function chromiumExecutablePath(): string {
  return process.env.CHROMIUM_PATH || '/usr/bin/chromium';
}

export function chromiumLaunchOptions(extraArgs: readonly string[] = []): LaunchOptions {
  return {
    executablePath: chromiumExecutablePath(),
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  };
}
