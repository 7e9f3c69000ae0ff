import type { ObjectStore } from '../ports/object-store.js';

/** The text of an object is not UTF-8; `line` is the line the bad bytes are on. */
export class NotUtf8Error extends Error {
  constructor(readonly line: number) {
    super(`not UTF-8 text (near line ${line})`);
    this.name = 'NotUtf8Error';
  }
}

/**
 * The lines of an object, streamed (so a file of any size is read in bounded memory); the last
 * line comes without its newline, possibly empty. With `strict`, invalid UTF-8 throws
 * NotUtf8Error; otherwise it reads as U+FFFD.
 */
export async function* objectLines(
  store: ObjectStore,
  key: string,
  options: { strict: boolean },
): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: options.strict });
  let line = 0;
  const decode = (chunk?: Buffer): string => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw new NotUtf8Error(line + 1);
    }
  };
  let carry = '';
  for await (const chunk of store.readStream(key)) {
    const lines = (carry + decode(chunk)).split('\n');
    carry = lines.pop() ?? '';
    for (const text of lines) {
      line++;
      yield text;
    }
  }
  yield carry + decode();
}
