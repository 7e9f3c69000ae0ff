/**
 * The loader's time budget, shared by the function's deployment (infra) and the loader's own
 * reasoning about claims, so the two cannot drift apart.
 *
 * An event-driven Cloud Run function runs for at most 540 s
 * (https://cloud.google.com/functions/docs/configuring/timeout); the loader is deployed with
 * exactly that. A claim in processing/ older than the timeout plus a margin cannot belong to a
 * delivery that is still running: it was left by one that crashed or was stopped, and whoever
 * finds it (a redelivery of the same event, the reconciler) finishes it.
 */
export const LOADER_TIMEOUT_SECONDS = 540;

export const CLAIM_STALE_AFTER_MS = (LOADER_TIMEOUT_SECONDS + 60) * 1000;
