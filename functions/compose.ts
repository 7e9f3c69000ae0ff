import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { HttpRetailApi } from './adapters/common/http-retail-api.js';
import { JsonLogger, type LogFormat } from './adapters/common/json-logger.js';
import { CryptoRandomness, SystemClock } from './adapters/common/system-clock.js';
import { FsObjectStore } from './adapters/local/fs-object-store.js';
import type { ExtractPorts, ExtractSettings } from './app/extract.js';
import type { Holder } from './app/lease.js';
import type { ApiSettings, ConnectorSettings } from './core/config.js';
import type { Logger } from './ports/logger.js';

/** The only place where adapters are built and wired. */

export interface Output {
  readonly write: (text: string) => void;
  readonly isTTY: boolean;
}

export function buildLogger(format: LogFormat | undefined, output: Output): Logger {
  return new JsonLogger(output.write, {
    format: format ?? (output.isTTY ? 'text' : 'json'),
    minSeverity: 'INFO',
  });
}

export interface LocalPaths {
  readonly home: string;
  readonly bucket: string;
}

export function localPaths(home: string): LocalPaths {
  const root = resolve(home);
  return { home: root, bucket: join(root, 'bucket') };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function localHolder(owner: string): Holder {
  const host = hostname();
  return {
    owner,
    host,
    pid: process.pid,
    isAlive: (otherHost, pid) => (otherHost === host ? processAlive(pid) : undefined),
  };
}

export function extractSettings(connector: ConnectorSettings): ExtractSettings {
  return {
    concurrency: connector.concurrency,
    pageSize: connector.pageSize,
    targetFileBytes: connector.targetFileBytes,
    retry: connector.retry,
    leaseTtlMs: connector.leaseTtlMs,
  };
}

/** The connector on the local runtime: the Retail API over HTTP, a folder as the bucket. */
export function localExtractPorts(options: {
  home: string;
  api: ApiSettings;
  connector: ConnectorSettings;
  logger: Logger;
}): ExtractPorts {
  const clock = new SystemClock();
  return {
    api: new HttpRetailApi({
      baseUrl: options.api.apiUrl,
      apiKey: options.api.apiKey,
      timeoutMs: options.connector.requestTimeoutMs,
      clock,
    }),
    store: new FsObjectStore(localPaths(options.home).bucket),
    clock,
    randomness: new CryptoRandomness(),
    logger: options.logger,
    holder: localHolder('retail-pipeline extract'),
  };
}
