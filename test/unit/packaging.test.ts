import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const source = (built: string) => built.replace(/^dist\//, '').replace(/\.js$/, '.ts');

test('package.json main is the built Cloud Function module (what functions-framework serves)', () => {
  const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8'));
  assert.equal(pkg.main, 'dist/functions/entrypoints/loader-function.js');
  assert.ok(existsSync(`${ROOT}${source(pkg.main)}`));
  assert.match(readFileSync(`${ROOT}${source(pkg.main)}`, 'utf8'), /cloudEvent\(\s*'onObjectFinalized'/);
  assert.equal(pkg.bin['retail-pipeline'], 'dist/functions/entrypoints/cli.js');
});

test("the connector image's entry point and every folder it copies exist", () => {
  const dockerfile = readFileSync(`${ROOT}infra/connector/Dockerfile`, 'utf8');
  const entry = /ENTRYPOINT \["node", "([^"]+)"\]/.exec(dockerfile)?.[1] ?? '';
  assert.ok(existsSync(`${ROOT}${source(entry)}`), entry);
  for (const [, from] of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)) {
    assert.ok(existsSync(`${ROOT}${from}`), `COPY ${from}`);
  }
  assert.match(
    readFileSync(`${ROOT}infra/connector/cloudbuild.yaml`, 'utf8'),
    /infra\/connector\/Dockerfile/,
  );
});
