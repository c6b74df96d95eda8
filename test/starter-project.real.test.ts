/**
 * The README's way into one's own project, followed word for word in a temporary folder: the
 * package packed from this clone, the starter project (examples/starter) installed with its pinned
 * peers and tools, then synthesized by ts-node and by `cdktf synth`. Installs from the npm cache when
 * it holds the packages (it does after `npm ci` here), otherwise from the registry.
 */
import { spawnSync } from 'child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

const root = join(__dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'smartstack-starter-'));
const project = join(work, 'my-mesh');
const env: NodeJS.ProcessEnv = { ...process.env, CHECKPOINT_DISABLE: '1', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
// The project is on its own: nothing of this clone may leak in through the environment.
delete env.NODE_PATH;
delete env.TS_NODE_PROJECT;

function run(command: string, args: string[], cwd: string) {
  const r = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
  if (r.error) throw new Error(`${command} could not run: ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

let packed: { filename: string; files: Array<{ path: string }> };

beforeAll(() => {
  const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
  expect(pack.status).toBe(0);
  packed = JSON.parse(pack.stdout)[0];
  cpSync(join(root, 'examples', 'starter'), project, { recursive: true });
  const install = run('npm', ['install', '--prefer-offline', join(work, packed.filename)], project);
  if (install.status !== 0) throw new Error(`npm install failed:\n${install.output}`);
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the starter project, from a packed clone', () => {
  test('the package carries its licence, its security notes and its built code', () => {
    const files = packed.files.map((f) => f.path);
    for (const file of ['LICENSE', 'SECURITY.md', 'README.md', 'API.md', 'lib/index.js', 'lib/index.d.ts', 'bin/smartstack']) expect(files).toContain(file);
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^\s+Apache License\n\s+Version 2\.0, January 2004/);
    expect(files.some((f) => f.startsWith('test/') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toBe(false);
  });

  test('the README usage snippet is the starter project, word for word', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const snippet = /## Usage\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(snippet).toBe(readFileSync(join(root, 'examples', 'starter', 'main.ts'), 'utf8'));
  });

  test('TypeScript is the pinned 5.9, which ts-node 10.9 supports', () => {
    const r = run('npx', ['--no-install', 'tsc', '--version'], project);
    expect(r.output.trim()).toBe('Version 5.9.3');
  });

  test('ts-node main.ts synthesizes the stack', () => {
    const r = run('npx', ['--no-install', 'ts-node', 'main.ts'], project);
    expect(r.status).toBe(0);
    const stack = JSON.parse(readFileSync(join(project, 'cdktf.out', 'stacks', 'oslo', 'cdk.tf.json'), 'utf8'));
    const deliveries = Object.keys(stack.resource.null_resource).filter((name) => /cloud-init/.test(name));
    expect(deliveries).toHaveLength(6);
  });

  test('cdktf synth runs with the project\'s own cdktf-cli', () => {
    rmSync(join(project, 'cdktf.out'), { recursive: true, force: true });
    const r = run('npx', ['--no-install', 'cdktf', 'synth'], project);
    expect(r.output).toContain('Generated Terraform code for the stacks: oslo');
    expect(r.status).toBe(0);
    expect(existsSync(join(project, 'cdktf.out', 'stacks', 'oslo', 'cdk.tf.json'))).toBe(true);
  });

  test('ValidationError is exported: a bad host can be told apart from other errors', () => {
    const script = `
const { App, TerraformStack } = require('cdktf');
const { ValidationError, VdsNode } = require('cdktf-smartstack');
try {
  new VdsNode(new TerraformStack(new App(), 's'), 'h', { privateAddress: '10.0.0.300', memoryMiB: 2048 });
} catch (e) {
  console.log(e instanceof ValidationError, e.message);
}`;
    const r = run(process.execPath, ['-e', script], project);
    expect(r.output.trim()).toBe(`true VdsNode 's/h': privateAddress = "10.0.0.300": expected an IPv4 address`);
  });
});
