import type { Entity } from '../core/entities.js';

/**
 * What long work reports while it runs, for a person watching (the CLI draws it as one updating
 * line at a terminal, or JSON lines elsewhere). Reporting never changes what the work does.
 */
export type ProgressEvent =
  | {
      readonly stage: 'extract';
      readonly entity: Entity;
      /** Pages fetched or found already staged, of `pagesTotal` once the API said how many. */
      readonly pages: number;
      readonly pagesTotal: number | undefined;
      readonly records: number;
    }
  | {
      readonly stage: 'load';
      readonly entity: Entity;
      readonly object: string;
      /** This file's place among the files waiting (1-based), and how many there are. */
      readonly file: number;
      readonly files: number;
      readonly bytes: number;
    }
  | { readonly stage: 'merge'; readonly entity: Entity; readonly step: string };

export type ProgressListener = (event: ProgressEvent) => void;

/**
 * How a command is asked to stop (Ctrl-C, SIGTERM): work checks it at its safe points, and
 * requests in flight are abandoned. What is durable stays; the next run resumes from it.
 */
export interface StopRequest {
  readonly signal: AbortSignal;
}
