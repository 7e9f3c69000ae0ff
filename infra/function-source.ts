import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The deployed runtime (Cloud Run functions `nodejs24`, supported to 2028; README, "Runtimes"). */
export const FUNCTION_NODE_MAJOR = 24;

/** The bare package name of an import (`@scope/name/sub` -> `@scope/name`). */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
}

export interface FunctionSource {
  readonly dir: string;
  /** The packages the bundle imports: the only dependencies the function installs. */
  readonly dependencies: Readonly<Record<string, string>>;
}

/**
 * The loader's source as Cloud Functions builds it: one ESM bundle of
 * functions/entrypoints/loader-function.ts (dist/loader.js), the BigQuery scripts it reads
 * (sql/bigquery) and a package.json whose dependencies are exactly the packages the bundle
 * imports, at the versions package.json declares, with `engines.node` the deployed major. The
 * local runtime (DuckDB, the Workflows interpreter) is not reachable from the loader, so none of
 * it ships. Bundled from the TypeScript sources: no `npm run build` needed first.
 */
export function prepareFunctionSource(root = ROOT): FunctionSource {
  const out = join(tmpdir(), `retail-pipeline-function-source-${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const result = buildSync({
    entryPoints: [join(root, 'functions', 'entrypoints', 'loader-function.ts')],
    outfile: join(out, 'dist', 'loader.js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${FUNCTION_NODE_MAJOR}`,
    packages: 'external',
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
  });
  const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
  const imported = new Set(
    Object.values(result.metafile.outputs)
      .flatMap((o) => o.imports)
      .filter((i) => i.external && !builtins.has(i.path))
      .map((i) => packageOf(i.path)),
  );
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const dependencies: Record<string, string> = {};
  for (const name of [...imported].sort()) {
    const version = pkg.dependencies?.[name];
    if (!version)
      throw new Error(`the loader imports ${name}, which package.json does not list as a dependency`);
    dependencies[name] = version;
  }
  cpSync(join(root, 'sql', 'bigquery'), join(out, 'sql', 'bigquery'), { recursive: true });
  writeFileSync(
    join(out, 'package.json'),
    `${JSON.stringify(
      {
        name: `${pkg.name}-loader`,
        version: pkg.version,
        private: true,
        type: 'module',
        main: 'dist/loader.js',
        engines: { node: String(FUNCTION_NODE_MAJOR) },
        dependencies,
      },
      null,
      2,
    )}\n`,
  );
  return { dir: out, dependencies };
}
