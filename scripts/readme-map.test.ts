import { describe, it, expect } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mapProblems, parseFolderMap } from './readme-map.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Folders whose inside the map must list folder by folder. */
const DETAILED = ['shared', 'coordinator'];

describe("the README's folder map", () => {
  it('lists every top-level folder and every folder of shared/ and coordinator/ once, as on disk', () => {
    const map = parseFolderMap(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(map.length).toBeGreaterThan(5);
    expect(mapProblems(map, ROOT, DETAILED)).toEqual([]);
  });
});

describe('mapProblems', () => {
  const tree = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'readme-map-'));
    for (const d of ['a', 'b', 'core/x', 'core/y', 'build', '.hidden']) mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(join(dir, '.gitignore'), 'build/\n*.log\n');
    symlinkSync(join(dir, 'a'), join(dir, 'linked'));
    return dir;
  };
  const md = (items: string): string => `# t\n\n## How it works\n\n${items}\n## Next\n\n- \`zzz/\`: after the section\n`;
  const good = '- `a/`: one\n- `b/`: two\n- `core/`: three\n  - `x/`: x\n  - `y/`: y\n';

  it('accepts a map that matches (ignored, hidden and linked folders need no entry)', () => {
    const dir = tree();
    try {
      expect(mapProblems(parseFolderMap(md(good)), dir, ['core'])).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('reports a folder added, one removed, one listed twice and one without a purpose', () => {
    const dir = tree();
    try {
      mkdirSync(join(dir, 'c'));
      mkdirSync(join(dir, 'core', 'z'));
      const garbled = '- `a/`: one\n- `b/`:\n- `core/`: three\n  - `x/`: x\n  - `y/`: y\n  - `gone/`: was here\n- `a/`: again\n';
      expect(mapProblems(parseFolderMap(md(garbled)), dir, ['core']).sort()).toEqual([
        'a/ is listed more than once',
        'b/ has no purpose',
        'c/ is on disk but not in the map',
        'core/gone/ is in the map but not on disk',
        'core/z/ is on disk but not in the map',
      ]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('requires the detailed folders to list their inside', () => {
    const dir = tree();
    try {
      const flat = '- `a/`: one\n- `b/`: two\n- `core/`: three\n';
      expect(mapProblems(parseFolderMap(md(flat)), dir, ['core']).sort()).toEqual([
        'core/x/ is on disk but not in the map',
        'core/y/ is on disk but not in the map',
      ]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
