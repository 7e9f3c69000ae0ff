import type { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { TerminalError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import type { SecretSource } from '../../ports/secrets.js';
import { classifyGrpcError } from './grpc-errors.js';

/**
 * The Retail API key from Secret Manager, read once per instance and kept only as a Secret (which
 * prints as [redacted] everywhere). Errors name the secret, never its value.
 */
export class SecretManagerSource implements SecretSource {
  private cached: Promise<Secret> | undefined;

  constructor(
    private readonly client: Pick<SecretManagerServiceClient, 'accessSecretVersion'>,
    /** `projects/P/secrets/S/versions/latest` */
    private readonly version: string,
  ) {}

  apiKey(): Promise<Secret> {
    this.cached ??= this.read().catch((error: unknown) => {
      this.cached = undefined; // a failed read is tried again next time
      throw error;
    });
    return this.cached;
  }

  private async read(): Promise<Secret> {
    let payload: Uint8Array | string | null | undefined;
    try {
      const [version] = await this.client.accessSecretVersion({ name: this.version });
      payload = version.payload?.data;
    } catch (error) {
      throw classifyGrpcError(`reading the secret ${this.version}`, error);
    }
    const text = typeof payload === 'string' ? payload : payload ? Buffer.from(payload).toString('utf8') : '';
    if (!text.trim())
      throw new TerminalError(`the secret ${this.version} is empty: add a version holding the API key`);
    return new Secret(text.trim());
  }
}
