import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * The GitHub Actions workflows, checked offline: each file against GitHub's workflow schema
 * (action-validator: events, job and step shapes, permissions, `needs` that name real jobs), then
 * what a reader of the workflows would check by hand.
 */
// biome-ignore lint/suspicious/noExplicitAny: workflow YAML is untyped
type Json = any;

const WORKFLOWS_DIR = fileURLToPath(new URL('../../.github/workflows/', import.meta.url));
const VALIDATOR = fileURLToPath(new URL('../../node_modules/@action-validator/cli/cli.mjs', import.meta.url));

function validate(file: string): { ok: boolean; output: string } {
  const result = spawnSync(process.execPath, [VALIDATOR, file], { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

const workflow = (name: string): Json => parse(readFileSync(join(WORKFLOWS_DIR, name), 'utf8'));
const steps = (job: Json): Json[] => job.steps ?? [];
/** A GitHub Actions expression as written in the YAML: expr('matrix.node') is "${{ matrix.node }}". */
const expr = (inner: string) => `\${{ ${inner} }}`;
const usesAction = (step: Json, action: string) =>
  typeof step.uses === 'string' && step.uses.startsWith(`${action}@`);

describe('GitHub workflows', () => {
  const files = readdirSync(WORKFLOWS_DIR).filter((f) => /\.ya?ml$/.test(f));

  test('test.yml and deploy.yml are there', () => {
    assert.deepEqual(files.sort(), ['deploy.yml', 'test.yml']);
  });

  for (const file of files) {
    test(`${file} passes action-validator`, () => {
      const { ok, output } = validate(join(WORKFLOWS_DIR, file));
      assert.ok(ok, output);
    });
  }

  describe('action-validator refuses a broken workflow', () => {
    const dir = mkdtempSync(join(tmpdir(), 'workflows-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const broken: Record<string, { yaml: string; error: string }> = {
      'a misspelled event': {
        yaml: 'on: pull_requests\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: npm test\n',
        error: '/on',
      },
      'a job that needs a job that does not exist': {
        yaml:
          'on: workflow_dispatch\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: npm test\n' +
          '  deploy:\n    needs: tests\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo\n',
        error: 'unresolved job tests',
      },
      'a job without runs-on': {
        yaml: 'on: push\njobs:\n  t:\n    steps:\n      - run: npm test\n',
        error: '/jobs/t',
      },
    };
    for (const [what, { yaml, error }] of Object.entries(broken)) {
      test(what, () => {
        const file = join(dir, 'broken.yml');
        writeFileSync(file, yaml);
        const { ok, output } = validate(file);
        assert.equal(ok, false, `accepted:\n${yaml}`);
        assert.match(output, new RegExp(error.replace(/[/.]/g, '\\$&')));
      });
    }
  });

  describe('test.yml', () => {
    const wf = workflow('test.yml');
    const [name, job] = Object.entries<Json>(wf.jobs)[0] ?? [];

    test('runs on pull requests and on pushes to main', () => {
      assert.ok('pull_request' in wf.on);
      assert.deepEqual(wf.on.push.branches, ['main']);
      assert.equal(Object.keys(wf.jobs).length, 1, `one job, ${name}`);
    });

    test('runs npm ci, then npm test, on Node 20 and Node 24', () => {
      assert.deepEqual(job.strategy.matrix.node.map(String), ['20', '24']);
      const setupNode = steps(job).find((s) => usesAction(s, 'actions/setup-node'));
      assert.equal(setupNode?.with?.['node-version'], expr('matrix.node'));
      const runs = steps(job).map((s) => s.run);
      const ci = runs.findIndex((r) => /^npm ci\b/.test(r ?? ''));
      assert.ok(ci >= 0, 'npm ci');
      assert.equal(runs.at(-1), 'npm test', 'the README test command, last');
      assert.ok(steps(job).indexOf(setupNode) < ci);
    });

    test('installs what the integration tier needs: gcloud with the Pub/Sub emulator, Java 17', () => {
      const gcloud = steps(job).find((s) => usesAction(s, 'google-github-actions/setup-gcloud'));
      const components = String(gcloud?.with?.install_components ?? '').split(/[\s,]+/);
      assert.ok(components.includes('beta') && components.includes('pubsub-emulator'), String(components));
      const java = steps(job).find((s) => usesAction(s, 'actions/setup-java'));
      assert.equal(String(java?.with?.['java-version']), '17');
    });
  });

  describe('deploy.yml', () => {
    const text = readFileSync(join(WORKFLOWS_DIR, 'deploy.yml'), 'utf8');
    const wf = workflow('deploy.yml');
    const deploy = wf.jobs.deploy;

    test('runs only when started by hand, for dev or prod', () => {
      assert.deepEqual(Object.keys(wf.on), ['workflow_dispatch']);
      const input = wf.on.workflow_dispatch.inputs.environment;
      assert.equal(input.type, 'choice');
      assert.deepEqual(input.options, ['dev', 'prod']);
    });

    test('deploys after the tests pass', () => {
      const runsTests = (name: string) => {
        const job = wf.jobs[name];
        if (job?.uses === './.github/workflows/test.yml') return 'workflow_call' in workflow('test.yml').on;
        return steps(job ?? {}).some((s) => s.run === 'npm test');
      };
      const needs: string[] = [deploy.needs ?? []].flat();
      assert.ok(needs.some(runsTests), `deploy needs ${JSON.stringify(needs)}, none of which runs npm test`);
    });

    test('the deploy job is bound to the chosen GitHub Environment (its approval gate)', () => {
      assert.equal(deploy.environment, expr('inputs.environment'));
    });

    test('authenticates with Workload Identity Federation, never a key', () => {
      assert.equal(deploy.permissions['id-token'], 'write');
      assert.equal(deploy.permissions.contents, 'read');
      const auth = steps(deploy).filter((s) => usesAction(s, 'google-github-actions/auth'));
      assert.equal(auth.length, 1);
      assert.match(auth[0].with.workload_identity_provider, /^\$\{\{ vars\.\w+ \}\}$/);
      assert.match(auth[0].with.service_account, /^\$\{\{ vars\.\w+ \}\}$/);
      assert.doesNotMatch(text, /credentials_json|service_account_key|GOOGLE_CREDENTIALS/);
      const authAt = steps(deploy).indexOf(auth[0]);
      const firstGcloud = steps(deploy).findIndex((s) => /\b(gcloud|terraform)\b/.test(s.run ?? ''));
      assert.ok(authAt < firstGcloud, 'authenticated before anything reaches Google');
    });

    test('builds the connector image with Cloud Build, then applies that stack with it', () => {
      const runs = steps(deploy).map((s) => s.run ?? '');
      const build = runs.findIndex((r) =>
        /gcloud builds submit --config infra\/connector\/cloudbuild\.yaml\s+--service-account=projects\/\$\{\{ vars\.GCP_PROJECT_ID \}\}\/serviceAccounts\/\$\{\{ vars\.BUILD_SERVICE_ACCOUNT \}\}\s+--substitutions=_IMAGE=\$CONNECTOR_IMAGE \./.test(
          r,
        ),
      );
      const apply = runs.findIndex((r) => /terraform apply -input=false -auto-approve/.test(r));
      assert.ok(build >= 0 && apply > build, 'build, then apply');
      const applyStep = steps(deploy)[apply];
      assert.equal(applyStep['working-directory'], `cdktf.out/stacks/${expr('inputs.environment')}`);
      assert.equal(applyStep.env.TF_VAR_connector_image, expr('env.CONNECTOR_IMAGE'));
      for (const variable of [
        'project_id',
        'region',
        'bigquery_location',
        'retail_api_url',
        'analysts_group',
        'build_service_account',
      ]) {
        assert.match(applyStep.env[`TF_VAR_${variable}`], /^\$\{\{ vars\.\w+ \}\}$/, variable);
      }
      // Who gets the alerts: optional lists, empty unless the environment names them.
      assert.equal(applyStep.env.TF_VAR_notification_channels, "${{ vars.NOTIFICATION_CHANNELS || '[]' }}");
      assert.equal(applyStep.env.TF_VAR_alert_emails, "${{ vars.ALERT_EMAILS || '[]' }}");
      // The state goes where the stack's own backend says (synth needs the bucket), not to a file
      // on the runner.
      const synth = steps(deploy).find((s) => s.run === 'npm run synth');
      assert.equal(synth.env.TF_STATE_BUCKET, expr('vars.TF_STATE_BUCKET'));
      assert.doesNotMatch(text, /backend_override/);
    });
  });
});
