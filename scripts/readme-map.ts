/**
 * The README's folder map ("How it works") against the folders on disk, so the two cannot drift:
 * the map is a markdown list whose top-level items start with a folder name in backticks
 * (`` - `shared/`: ... ``) and whose nested items (two spaces in) name the folders inside it.
 * A folder listed twice, one without a purpose, one missing or one no longer on disk is reported.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MapEntry {
  folder: string;
  purpose: string;
  children: MapEntry[];
}

const ITEM = /^( {0,2})- `([^`/]+)\/`(.*)$/;

/** The folder list of the section headed `heading` (up to the next `## `). */
export function parseFolderMap(markdown: string, heading = '## How it works'): MapEntry[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) throw new Error(`no "${heading}" section`);
  const top: MapEntry[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('## ')) break;
    const m = ITEM.exec(line);
    if (!m) continue;
    const entry: MapEntry = { folder: m[2]!, purpose: m[3]!.replace(/^:\s*/, '').trim(), children: [] };
    if (m[1] === '') top.push(entry);
    else {
      const parent = top[top.length - 1];
      if (!parent) throw new Error(`nested folder ${entry.folder}/ before any top-level folder`);
      parent.children.push(entry);
    }
  }
  return top;
}

/** Top-level names a `.gitignore` excludes (plain names only, `name` or `name/`). */
export function ignoredNames(gitignore: string): Set<string> {
  const out = new Set<string>();
  for (const raw of gitignore.split('\n')) {
    const line = raw.trim().replace(/^\//, '').replace(/\/$/, '');
    if (line && !line.startsWith('#') && !/[*?[!]/.test(line) && !line.includes('/')) out.add(line);
  }
  return out;
}

/** The folders directly inside `dir`: no hidden ones, none that git ignores, no symlinks. */
export function foldersOn(dir: string, ignored: Set<string>): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !ignored.has(e.name))
    .map((e) => e.name)
    .sort();
}

/** Every disagreement between the map and the disk under `root`, as readable lines (none = in step). */
export function mapProblems(map: MapEntry[], root: string, mustDetail: readonly string[]): string[] {
  const problems: string[] = [];
  const ignored = ignoredNames(readFileSync(join(root, '.gitignore'), 'utf8'));
  const compare = (where: string, listed: MapEntry[], onDisk: string[]): void => {
    const names = listed.map((e) => e.folder);
    for (const n of new Set(names.filter((n, i) => names.indexOf(n) !== i))) problems.push(`${where}${n}/ is listed more than once`);
    for (const n of onDisk) if (!names.includes(n)) problems.push(`${where}${n}/ is on disk but not in the map`);
    for (const n of new Set(names)) if (!onDisk.includes(n)) problems.push(`${where}${n}/ is in the map but not on disk`);
    for (const e of listed) if (!e.purpose) problems.push(`${where}${e.folder}/ has no purpose`);
  };
  compare('', map, foldersOn(root, ignored));
  for (const entry of map) {
    const detailed = entry.children.length > 0 || mustDetail.includes(entry.folder);
    if (!detailed) continue;
    let inside: string[] = [];
    try {
      inside = foldersOn(join(root, entry.folder), new Set());
    } catch {
      continue; // reported above as not on disk
    }
    compare(`${entry.folder}/`, entry.children, inside);
  }
  return problems;
}
