import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderOptionsMarkdown } from '../../functions/core/config.js';
import { REPO_ROOT } from './cli.js';

/** `npm run docs:options`: rewrites the README's table of options from their declarations. */
const path = join(REPO_ROOT, 'README.md');
const readme = readFileSync(path, 'utf8');
const block = /<!-- options:start -->\n[\s\S]*?<!-- options:end -->/;
if (!block.test(readme))
  throw new Error('README.md has no <!-- options:start --> ... <!-- options:end --> block');
writeFileSync(
  path,
  readme.replace(block, () => `<!-- options:start -->\n${renderOptionsMarkdown()}\n<!-- options:end -->`),
);
