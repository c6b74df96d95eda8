import { createHash, randomBytes } from 'crypto';
import { readdirSync, readFileSync, statSync } from 'fs';
import { join } from 'path';
import { gunzipSync } from 'zlib';
import { Testing, TerraformOutput, TerraformStack } from 'cdktf';
import { parse } from 'yaml';
import { DeliveryResource, HaproxySidecar, SmartStackService, VdsDisk, VdsNode, ZookeeperEnsemble } from '../lib';
import { evaluateTerraformTemplate } from '../lib/cloud-init/terraform-template';
import { synthesizeExample } from './support/example-synth';
import { evaluateWithTerraform, terraformAvailable, validateAndPlan } from './support/terraform-offline';

const haveTerraform = terraformAvailable();
if (!haveTerraform) {
  const message = 'terraform is not on the PATH: the terraform validate/plan tests cannot run (install terraform >= 1.4)';
  if (process.env.CI) throw new Error(message);
  console.warn(message);
}
const describeWithTerraform = haveTerraform ? describe : describe.skip;

describeWithTerraform('terraform (offline, null_resource mapped to terraform_data)', () => {
  test('the default example validates and plans one apply per host, rolled out in order', () => {
    const { stackJson } = synthesizeExample();
    const { validate, plan } = validateAndPlan(stackJson, { ssh_private_key: 'not-a-real-key', zk_secret: 'a'.repeat(32) });
    expect(validate).toContain('The configuration is valid');
    // Six hosts, the ZooKeeper membership after the last member, and the ACL bootstrap after that.
    expect(plan).toContain('Plan: 8 to add, 0 to change, 0 to destroy.');
    expect(plan).toContain('zk_connection_string = "10.10.0.11:2181,10.10.0.12:2181,10.10.0.13:2181"');
    // The key is sensitive: the plan must not print it.
    expect(plan).not.toContain('not-a-real-key');
  });

  test('literal ${...} and %{...} in rendered files survive Terraform as text', () => {
    const stack = new TerraformStack(Testing.app(), 'escape');
    const node = new VdsNode(stack, 'app1', { privateAddress: '10.10.0.21', memoryMiB: 1024 });
    node.cloudConfig.addFile({ path: '/etc/x.service', content: 'ExecReload=/bin/kill -USR2 ${MAINPID}\nserver_options=%{host}:%{port}\n' });
    const json = JSON.parse(Testing.synth(stack));
    const { plan } = validateAndPlan(json, { ssh_private_key: 'k' });
    expect(plan).toContain('Plan: 1 to add');
  });

  test('a ZooKeeper secret shorter than 32 characters is refused at plan, naming the variable', () => {
    const { stackJson } = synthesizeExample();
    expect(() => validateAndPlan(stackJson, { ssh_private_key: 'k', zk_secret: 'short' })).toThrow(/zk_secret must be at least 32 characters/);
  });

  test('no secret and nothing derived from one appears in the synthesized output or the plan', () => {
    const { outdir, stackJson } = synthesizeExample();
    const secret = randomBytes(24).toString('base64');
    const sshKey = `-----BEGIN OPENSSH PRIVATE KEY-----${randomBytes(48).toString('base64')}`;
    const { plan } = validateAndPlan(stackJson, { ssh_private_key: sshKey, zk_secret: secret });
    const sha256 = (text: string, encoding: 'hex' | 'base64') => createHash('sha256').update(text).digest(encoding);
    const derived = ['admin', 'reader', 'registrar-user-service'].flatMap((identity) => {
      const password = sha256(`${identity}:${secret}`, 'hex');
      return [password, sha256(`${identity}:${password}`, 'base64')];
    });
    const synthesized = readdirSync(join(outdir, 'stacks', 'oslo'))
      .filter((f) => statSync(join(outdir, 'stacks', 'oslo', f)).isFile())
      .map((f) => readFileSync(join(outdir, 'stacks', 'oslo', f), 'utf8'))
      .join('\n');
    expect(synthesized).toContain('var.zk_secret');
    for (const value of [secret, sshKey, ...derived]) {
      expect(synthesized.includes(value)).toBe(false);
      expect(plan.includes(value)).toBe(false);
    }
    // What the plan shows instead of each host's document and trigger.
    expect(plan).toContain('(sensitive value)');
  });

  test('Terraform evaluates the secrets in the documents exactly as smartstack local does', () => {
    const { stackJson } = synthesizeExample();
    const resources = (stackJson.resource as any).null_resource as Record<string, any>;
    const contents = Object.values(resources).flatMap((r) => (r.provisioner as any[]).map((p) => p.file?.content).filter(Boolean)) as string[];
    const withSecrets = contents.filter((c) => c.includes('var.zk_secret'));
    // The ACL and membership scripts and the documents of the hosts that hold credentials.
    expect(withSecrets.length).toBe(8);
    const variables = { zk_secret: randomBytes(32).toString('hex') };
    const byTerraform = evaluateWithTerraform(withSecrets, variables);
    expect(byTerraform).toEqual(withSecrets.map((c) => evaluateTerraformTemplate(c, variables)));
    expect(byTerraform.join('\n')).toMatch(/addauth digest admin:[0-9a-f]{64}\n/);
  });

  test('userDataGzipBase64 is the document as userData gives it, gzipped, secrets and hostile literal text included, and well under 16 KiB', () => {
    const stack = new TerraformStack(Testing.app(), 'gzip');
    const members = [1, 2, 3].map((i) => new VdsNode(stack, `zk${i}`, {
      privateAddress: `10.10.0.${10 + i}`, memoryMiB: 4096, deliverOverSsh: i !== 1,
      disks: [{ name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i}-data` }, { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i}-txlog` }],
    }));
    members[0].cloudConfig.addFile({ path: '/etc/x', content: 'a "quoted" \\ back ${MAINPID} $${two} %{dir} \t tab\r\n' });
    new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
    new TerraformOutput(stack, 'raw', { value: members[0].userData });
    new TerraformOutput(stack, 'gz', { value: members[0].userDataGzipBase64 });
    const outputs = JSON.parse(Testing.synth(stack)).output as Record<string, { value: string }>;
    const [raw, gz] = evaluateWithTerraform([outputs.raw.value, outputs.gz.value], { zk_secret: randomBytes(32).toString('hex') });
    expect(gunzipSync(Buffer.from(gz, 'base64')).toString('utf8')).toBe(raw);
    const files = (parse(raw) as { write_files: Array<{ path: string; content: string }> }).write_files;
    expect(files.find((f) => f.path === '/etc/x')?.content).toBe('a "quoted" \\ back ${MAINPID} $${two} %{dir} \t tab\r\n');
    expect(raw).not.toContain('@@secret');
    expect(raw).toMatch(/superDigest=admin:[A-Za-z0-9+/=]{44}\n/);
    expect(raw.length).toBeGreaterThan(16 * 1024);
    expect(gz.length).toBeLessThan(16 * 1024);
  });

  test('a stack delivered by terraform_data needs no provider: it validates and plans as synthesized, each delivery moved from its null_resource with the same triggers', () => {
    const build = (deliveryResource?: DeliveryResource) => {
      const stack = new TerraformStack(Testing.app(), 'builtin');
      const node = (name: string, n: number, disks?: VdsDisk[]) => new VdsNode(stack, name, { privateAddress: `10.10.0.${n}`, memoryMiB: 4096, disks, deliveryResource });
      const members = [1, 2, 3].map((i) => node(`zk${i}`, 10 + i, [{ name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i}-data` }, { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i}-txlog` }]));
      const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
      const users = new SmartStackService(stack, 'users', { ensemble: zk, port: 8080, localPort: 3210 });
      new HaproxySidecar(node('app1', 55), 'sidecar', { provides: [users] });
      new HaproxySidecar(node('web1', 30), 'sidecar', { consumes: [users] });
      return JSON.parse(Testing.synth(stack)) as Record<string, any>;
    };
    const withNull = build();
    const builtin = build(DeliveryResource.TERRAFORM_DATA);
    expect(builtin.resource.null_resource).toBeUndefined();
    expect(builtin.provider).toBeUndefined();
    expect(builtin.terraform?.required_providers ?? {}).toEqual({});
    const names = Object.keys(withNull.resource.null_resource).sort();
    expect(Object.keys(builtin.resource.terraform_data).sort()).toEqual(names);
    expect(builtin.moved).toEqual(expect.arrayContaining(names.map((n) => ({ from: `null_resource.${n}`, to: `terraform_data.${n}` }))));
    for (const n of names) {
      const { triggers, depends_on: dependsOn, ...rest } = withNull.resource.null_resource[n];
      const { triggers_replace: triggersReplace, depends_on: builtinDependsOn, ...builtinRest } = builtin.resource.terraform_data[n];
      // The same triggers: a host moved over is not applied again.
      expect(triggersReplace).toEqual(triggers);
      expect(builtinDependsOn).toEqual(dependsOn?.map((d: string) => d.replace(/^null_resource\./, 'terraform_data.')));
      expect(JSON.stringify(builtinRest).replace(/"\/\/":\{[^]*?\}\},?/g, '')).toEqual(JSON.stringify(rest).replace(/"\/\/":\{[^]*?\}\},?/g, ''));
    }
    const { validate, plan } = validateAndPlan(builtin, { ssh_private_key: 'not-a-real-key', zk_secret: 'a'.repeat(32) });
    expect(validate).toContain('The configuration is valid');
    expect(plan).toContain('Plan: 7 to add, 0 to change, 0 to destroy.');
  });

  test('deliveryResource on a host that is not delivered over SSH is refused, naming the field', () => {
    const stack = new TerraformStack(Testing.app(), 'refused');
    expect(() => new VdsNode(stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 1024, deliverOverSsh: false, deliveryResource: DeliveryResource.TERRAFORM_DATA })).toThrow(
      "VdsNode 'refused/app1': deliveryResource = \"terraform_data\": the host is not delivered over SSH (deliverOverSsh: false): leave deliveryResource unset, or deliver it",
    );
    expect(() => new VdsNode(stack, 'app2', { privateAddress: '10.10.0.56', memoryMiB: 1024, deliveryResource: 'null' as DeliveryResource })).toThrow(
      "VdsNode 'refused/app2': deliveryResource = \"null\": expected one of DeliveryResource.NULL_RESOURCE, DeliveryResource.TERRAFORM_DATA",
    );
  });
});
