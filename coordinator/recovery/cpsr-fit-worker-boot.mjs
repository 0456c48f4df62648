// Starts cpsr-fit-worker.ts in a worker thread when the coordinator runs from TypeScript (tsx):
// a worker does not inherit tsx's loader, so it is registered here before the entry is imported.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
