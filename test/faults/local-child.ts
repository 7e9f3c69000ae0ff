import type { IngestPorts } from '../../functions/app/ingest-object.js';
import { processWaiting } from '../../functions/app/pipeline.js';
import { openLocalRuntime } from '../../functions/compose-local.js';
import { MemoryLogger } from '../helpers/fakes.js';

/**
 * `retail-pipeline process` on the local runtime, with a kill -9 of its own process just before
 * the port call named in FAULT_KILL_AT (`store.move:2`): every step of the local loader is a
 * point where the process can die. With FAULT_COUNT=1 it prints the calls it made instead.
 */
const home = process.argv[2];
if (!home) throw new Error('usage: local-child HOME');
const [killCall, killAt] = (process.env.FAULT_KILL_AT ?? '').split(':');
const calls: string[] = [];
const seen = new Map<string, number>();

function hooked<T extends object>(name: string, target: T): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver);
      if (typeof value !== 'function' || property === 'constructor') return value;
      return (...args: unknown[]) => {
        const call = `${name}.${String(property)}`;
        const n = (seen.get(call) ?? 0) + 1;
        seen.set(call, n);
        calls.push(`${call}:${n}`);
        if (call === killCall && String(n) === killAt) process.kill(process.pid, 'SIGKILL');
        return value.apply(object, args);
      };
    },
  });
}

const runtime = await openLocalRuntime(home, new MemoryLogger());
const ports: IngestPorts = {
  ...runtime,
  store: hooked('store', runtime.store),
  warehouse: hooked('warehouse', runtime.warehouse),
  events: hooked('events', runtime.events),
  workflows: hooked('workflows', runtime.workflows),
};
await processWaiting(ports, { maxFileBytes: 64 * 2 ** 20 }, ['products']);
runtime.close();
if (process.env.FAULT_COUNT) process.stdout.write(`${JSON.stringify(calls)}\n`);
process.exit(0);
