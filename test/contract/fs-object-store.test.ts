import { join } from 'node:path';
import { FsObjectStore } from '../../functions/adapters/local/fs-object-store.js';
import { tempDir } from '../helpers/fakes.js';
import { objectStoreContract } from './object-store.contract.js';

objectStoreContract('FsObjectStore', async () => {
  const dir = await tempDir();
  return {
    store: new FsObjectStore(join(dir.path, 'bucket')),
    other: new FsObjectStore(join(dir.path, 'work')),
    dispose: () => dir[Symbol.asyncDispose](),
  };
});
