/**
 * Lossless handling of JSON text. Records must reach the bucket exactly as the API wrote them:
 * `59.90` stays `59.90` and a 30-digit amount keeps every digit, which a JSON.parse/stringify
 * round trip would not guarantee. These scanners find value boundaries in already-valid JSON.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipWs(text: string, i: number): number {
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  return i;
}

function stringEnd(text: string, i: number): number {
  // i is at the opening quote
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j + 1;
  }
  throw new SyntaxError('unterminated string');
}

/** Index just after the JSON value that starts at (or after whitespace from) `i`. */
export function valueEnd(text: string, i: number): number {
  i = skipWs(text, i);
  const c = text.charCodeAt(i);
  if (c === QUOTE) return stringEnd(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j);
      if (d === QUOTE) j = stringEnd(text, j) - 1;
      else if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    throw new SyntaxError('unterminated container');
  }
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === 0x2c || d === 0x7d || d === 0x5d || isWs(d)) break;
    j++;
  }
  if (j === i) throw new SyntaxError(`unexpected character at ${i}`);
  return j;
}

/** The members of the object at `start`: key (decoded) and the raw text span of each value. */
export function* objectMembers(
  text: string,
  start = 0,
): Generator<{ key: string; from: number; to: number }> {
  let i = skipWs(text, start);
  if (text.charCodeAt(i) !== 0x7b) throw new SyntaxError('not an object');
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === 0x7d) return;
  for (;;) {
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    if (text.charCodeAt(i) !== 0x3a) throw new SyntaxError('expected ":"');
    const from = skipWs(text, i + 1);
    const to = valueEnd(text, from);
    yield { key, from, to };
    i = skipWs(text, to);
    if (text.charCodeAt(i) === 0x2c) i = skipWs(text, i + 1);
    else return;
  }
}

/**
 * The elements of the array at `start`, each on one line (whitespace outside strings removed,
 * every other character untouched), and the index just after the array. One pass over the text:
 * this runs on every byte the connector receives.
 */
export function compactArrayElements(text: string, start: number): { elements: string[]; end: number } {
  const elements: string[] = [];
  let i = skipWs(text, start);
  if (text.charCodeAt(i) !== 0x5b) throw new SyntaxError('not an array');
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === 0x5d) return { elements, end: i + 1 };
  let depth = 0;
  let pending = '';
  let runStart = i;
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) {
      j = stringEnd(text, j) - 1;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
    } else if ((c === 0x7d || c === 0x5d) && depth > 0) {
      depth--;
    } else if ((c === 0x2c || c === 0x5d) && depth === 0) {
      elements.push(pending + text.slice(runStart, j));
      pending = '';
      if (c === 0x5d) return { elements, end: j + 1 };
      runStart = j + 1;
    } else if (isWs(c)) {
      pending += text.slice(runStart, j);
      runStart = j + 1;
    }
  }
  throw new SyntaxError('unterminated array');
}

/** The raw JSON text of a top-level member of an object, or `undefined` when absent. */
export function memberText(objectText: string, key: string): string | undefined {
  for (const m of objectMembers(objectText)) if (m.key === key) return objectText.slice(m.from, m.to);
  return undefined;
}

/**
 * A non-negative integer written as a JSON number or string (blanks allowed around it), as the
 * API sends ids. Returns `undefined` for anything else.
 */
export function integerOf(jsonText: string | undefined): bigint | undefined {
  if (jsonText === undefined) return undefined;
  let text = jsonText.trim();
  if (text.startsWith('"')) {
    try {
      text = JSON.parse(text) as string;
    } catch {
      return undefined;
    }
  }
  return plainInteger(text);
}

/** Text of 1 to 30 digits as a number (blanks around it allowed), else `undefined`. */
export function plainInteger(text: string): bigint | undefined {
  const digits = text.trim();
  return /^\d{1,30}$/.test(digits) ? BigInt(digits) : undefined;
}
