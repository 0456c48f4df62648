import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { flagsMarkdown, FLAGS } from '../coordinator/cli/flags.js';
import { BEGIN, END, flagTableOf, withFlagTable } from './flag-table.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe("the README's flag table", () => {
  it('is the one coordinator/cli/flags.ts generates (npm run flags:doc -- --write)', () => {
    expect(flagTableOf(README)).toBe(flagsMarkdown());
  });

  it('has one row per flag with its default', () => {
    const table = flagsMarkdown();
    for (const name of Object.keys(FLAGS)) expect(table).toMatch(new RegExp(`\`(-\\w, )?--${name}[ \`]`));
    expect(table).toContain('| `--port <n>` | `8080` |');
    expect(table).toContain('| `--recovery <s>` | `checkfree+` | checkfree+ \\| checkfree \\|');
  });

  it('replaces only what lies between the markers', () => {
    const doc = `intro\n${BEGIN}\nold\n${END}\noutro\n`;
    const next = withFlagTable(doc, '| a |\n');
    expect(next).toBe(`intro\n${BEGIN}\n| a |\n${END}\noutro\n`);
    expect(flagTableOf(next)).toBe('| a |\n');
    expect(() => flagTableOf('no markers')).toThrow(/markers/);
  });
});
