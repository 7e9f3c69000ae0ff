import type { Secret } from '../core/secret.js';

/** Where the Retail API key comes from: Secret Manager in production, the environment locally. */
export interface SecretSource {
  apiKey(): Promise<Secret>;
}
