export * from './tokenizer.js';
export * from './dataset.js';
