import { FsObjectStore } from '../../functions/adapters/local/fs-object-store.js';
import { tempDir } from '../helpers/fakes.js';
import { objectStoreContract } from './object-store.contract.js';

objectStoreContract('FsObjectStore', async () => {
  const dir = await tempDir();
  return { store: new FsObjectStore(dir.path), dispose: () => dir[Symbol.asyncDispose]() };
});
