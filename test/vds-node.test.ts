import { AnnotationMetadataEntryType, Testing, TerraformOutput, TerraformStack } from 'cdktf';
import { parse } from 'yaml';
import { VdsNode, VdsNodeProps } from '../lib';
import { unescapeTerraformTemplate } from '../lib/cloud-init/synthesized-documents';
import { escapeTerraformTemplate } from '../lib/render/terraform-string';
import { fileContent } from './support/cloud-config-files';

function stack(): TerraformStack {
  return new TerraformStack(Testing.app(), 'test');
}

const base: VdsNodeProps = { privateAddress: '10.10.0.21', memoryMiB: 2048 };

function synthJson(s: TerraformStack): any {
  return JSON.parse(Testing.synth(s));
}

describe('VdsNode', () => {
  test('delivers its document over SSH with a hash trigger, a sensitive key variable and one null provider', () => {
    const s = stack();
    const a = new VdsNode(s, 'app1', { ...base, sshAddress: '192.0.2.10', sshUser: 'deploy', sshHostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk' });
    new VdsNode(s, 'app2', { ...base, privateAddress: '10.10.0.22' });
    a.cloudConfig.addPackage('haproxy');
    const json = synthJson(s);

    expect(Object.keys(json.provider.null)).toHaveLength(1);
    expect(json.variable.ssh_private_key).toMatchObject({ sensitive: true, type: 'string' });
    const resources = Object.values(json.resource.null_resource) as any[];
    expect(resources).toHaveLength(2);
    const app1 = resources.find((r) => r.connection.host === '192.0.2.10');
    expect(app1.connection).toMatchObject({ type: 'ssh', user: 'deploy', port: 22, private_key: '${var.ssh_private_key}', host_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk' });
    expect(app1.triggers.cloud_init_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(app1.provisioner.map((p: object) => Object.keys(p)[0])).toEqual(['remote-exec', 'file', 'file', 'remote-exec']);
    // The document is staged in a fresh directory only the SSH user can read.
    expect(app1.provisioner[0]['remote-exec'].inline).toEqual(['rm -rf /tmp/smartstack-app1 && mkdir -m 0700 /tmp/smartstack-app1']);
    expect(app1.provisioner[1].file.destination).toBe('/tmp/smartstack-app1/user-data');
    expect(parse(app1.provisioner[1].file.content).packages).toEqual(['haproxy']);
    expect(app1.provisioner[2].file.destination).toBe('/tmp/smartstack-app1/apply.sh');
    expect(app1.provisioner[3]['remote-exec'].inline).toEqual(['sh /tmp/smartstack-app1/apply.sh']);
  });

  test('the trigger changes exactly when the document changes', () => {
    const trigger = (extraPackage?: string) => {
      const s = stack();
      const n = new VdsNode(s, 'app1', base);
      n.cloudConfig.addPackage('haproxy');
      if (extraPackage) n.cloudConfig.addPackage(extraPackage);
      return (Object.values(synthJson(s).resource.null_resource)[0] as any).triggers.cloud_init_sha256;
    };
    expect(trigger()).toBe(trigger());
    expect(trigger('jq')).not.toBe(trigger());
  });

  test('file content reaches cloud-init as written: tabs and CRs quoted, what its YAML cannot carry refused', () => {
    const n = new VdsNode(stack(), 'app1', base);
    n.cloudConfig.addFile({ path: '/etc/tab', content: 'key\ton' });
    n.cloudConfig.addFile({ path: '/etc/crlf', content: 'a\r\nb\r\n' });
    expect(n.renderUserData()).toContain('content: "key\\ton"');
    expect(fileContent(n.renderUserData(), '/etc/crlf')).toBe('a\r\nb\r\n');
    expect(() => n.cloudConfig.addFile({ path: '/etc/nel', content: 'a\u0085b\n' })).toThrow(
      /CloudConfig: file.content = "a\u0085b\\n": holds U\+0085, which cloud-init's YAML cannot carry/,
    );
  });

  test('a secret placeholder in literal content must name a registered secret', () => {
    const n = new VdsNode(stack(), 'app1', base);
    expect(() => n.cloudConfig.addFile({ path: '/etc/x.conf', content: 'password=@@secret:zk/admin/password@@\n' })).toThrow(
      'CloudConfig: file.content = "password=@@secret:zk/admin/password@@\\n": holds @@secret:zk/admin/password@@, the form of an apply-time secret, but no secret of this document has that name',
    );
    const placeholder = n.cloudConfig.secrets.placeholder('zk/admin/password', '${var.x}');
    n.cloudConfig.addFile({ path: '/etc/x.conf', content: `password=${placeholder}\n` });
    expect(n.cloudConfig.secrets.usedIn(n.renderUserData())).toEqual(['zk/admin/password']);
  });

  test('escapes literal ${ and %{ for Terraform and hashes the unescaped text', () => {
    const s = stack();
    const n = new VdsNode(s, 'app1', base);
    n.cloudConfig.addFile({ path: '/etc/x.sh', content: 'echo ${HOME} %{host}\n' });
    const resource = Object.values(synthJson(s).resource.null_resource)[0] as any;
    expect(resource.provisioner[1].file.content).toContain('echo ${"$"}{HOME} %%{host}');
    expect(fileContent(n.renderUserData(), '/etc/x.sh')).toBe('echo ${HOME} %{host}\n');
    expect(escapeTerraformTemplate('a ${b} %{c} $d %e $${f}')).toBe('a ${"$"}{b} %%{c} $d %e ${"$$"}{f}');
    expect(unescapeTerraformTemplate(escapeTerraformTemplate('x ${a} $${b} %{c}'))).toBe('x ${a} $${b} %{c}');
  });

  test('userData resolves, at synth, to the document with roles added after construction', () => {
    const s = stack();
    const n = new VdsNode(s, 'app1', { ...base, deliverOverSsh: false });
    new TerraformOutput(s, 'ud', { value: n.userData });
    n.cloudConfig.addPackage('jq');
    const json = synthJson(s);
    expect(json.resource).toBeUndefined();
    expect(parse(json.output.ud.value).packages).toEqual(['jq']);
  });

  test('warns, saying why, when a disk is named by an unstable path', () => {
    const s = stack();
    const n = new VdsNode(s, 'zk1', { ...base, disks: [{ name: 'data', device: '/dev/vdb' }] });
    const warnings = n.node.metadata.filter((m) => m.type === AnnotationMetadataEntryType.WARN).map((m) => String(m.data));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/disks\[0\]\.device = "\/dev\/vdb".*can change.*\/dev\/disk\/by-id/);
    const stable = new VdsNode(s, 'zk2', { ...base, privateAddress: '10.10.0.22', disks: [{ name: 'data', device: '/dev/disk/by-id/virtio-d' }] });
    expect(stable.node.metadata.filter((m) => m.type === AnnotationMetadataEntryType.WARN)).toHaveLength(0);
  });

  test.each<[string, Partial<VdsNodeProps>, RegExp]>([
    ['privateAddress', { privateAddress: '10.10.0.300' }, /VdsNode 'test\/n': privateAddress = "10.10.0.300": expected an IPv4 address/],
    ['hostname', { hostname: 'App_1' }, /VdsNode 'test\/n': hostname = "App_1": expected a DNS label/],
    ['privateNetwork', { privateNetwork: '10.20.0.0/16' }, /privateNetwork = "10.20.0.0\/16": expected an IPv4 CIDR block that contains privateAddress 10.10.0.21/],
    ['sshUser', { sshUser: 'root;rm' }, /sshUser = "root;rm": expected a Unix user name/],
    ['sshPort', { sshPort: 0 }, /sshPort = 0: expected a TCP port/],
    ['sshHostKey', { sshHostKey: 'ssh-ed25519 AAAA\nevil' }, /sshHostKey = "ssh-ed25519 AAAA\\nevil": contains control character U\+000A/],
    ['memoryMiB', { memoryMiB: 100 }, /memoryMiB = 100: expected a whole number of MiB, at least 512/],
    ['disk device', { disks: [{ name: 'd', device: 'vdb' }] }, /disks\[0\]\.device = "vdb": expected a device path under \/dev\//],
    ['disk name twice', { disks: [{ name: 'd', device: '/dev/disk/by-id/a' }, { name: 'd', device: '/dev/disk/by-id/b' }] }, /disks\[1\]\.name = "d": two disks have this name/],
    ['device twice', { disks: [{ name: 'a', device: '/dev/disk/by-id/a' }, { name: 'b', device: '/dev/disk/by-id/a' }] }, /disks\[1\]\.device = "\/dev\/disk\/by-id\/a": two disks name this device/],
  ])('rejects a bad %s, naming construct, field and value', (_name, props, message) => {
    expect(() => new VdsNode(stack(), 'n', { ...base, ...props })).toThrow(message);
  });

  test('a port claimed twice on a host names both owners', () => {
    const s = stack();
    const n = new VdsNode(s, 'app1', base);
    n.reservePort(8080, n, 'sidecar.statsPort');
    expect(() => n.reservePort(8080, s, 'provides[0].port')).toThrow(/provides\[0\]\.port = 8080: port 8080 on host app1 is already used by test\/app1 \(sidecar.statsPort\)/);
  });

  test('re-applying keeps SSH host keys, root login and the apt sources as they are', () => {
    const doc = parse(new VdsNode(stack(), 'app1', base).renderUserData());
    expect(doc).toMatchObject({ disable_root: false, ssh_deletekeys: false, apt: { preserve_sources_list: true } });
  });

  test('an addition after a rendering shows in the next rendering and in the apply script', () => {
    const n = new VdsNode(stack(), 'app1', base);
    const before = n.renderApplyScript();
    n.cloudConfig.addPackage('jq');
    expect(parse(n.renderUserData()).packages).toEqual(['jq']);
    expect(n.renderApplyScript()).not.toBe(before);
    n.addReadinessCheck({ description: 'jq answers', script: 'jq --version' });
    expect(n.renderApplyScript()).toContain("begin 'jq answers'\njq --version");
  });

  test('renders the same bytes twice', () => {
    const render = () => {
      const n = new VdsNode(stack(), 'app1', base);
      n.cloudConfig.addPackage('b');
      n.cloudConfig.addPackage('a');
      n.cloudConfig.addFirewallRule({ description: 'svc', ports: [8080], sources: ['10.10.0.0/24'] });
      return n.renderUserData() + n.renderApplyScript();
    };
    expect(render()).toBe(render());
  });
});
