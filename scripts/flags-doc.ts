/**
 * `npm run flags:doc`: prints every coordinator flag as a markdown table (from
 * coordinator/cli/flags.ts, as `--help` is); `npm run flags:doc -- --write` puts it into
 * README.md between its markers (scripts/flag-table.ts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { flagsMarkdown } from '../coordinator/cli/flags.js';
import { withFlagTable } from './flag-table.js';

const table = flagsMarkdown();
if (process.argv.includes('--write')) {
  const readme = fileURLToPath(new URL('../README.md', import.meta.url));
  writeFileSync(readme, withFlagTable(readFileSync(readme, 'utf8'), table));
  console.log(`wrote the flag table into ${readme}`);
} else process.stdout.write(table);
