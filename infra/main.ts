import { rmSync } from 'node:fs';
import { App } from 'cdktf';
import { isMainModule } from '../functions/entrypoints/main-module.js';
import { prepareFunctionSource } from './function-source.js';
import { PipelineStack } from './stack.js';

/**
 * The CDKTF app: one stack per environment, each deployed to its own Google Cloud project
 * (README, "Environments"). `npm run synth` writes cdktf.out/stacks/<env>/cdk.tf.json (no
 * terraform binary or provider download needed); `cdktf deploy <env>` applies one.
 */
export const ENVIRONMENTS = [
  { environment: 'dev', deletionProtection: false },
  { environment: 'prod', deletionProtection: true },
] as const;

/** Where Terraform keeps each stack's state: a GCS bucket, never the working copy. */
export const STATE_BUCKET_ENV = 'TF_STATE_BUCKET';

export interface AppOptions {
  readonly outdir?: string;
  /** The state bucket (infra/bootstrap.sh creates it); each stack's state lives under its own prefix. */
  readonly stateBucket: string;
}

/** The state bucket named by the environment; refuses to synthesize a stack with local state. */
export function stateBucketFrom(env: Readonly<Record<string, string | undefined>>): string {
  const bucket = env[STATE_BUCKET_ENV]?.replace(/^gs:\/\//, '');
  if (!bucket) {
    throw new Error(
      `${STATE_BUCKET_ENV} is not set: name the GCS bucket that keeps the Terraform state (infra/bootstrap.sh creates it; README, "Deploying to Google Cloud")`,
    );
  }
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket)) {
    throw new Error(`${STATE_BUCKET_ENV}="${bucket}" is not a bucket name`);
  }
  return bucket;
}

/**
 * Synthesizes every stack into the outdir. The loader's source is bundled into a temporary
 * folder, archived into the outdir's assets during synthesis, and the folder removed afterwards.
 */
export function synthApp(options: AppOptions): void {
  const app = new App({ outdir: options.outdir ?? 'cdktf.out' });
  const functionSource = prepareFunctionSource();
  try {
    for (const env of ENVIRONMENTS) {
      new PipelineStack(app, env.environment, {
        ...env,
        functionSourceDir: functionSource.dir,
        stateBucket: options.stateBucket,
      });
    }
    app.synth();
  } finally {
    rmSync(functionSource.dir, { recursive: true, force: true });
  }
}

if (isMainModule(import.meta.url)) {
  try {
    synthApp({
      outdir: process.env.CDKTF_OUTDIR ?? 'cdktf.out',
      stateBucket: stateBucketFrom(process.env),
    });
  } catch (error) {
    process.stderr.write(`synth: ${(error as Error).message}\n`);
    process.exit(2);
  }
}
