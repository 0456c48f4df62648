/**
 * Dead references in the docs: every relative markdown link in README.md and docs/*.md must
 * point to a file or folder that exists (and, with `#anchor`, to a heading of that markdown file,
 * slugged as GitHub does), and every repository path written in backticks (`` `coordinator/x.ts` ``,
 * starting with a top-level folder) must exist, so a moved or renamed file shows up here.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a markdown file's headings (outside code fences). */
export function anchorsOf(markdown: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (m) out.add(slug(m[1]!));
  }
  return out;
}

/** Markdown without its fenced code blocks (links and paths in them are examples). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** Every dead link or path of `file` (a path relative to `root`), as readable lines. */
export function deadReferences(root: string, file: string, topFolders: readonly string[]): string[] {
  const text = prose(readFileSync(join(root, file), 'utf8'));
  const problems: string[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!;
    if (/^[a-z]+:/i.test(target)) continue; // http:, https:, mailto:
    const [path, anchor] = target.split('#') as [string, string | undefined];
    const abs = path ? join(root, dirname(file), decodeURIComponent(path)) : join(root, file);
    if (!existsSync(abs)) {
      problems.push(`${file}: link to ${target}: no such file`);
      continue;
    }
    if (anchor !== undefined && abs.endsWith('.md') && statSync(abs).isFile() && !anchorsOf(readFileSync(abs, 'utf8')).has(anchor)) {
      problems.push(`${file}: link to ${target}: no such heading in ${relative(root, abs)}`);
    }
  }
  const folders = topFolders.join('|');
  for (const m of text.matchAll(new RegExp(`\`((?:${folders})/[^\`\\s]*)\``, 'g'))) {
    const path = m[1]!.replace(/[.,:;]$/, '');
    if (/[*<>{}]/.test(path)) continue; // a pattern, not a path
    if (!existsSync(join(root, path))) problems.push(`${file}: path ${path}: no such file`);
  }
  return problems;
}
