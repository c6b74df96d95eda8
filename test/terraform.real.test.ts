import { Testing, TerraformStack } from 'cdktf';
import { VdsNode } from '../lib';
import { synthesizeExample } from './support/example-synth';
import { terraformAvailable, validateAndPlan } from './support/terraform-offline';

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
    const { validate, plan } = validateAndPlan(stackJson, { ssh_private_key: 'not-a-real-key' });
    expect(validate).toContain('The configuration is valid');
    expect(plan).toContain('Plan: 6 to add, 0 to change, 0 to destroy.');
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
});
