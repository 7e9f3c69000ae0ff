import type { ObjectStore } from '../ports/object-store.js';

/** The text of an object is not UTF-8; `line` is the line the bad bytes are on. */
export class NotUtf8Error extends Error {
  constructor(readonly line: number) {
    super(`not UTF-8 text (near line ${line})`);
    this.name = 'NotUtf8Error';
  }
}

/** A line longer than the limit; `line` is its number. */
export class LineTooLongError extends Error {
  constructor(
    readonly line: number,
    readonly limit: number,
  ) {
    super(`line ${line} is longer than ${limit} characters`);
    this.name = 'LineTooLongError';
  }
}

/**
 * The lines of an object, streamed: memory holds one chunk and one line, whatever the size of
 * the object. The last line comes without its newline, possibly empty. With `strict`, invalid
 * UTF-8 throws NotUtf8Error; otherwise it reads as U+FFFD. With `maxLineChars`, a longer line
 * throws LineTooLongError as soon as it is known to be longer (never held whole).
 */
export async function* objectLines(
  store: ObjectStore,
  key: string,
  options: { strict: boolean; maxLineChars?: number },
): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: options.strict });
  const limit = options.maxLineChars ?? Number.POSITIVE_INFINITY;
  let line = 0;
  const decode = (chunk?: Buffer): string => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw new NotUtf8Error(line + 1);
    }
  };
  // The start of the current line, in pieces: joined once, when its end arrives.
  let pieces: string[] = [];
  let pending = 0;
  const hold = (text: string): void => {
    if (!text) return;
    pieces.push(text);
    pending += text.length;
    if (pending > limit) throw new LineTooLongError(line + 1, limit);
  };
  const take = (tail: string): string => {
    const text = pieces.length ? pieces.join('') + tail : tail;
    pieces = [];
    pending = 0;
    if (text.length > limit) throw new LineTooLongError(line + 1, limit);
    return text;
  };
  for await (const chunk of store.readStream(key)) {
    const text = decode(chunk);
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      const complete = take(text.slice(start, end));
      line++;
      yield complete;
      start = end + 1;
    }
    hold(text.slice(start));
  }
  yield take(decode());
}
