/**
 * The real programs' verdicts on what accepted values produce: for near-valid strings in every
 * string property, `cloud-init schema` (cloud-init's own code, one process for all documents)
 * accepts the document and reads it as we wrote it, `haproxy -c` accepts the haproxy.cfg, `sh -n`
 * the scripts and `nft -c` the firewall rules; Terraform evaluates literal `${` in files as text.
 * For registrations, `haproxy -c` accepts the haproxy.cfg synapse would write. How values are
 * refused, and the structure of what is rendered, is checked in the *.property.test.ts suites.
 */
import { spawnSync } from 'child_process';
import * as fc from 'fast-check';
import { parse } from 'yaml';
import { evaluateTerraformTemplate, templateVariables } from '../lib/cloud-init/terraform-template';
import { Registration } from '../lib/schema/registration';
import { fileContent } from './support/cloud-config-files';
import { CloudInitSchema } from './support/cloud-init-schema';
import { fuzzParameters } from './support/fuzz-parameters';
import { checkHaproxyConfig } from './support/haproxy-process';
import { attempt, InjectionTarget, TARGETS, valuesFor, YAML_SCALARS } from './support/injection-targets';
import { World } from './support/injection-world';
import { arrivingRegistration, synapseOutput } from './support/registration-fuzz';
import { haproxyCheck } from './support/sidecar-haproxy';
import { evaluateWithTerraform, terraformAvailable } from './support/terraform-offline';

const RUNS = 5;
// A seed that once found a bug: it wrote file.content "<<" unquoted, which YAML 1.1 reads as a merge key.
const FIXED_SEED = 120193992;
const SECRETS = { zk_secret: 'fuzz-secret-'.padEnd(40, 'x') };
// Properties that reach the nftables ruleset.
const FIREWALL_FIELDS = new Set(['privateAddress', 'privateNetwork', 'clientNetworks[0]', 'node.path', 'serviceName', 'firewallRule.description', 'firewallRule.sources[0]']);

let cloudInit: CloudInitSchema;
beforeAll(() => {
  cloudInit = CloudInitSchema.start();
});
afterAll(() => cloudInit.close());

