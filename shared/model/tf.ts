/**
 * The TensorFlow.js entry point used by all model code. Importing the union package registers
 * every op's gradient (and the cpu/webgl backends) both in Node, where tfjs-core resolves to its
 * CommonJS bundle, and in Vite bundles, where it resolves to ES modules; tfjs-core alone
 * registers no gradients.
 */
import '@tensorflow/tfjs';
export * from '@tensorflow/tfjs-core';
