import type { Output } from '../compose.js';
import type { ProgressEvent } from '../ports/progress.js';

/**
 * Progress for a person: at a terminal one line on stderr, redrawn in place (at most ten times a
 * second) and cleared before any other line is written; elsewhere a JSON line (the log entry
 * shape, message "progress") when the stage changes and at most every `jsonEveryMs` otherwise.
 */
export class ProgressDisplay {
  private shown = '';
  private lastDraw = 0;
  private lastJson = 0;
  private lastKey = '';
  private readonly started = Date.now();
  private stageStarted = Date.now();

  constructor(
    private readonly out: Output,
    private readonly mode: 'tty' | 'json' | 'off',
    private readonly jsonEveryMs = 2000,
  ) {}

  static for(out: Output, mode: 'auto' | 'tty' | 'json' | 'off'): ProgressDisplay {
    return new ProgressDisplay(out, mode === 'auto' ? (out.isTTY ? 'tty' : 'json') : mode);
  }

  readonly update = (event: ProgressEvent): void => {
    const key = `${event.entity} ${event.stage}`;
    const changed = key !== this.lastKey;
    if (changed) {
      this.lastKey = key;
      this.stageStarted = Date.now();
    }
    const now = Date.now();
    if (this.mode === 'tty') {
      if (!changed && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.draw(`${describeProgress(event)}, ${((now - this.stageStarted) / 1000).toFixed(1)} s`);
    } else if (this.mode === 'json') {
      if (!changed && now - this.lastJson < this.jsonEveryMs) return;
      this.lastJson = now;
      this.out.write(
        `${JSON.stringify({ severity: 'INFO', message: 'progress', time: new Date(now).toISOString(), elapsedMs: now - this.started, ...event })}\n`,
      );
    }
  };

  /** Writes text (a log line, a result) without tearing the progress line. */
  readonly write = (text: string): void => {
    if (this.shown) {
      this.out.write('\r\x1b[2K');
      this.out.write(text);
      this.out.write(this.shown);
    } else this.out.write(text);
  };

  /** Clears the line; call before printing results or ending. */
  clear(): void {
    if (this.shown) this.out.write('\r\x1b[2K');
    this.shown = '';
  }

  private draw(line: string): void {
    this.shown = line;
    this.out.write(`\r\x1b[2K${line}`);
  }
}

const number = new Intl.NumberFormat('en-US');

/** What the work is doing, in words: the progress line without its time, and `status` during a run. */
export function describeProgress(event: ProgressEvent): string {
  switch (event.stage) {
    case 'extract': {
      const of = event.pagesTotal ? `/${number.format(event.pagesTotal)}` : '';
      const share = event.pagesTotal ? ` ${bar(event.pages / event.pagesTotal)}` : '';
      return `${event.entity}: extract${share} ${number.format(event.pages)}${of} pages, ${number.format(event.records)} records`;
    }
    case 'load':
      return `${event.entity}: load file ${event.file}/${event.files} (${(event.bytes / 2 ** 20).toFixed(1)} MiB)`;
    case 'merge':
      return `${event.entity}: merge ${event.step}`;
  }
}

function bar(share: number): string {
  const width = 20;
  const filled = Math.max(0, Math.min(width, Math.round(share * width)));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(share * 100)}%`;
}
