import { AheadClock, deliver, gcpPorts, serveLoader } from './gcp-composition.js';

/**
 * A loader process for the kill scenarios: the GCP composition served by the Functions
 * Framework, delivering one event to itself. The parent kills it with SIGKILL in the middle of
 * an HTTP call (from the fake's side); a port call (Pub/Sub, Workflows) named in FAULT_KILL_AT
 * (`events.publish:1`) kills it from here, just before that call.
 */
const [gcs, bigquery, pubsub, name, generation] = process.argv.slice(2);
if (!gcs || !bigquery || !pubsub || !name || !generation)
  throw new Error('usage: loader-child GCS BQ PUBSUB NAME GEN');
const [killCall, killAt] = (process.env.FAULT_KILL_AT ?? '').split(':');
const seen = new Map<string, number>();
const ports = gcpPorts({ gcs, bigquery, pubsub }, new AheadClock(), (call, phase) => {
  if (phase !== 'before') return;
  const n = (seen.get(call) ?? 0) + 1;
  seen.set(call, n);
  if (call === killCall && String(n) === killAt) process.kill(process.pid, 'SIGKILL');
});
const { url } = await serveLoader('faultChild', ports);
const status = await deliver(url, name, generation);
process.stdout.write(`${status}\n`);
process.exit(0);
