import { App } from 'cdktf';
import { isMainModule } from '../functions/entrypoints/main-module.js';
import { prepareFunctionSource } from './function-source.js';
import { PipelineStack } from './stack.js';

/**
 * The CDKTF app: one stack per environment. `npm run synth` writes
 * cdktf.out/stacks/<env>/cdk.tf.json (no terraform binary or provider download needed);
 * `cdktf deploy <env>` applies one (README, "Deploying to Google Cloud").
 */
export const ENVIRONMENTS = [
  { environment: 'dev', deletionProtection: false },
  { environment: 'prod', deletionProtection: true },
] as const;

export function buildApp(outdir = 'cdktf.out'): App {
  const app = new App({ outdir });
  const functionSourceDir = prepareFunctionSource();
  for (const env of ENVIRONMENTS) new PipelineStack(app, env.environment, { ...env, functionSourceDir });
  return app;
}

if (isMainModule(import.meta.url)) buildApp(process.env.CDKTF_OUTDIR ?? 'cdktf.out').synth();
