export * from './config.js';
export * from './params.js';
export * from './stage.js';
export * from './rng.js';
export { ADAM_BETA1, ADAM_BETA2, ADAM_EPS } from './adam.js';
