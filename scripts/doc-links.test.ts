import { describe, it, expect } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { anchorsOf, deadReferences, slug } from './doc-links.js';
import { foldersOn, ignoredNames } from './readme-map.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('links and paths in README.md and docs/', () => {
  it('all point to files that exist (and headings that exist)', () => {
    const tops = foldersOn(ROOT, ignoredNames(readFileSync(join(ROOT, '.gitignore'), 'utf8')));
    const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    expect(files.length).toBeGreaterThan(5);
    expect(files.flatMap((f) => deadReferences(ROOT, f, tops))).toEqual([]);
  });
});

describe('deadReferences', () => {
  it('reports a missing file, a missing heading and a stale path; skips URLs, code blocks and patterns', () => {
    const dir = mkdtempSync(join(tmpdir(), 'doc-links-'));
    try {
      mkdirSync(join(dir, 'docs'));
      mkdirSync(join(dir, 'src'));
      writeFileSync(join(dir, 'src', 'a.ts'), '');
      writeFileSync(join(dir, 'docs', 'b.md'), '# B\n\n## Relay: `npm run bench:relay`\n');
      writeFileSync(
        join(dir, 'docs', 'a.md'),
        [
          '[ok](b.md) [ok](b.md#relay-npm-run-benchrelay) [ok](../src/a.ts) [web](https://x.example/y)',
          '[gone](c.md) [bad anchor](b.md#nope) `src/a.ts` `src/moved.ts` `src/*.test.ts`',
          '```',
          '[in code](nowhere.md) `src/nowhere.ts`',
          '```',
        ].join('\n'),
      );
      expect(deadReferences(dir, 'docs/a.md', ['src', 'docs'])).toEqual([
        'docs/a.md: link to c.md: no such file',
        'docs/a.md: link to b.md#nope: no such heading in docs/b.md',
        'docs/a.md: path src/moved.ts: no such file',
      ]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("slugs headings as GitHub does", () => {
    expect(slug('Relay: `npm run bench:relay`')).toBe('relay-npm-run-benchrelay');
    expect(slug("The recovery ladder")).toBe('the-recovery-ladder');
    expect(slug('Wire encodings: loss (`npm run bench:wire-loss`)')).toBe('wire-encodings-loss-npm-run-benchwire-loss');
    expect([...anchorsOf('# A\n```\n# not a heading\n```\n## B c\n')]).toEqual(['a', 'b-c']);
  });
});
