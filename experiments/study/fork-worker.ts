/**
 * One part of the fork study as a process of its own, so the study uses every core (tfjs wasm runs
 * on one thread): `node --import tsx experiments/study/fork-worker.ts <config.json> <part> <parts> <out.json>`.
 * Prints one line per finished fork.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { runForkStudy, type ForkStudyConfig } from './fork.js';

const [configFile, part, parts, outFile] = process.argv.slice(2);
if (!configFile || !part || !parts || !outFile) {
  process.stderr.write('usage: fork-worker.ts <config.json> <part> <parts> <out.json>\n');
  process.exit(2);
}
await useNodeBackend('wasm');
const config = JSON.parse(readFileSync(configFile, 'utf8')) as ForkStudyConfig;
const r = runForkStudy(config, {
  part: Number(part),
  parts: Number(parts),
  onProgress: (done, total, f) => process.stdout.write(`fork ${done}/${total}: ${f.strategy} stage ${f.stage} at ${f.fork}: setback ${f.setback.toFixed(1)}\n`),
});
writeFileSync(outFile, JSON.stringify(r));
