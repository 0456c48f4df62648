import { fileURLToPath } from 'node:url';

import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const clientRoot = fileURLToPath(new URL('./client', import.meta.url));
const outDir = fileURLToPath(new URL('./dist/client', import.meta.url));

// Dev server only: where `vite dev` forwards socket.io traffic.
const coordinatorUrl = process.env.COORDINATOR_URL ?? 'http://localhost:3000';

export default defineConfig({
  root: clientRoot,
  base: '/',
  publicDir: false,
  plugins: [react()],
  worker: {
    // Module workers: lets the worker use dynamic import() for tfjs backends.
    format: 'es',
  },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // The tfjs wasm binaries are imported with `?url` in client/src/backend.ts
    // and must stay separate files (never inlined as data: URLs).
    assetsInlineLimit: (file) => (file.endsWith('.wasm') ? false : undefined),
    chunkSizeWarningLimit: 4096,
    rolldownOptions: {
      input: {
        index: fileURLToPath(new URL('./client/index.html', import.meta.url)),
        dashboard: fileURLToPath(new URL('./client/dashboard.html', import.meta.url)),
      },
    },
  },
  optimizeDeps: {
    // Pre-bundle the tfjs backends the worker imports lazily, so the first
    // `vite dev` page load does not trigger a re-optimise + full reload.
    include: [
      '@tensorflow/tfjs-core',
      '@tensorflow/tfjs-backend-webgpu',
      '@tensorflow/tfjs-backend-webgl',
      '@tensorflow/tfjs-backend-wasm',
      '@tensorflow/tfjs-backend-cpu',
    ],
  },
  server: {
    proxy: {
      '/socket.io': { target: coordinatorUrl, ws: true, changeOrigin: true },
    },
  },
});
