import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * The Pub/Sub emulator (`gcloud beta emulators pubsub start`, Java), started on a free loopback
 * port and stopped by its process group id. Where gcloud is missing it is unavailable: CI must
 * have it (the integration tier fails there), elsewhere the tier says it is skipped.
 */
export interface PubSubEmulator {
  readonly host: string;
  stop(): Promise<void>;
}

export function emulatorUnavailable(): string | undefined {
  try {
    execFileSync('gcloud', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'gcloud (with the Pub/Sub emulator and Java) is not installed here';
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function startPubSubEmulator(project = 'retail-pipeline-test'): Promise<PubSubEmulator> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    'gcloud',
    ['beta', 'emulators', 'pubsub', 'start', `--host-port=${host}`, `--project=${project}`],
    {
      detached: true, // its own process group: stopping it stops the JVM it starts
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  child.stderr?.on('data', (d) => {
    log += d;
  });
  const stop = async () => {
    if (child.pid && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await Promise.race([new Promise((r) => child.once('exit', r)), delay(5000)]);
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the Pub/Sub emulator exited: ${log.slice(-500)}`);
    try {
      const response = await fetch(`http://${host}/`);
      if (response.ok) return { host, stop };
    } catch {
      // not up yet
    }
    await delay(250);
  }
  await stop();
  throw new Error(`the Pub/Sub emulator did not start within 60 s: ${log.slice(-500)}`);
}
