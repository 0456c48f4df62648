/**
 * Backend choice for Node processes (local trainer, simulated volunteers, tests). tfjs's `cpu`
 * backend is plain JavaScript; `wasm` (XNNPACK, SIMD) runs the same maths on the same CPU 5-14x faster here (see `npm run bench:backends`), so it is the default. tfjs-node is not used:
 * its install downloads a native library.
 */
import * as tf from '../shared/model/tf.js';
import '@tensorflow/tfjs-backend-wasm';

export const NODE_BACKENDS = ['wasm', 'cpu'] as const;
export type NodeBackend = (typeof NODE_BACKENDS)[number];

export async function useNodeBackend(name: string = 'wasm'): Promise<NodeBackend> {
  if (!(NODE_BACKENDS as readonly string[]).includes(name)) {
    throw new Error(`unknown backend "${name}"; in Node choose one of: ${NODE_BACKENDS.join(', ')}`);
  }
  // Production mode: no debug checks, and no "install tfjs-node" banner (deliberately unused).
  tf.enableProdMode();
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend "${name}" failed to initialise`);
  await tf.ready();
  return name as NodeBackend;
}
