/**
 * The README's flag table is generated from coordinator/cli/flags.ts (flagsMarkdown), between two
 * markers, so it cannot drift from `--help`: `npm run flags:doc` prints it, `-- --write` puts it
 * into README.md, and scripts/flag-table.test.ts fails while the two differ.
 */
export const BEGIN = '<!-- flags:begin (generated from coordinator/cli/flags.ts by `npm run flags:doc -- --write`) -->';
export const END = '<!-- flags:end -->';

function span(markdown: string): { start: number; end: number } {
  const start = markdown.indexOf(BEGIN);
  const end = markdown.indexOf(END);
  if (start < 0 || end < 0 || end < start) throw new Error(`expected the markers ${BEGIN} ... ${END}`);
  return { start: start + BEGIN.length, end };
}

/** The text between the markers, without the blank lines around it. */
export function flagTableOf(markdown: string): string {
  const { start, end } = span(markdown);
  return markdown.slice(start, end).trim() + '\n';
}

/** `markdown` with `table` between the markers. */
export function withFlagTable(markdown: string, table: string): string {
  const { start, end } = span(markdown);
  return `${markdown.slice(0, start)}\n${table.trim()}\n${markdown.slice(end)}`;
}