function tool(command: string, args: string[], input: string): { ok: boolean; output: string } {
  const r = spawnSync(command, args, { input, encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw new Error(`${command} could not run (${r.error.message}): install the Debian package that provides it`);
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

/** The scripts a host runs: the apply script, and the ACL bootstrap as Terraform would write it. */
function scripts(world: World): string[] {
  const tf = JSON.parse(world.terraformJson) as { resource?: { null_resource?: Record<string, { provisioner?: Array<{ file?: { content?: string; destination?: string } }> }> } };
  const staged = Object.values(tf.resource?.null_resource ?? {}).flatMap((r) => r.provisioner ?? [])
    .filter((p) => p.file?.content && !/\/user-data$/.test(p.file.destination ?? ''))
    // The secret variable is named after the ensemble's id.
    .map((p) => evaluateTerraformTemplate(p.file!.content!, Object.fromEntries(templateVariables(p.file!.content!).map((v) => [v, SECRETS.zk_secret]))));
  return [world.applyScript, ...staged];
}

/** Everything the real programs say about one world, empty when they all accept it. */
async function verdicts(target: InjectionTarget, world: World): Promise<Record<string, string>> {
  const problems: Record<string, string> = {};
  const cloud = await cloudInit.check(world.userData);
  if (!cloud.ok) problems.cloudInit = cloud.error;
  // cloud-init reads YAML 1.1; we write YAML 1.2: both must read the same document.
  else if (JSON.stringify(cloud.config) !== JSON.stringify(parse(world.userData))) problems.cloudInit = 'cloud-init reads the document differently';
  if (target.haproxy) {
    const r = haproxyCheck(fileContent(world.userData, '/etc/smartstack/haproxy-bootstrap.cfg'));
    if (r.status !== 0) problems.haproxy = r.output;
  }
  scripts(world).forEach((script, i) => {
    const r = tool('sh', ['-n'], script);
    if (!r.ok) problems[`script ${i}`] = r.output;
  });
  if (FIREWALL_FIELDS.has(target.field)) {
    const r = tool('nft', ['-c', '-f', '/dev/stdin'], fileContent(world.userData, '/etc/smartstack/nftables.nft'));
    if (!r.ok) problems.nft = r.output;
  }
  return problems;
}

describe('accepted values make files the real programs accept', () => {
  test('the checks can fail', async () => {
    expect((await cloudInit.check('#cloud-config\nfs_setup:\n  - label: on\n    device: /dev/vdb\n')).error).toMatch(/True is not of type 'string'/);
    expect((await cloudInit.check('#cloud-config\nwrite_files: [\n')).ok).toBe(false);
    expect(haproxyCheck('global\n  bogus-directive\n').status).not.toBe(0);
    expect(tool('sh', ['-n'], 'if then fi\n').ok).toBe(false);
  });

  test.each(TARGETS.map((t) => [`${t.kind} ${t.field}`, t] as const))('%s', async (_name, target: InjectionTarget) => {
    let accepted = 0;
    const property = fc.asyncProperty(valuesFor(target, true), async (value) => {
      const { world } = attempt(target, value);
      if (!world) return;
      accepted++;
      expect({ field: target.field, value, problems: await verdicts(target, world) }).toEqual({ field: target.field, value, problems: {} });
    });
    // The sample first, so there is always an accepted value to check.
    await fc.assert(property, fuzzParameters(RUNS, [[target.sample]]));
    // Fixed cases: every YAML 1.1 special scalar, then runs from the fixed seed.
    await fc.assert(property, { numRuns: RUNS + YAML_SCALARS.length, seed: FIXED_SEED, examples: YAML_SCALARS.map((s) => [s] as [string]) });
    expect(accepted).toBeGreaterThan(0);
  });
});

(terraformAvailable() ? test : test.skip)('Terraform reads literal ${ and %{ in files as text, and the secrets beside them as expressions', () => {
  const target = TARGETS.find((t) => t.field === 'file.content')!;
  // Sampled values the construct accepts (file content refuses what cloud-init's YAML cannot carry).
  const sampled = fc.sample(valuesFor(target, true), { numRuns: 30, ...fuzzParameters(30) }).filter((v) => attempt(target, v).world).slice(0, 6);
  const contents = ['${a', '}${', '$${x}', '%{ if x }', '${"$"}', 'x$', ...sampled];
  const userData = contents.map((value) => {
    const tf = JSON.parse(attempt(target, value).world!.terraformJson) as { resource: { null_resource: Record<string, { provisioner: Array<{ file?: { content: string; destination: string } }> }> } };
    return Object.values(tf.resource.null_resource).flatMap((r) => r.provisioner).find((p) => p.file?.destination.endsWith('/user-data'))!.file!.content;
  });
  const evaluated = evaluateWithTerraform(userData, SECRETS);
  evaluated.forEach((document, i) => {
    const files = new Map((parse(document).write_files as Array<{ path: string; content: string }>).map((f) => [f.path, f.content]));
    expect({ value: contents[i], content: files.get('/etc/app.conf') }).toEqual({ value: contents[i], content: contents[i] });
    expect(JSON.parse(files.get('/etc/smartstack/credentials/zookeeper-zk-reader.json')!).password).toMatch(/^[0-9a-f]{64}$/);
    expect(document).toBe(evaluateTerraformTemplate(userData[i], SECRETS));
  });
});

test('haproxy -c accepts the haproxy.cfg synapse writes, whatever registrations it accepted', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(arrivingRegistration, { minLength: 1, maxLength: 4 }), async (arriving) => {
      const accepted: Registration[] = arriving.flatMap((a) => (a.decoded.ok ? [a.decoded.registration] : []));
      fc.pre(accepted.length > 0);
      const r = checkHaproxyConfig((await synapseOutput(accepted)).config);
      expect({ registrations: accepted, haproxy: r.ok ? 'valid' : r.output }).toEqual({ registrations: accepted, haproxy: 'valid' });
    }),
    fuzzParameters(30),
  );
});
