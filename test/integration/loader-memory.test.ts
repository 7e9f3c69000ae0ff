import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DuckDbWarehouse } from '../../functions/adapters/local/duckdb-warehouse.js';
import { FsObjectStore } from '../../functions/adapters/local/fs-object-store.js';
import { writeProductsFile } from '../helpers/big-file.js';
import { tempDir } from '../helpers/fakes.js';

/**
 * The loader streams: a file of the default limit (1 GiB) loads locally with a peak RSS under
 * 300 MiB, measured in a process of its own (the bench worker's `load` mode: claim, check, rows
 * file, raw append, archive; everything the loader does but the merge).
 *
 * The young generation is held at 16 MB, Node 20's default: Node 22 and later size it from the
 * machine's memory (up to 3 x 32 MB on a large machine), which adds that much to any Node
 * process's peak whatever the file. The Cloud Function's heap, sized from its 1 GiB, stays small.
 */
test('a 1 GiB file loads with a peak RSS under 300 MiB, every row once, nothing left in processing/', async () => {
  await using home = await tempDir('loader-memory-');
  await mkdir(join(home.path, 'bucket', 'products', 'in'), { recursive: true });
  const file = await writeProductsFile(
    join(home.path, 'bucket', 'products', 'in', 'big.json'),
    2 ** 30 - 2 ** 12,
  );
  const v8 = ['--max-semi-space-size=16'];
  const child = spawn(
    process.execPath,
    [...v8, '--import', 'tsx', 'test/bench/worker.ts', 'load', home.path],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, err);
  const measured = JSON.parse(out) as { records: number; peakRssMiB: number };
  assert.equal(measured.records, file.records);
  assert.ok(measured.peakRssMiB < 300, `peak RSS ${measured.peakRssMiB.toFixed(0)} MiB for a 1 GiB file`);

  const store = new FsObjectStore(join(home.path, 'bucket'));
  assert.deepEqual(await store.list('products/processing/'), []);
  assert.equal((await store.list('products/archive/')).length, 1);
  const warehouse = await DuckDbWarehouse.open({
    path: join(home.path, 'warehouse.duckdb'),
    sqlDir: new URL('../../sql/duckdb/', import.meta.url).pathname,
    rowsFile: async () => {
      throw new Error('not loading here');
    },
  });
  try {
    const [raw] = await warehouse.query('SELECT count(*) AS n FROM raw.products');
    assert.equal(Number(raw?.n), file.records);
  } finally {
    warehouse.close();
  }
});
