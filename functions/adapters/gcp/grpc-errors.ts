import { describeError, TerminalError, TransientError } from '../../core/errors.js';

/** gRPC status codes a retry can cure (google.rpc.Code). */
const TRANSIENT_GRPC = new Set([
  4, // DEADLINE_EXCEEDED
  8, // RESOURCE_EXHAUSTED
  10, // ABORTED
  13, // INTERNAL
  14, // UNAVAILABLE
]);

/** A Google client error as TransientError or TerminalError, with `what` in front. */
export function classifyGrpcError(what: string, error: unknown): TransientError | TerminalError {
  const code = (error as { code?: unknown })?.code;
  const message = `${what}: ${describeError(error)}`;
  return typeof code === 'number' && TRANSIENT_GRPC.has(code)
    ? new TransientError(message, { cause: error })
    : new TerminalError(message, { cause: error });
}
