/** Binary wire formats: tensor frames, named-tensor bundles, and their errors. */
export * from './frame-error';
export * from './finite';
export * from './shape';
export { DEFAULT_MAX_BYTES } from './bytes';
export * from './codec';
export * from './quantize';
export * from './wire-encoding';
export * from './named-tensors';
export * from './stage-state-bundle';
