/**
 * Statements of a SQL file of sql/, split at a `;` that ends a line (our SQL files keep to that),
 * with whole-line comments removed, each with the line it starts on.
 */
export interface ScriptStatement {
  readonly text: string;
  readonly line: number;
}

export function scriptStatements(sql: string): ScriptStatement[] {
  const out: ScriptStatement[] = [];
  let line = 1;
  for (const chunk of sql.split(/;[ \t]*(?:\r?\n|$)/)) {
    const lines = chunk.split('\n');
    const first = lines.findIndex((l) => l.trim() && !l.trim().startsWith('--'));
    const text = lines
      .filter((l) => !l.trim().startsWith('--'))
      .join('\n')
      .trim();
    if (text) out.push({ text, line: line + Math.max(0, first) });
    line += lines.length;
  }
  return out;
}

export function splitStatements(sql: string): string[] {
  return scriptStatements(sql).map((s) => s.text);
}

/** `-- @include X.sql` on a line of its own: a file of the same folder whose text belongs there. */
const INCLUDE = /^-- @include ([a-z0-9_]+\.sql)[ \t]*$/gm;

/**
 * A script with its includes in place (one level: an included file includes nothing). The line
 * is a comment, so a script sent without expanding it fails loudly on the first missing function.
 */
export function expandIncludes(sql: string, read: (file: string) => string): string {
  return sql.replace(INCLUDE, (_, file: string) => read(file).trimEnd());
}
