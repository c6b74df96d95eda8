import { execFileSync, spawnSync } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { mapNullResourceToTerraformData } from '../../lib/fleet/terraform-apply';

export function terraformAvailable(): boolean {
  return spawnSync('terraform', ['version'], { stdio: 'ignore' }).status === 0;
}

export interface TerraformRun {
  readonly dir: string;
  readonly validate: string;
  readonly plan: string;
}

/** Runs `terraform init -backend=false`, `validate` and `plan` on the mapped stack; throws on failure. */
export function validateAndPlan(stackJson: Record<string, any>, variables: Record<string, string>): TerraformRun {
  const dir = mkdtempSync(join(tmpdir(), 'smartstack-tf-'));
  writeFileSync(join(dir, 'main.tf.json'), JSON.stringify(mapNullResourceToTerraformData(stackJson), null, 2));
  const env = { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_INPUT: '0' };
  const run = (args: string[]) => {
    try {
      return execFileSync('terraform', args, { cwd: dir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      throw new Error(`terraform ${args.join(' ')} failed in ${dir}:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  };
  run(['init', '-backend=false', '-input=false', '-no-color']);
  const validate = run(['validate', '-no-color']);
  const varArgs = Object.entries(variables).flatMap(([k, v]) => ['-var', `${k}=${v}`]);
  const plan = run(['plan', '-input=false', '-no-color', '-lock=false', ...varArgs]);
  return { dir, validate, plan };
}

/**
 * Evaluates Terraform string templates (as found in the synthesized JSON) with real terraform:
 * each becomes an output of an otherwise empty configuration, applied with the given variables.
 */
export function evaluateWithTerraform(templates: string[], variables: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'smartstack-tf-eval-'));
  const config = {
    variable: Object.fromEntries(Object.keys(variables).map((name) => [name, { type: 'string', sensitive: true }])),
    locals: Object.fromEntries(templates.map((t, i) => [`t${i}`, t])),
    output: Object.fromEntries(templates.map((_t, i) => [`t${i}`, { value: `\${nonsensitive(local.t${i})}` }])),
  };
  writeFileSync(join(dir, 'main.tf.json'), JSON.stringify(config));
  const env = { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_INPUT: '0' };
  const varArgs = Object.entries(variables).flatMap(([k, v]) => ['-var', `${k}=${v}`]);
  execFileSync('terraform', ['init', '-backend=false', '-input=false', '-no-color'], { cwd: dir, env, stdio: 'ignore' });
  execFileSync('terraform', ['apply', '-auto-approve', '-input=false', '-no-color', '-lock=false', ...varArgs], { cwd: dir, env, stdio: 'ignore' });
  const outputs = JSON.parse(execFileSync('terraform', ['output', '-json'], { cwd: dir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Record<string, { value: string }>;
  return templates.map((_t, i) => outputs[`t${i}`].value);
}
