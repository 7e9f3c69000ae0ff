import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/**
 * The loader's source as Cloud Functions builds it: the compiled code (dist/functions), the
 * BigQuery scripts it reads (sql/bigquery) and a package.json with the runtime dependencies and
 * `main`, without scripts or devDependencies (the build installs production packages only).
 * Needs `npm run build` first; says so when it was not run.
 */
export function prepareFunctionSource(root = ROOT): string {
  const built = join(root, 'dist', 'functions', 'entrypoints', 'loader-function.js');
  if (!existsSync(built)) throw new Error('dist/ is missing: run `npm run build` before synthesizing');
  const out = join(tmpdir(), `retail-pipeline-function-source-${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  cpSync(join(root, 'dist', 'functions'), join(out, 'dist', 'functions'), {
    recursive: true,
    filter: (path) => !path.endsWith('.map'),
  });
  cpSync(join(root, 'sql', 'bigquery'), join(out, 'sql', 'bigquery'), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  writeFileSync(
    join(out, 'package.json'),
    `${JSON.stringify(
      {
        name: pkg.name,
        version: pkg.version,
        private: true,
        type: pkg.type,
        main: pkg.main,
        engines: { node: '20' },
        dependencies: pkg.dependencies,
      },
      null,
      2,
    )}\n`,
  );
  return out;
}
