import { parse } from 'yaml';
import { AnnotationMetadataEntryType, Testing, TerraformOutput, TerraformStack, TerraformVariable } from 'cdktf';
import { HaproxySidecar, SmartStackService, VdsNode, ZookeeperEnsemble, ZookeeperEnsembleProps } from '../lib';
import { defaultHeapMiB } from '../lib/render/zookeeper-config';
import { fileContent, writtenFiles } from './support/cloud-config-files';

function hosts(s: TerraformStack, count: number, memoryMiB = 4096): VdsNode[] {
  return Array.from({ length: count }, (_, i) =>
    new VdsNode(s, `zk${i + 1}`, {
      privateAddress: `10.10.0.${11 + i}`,
      memoryMiB,
      disks: [
        { name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i + 1}-data` },
        { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i + 1}-txlog` },
      ],
    }),
  );
}

function ensemble(props: Partial<ZookeeperEnsembleProps> = {}, count = 3) {
  const s = new TerraformStack(Testing.app(), 'test');
  const members = hosts(s, count);
  const zk = new ZookeeperEnsemble(s, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog', ...props });
  return { s, members, zk };
}

function zooCfg(member: VdsNode): Map<string, string> {
  const text = fileContent(member.renderUserData(), '/etc/zookeeper/smartstack/zoo.cfg');
  return new Map(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split('=', 2) as [string, string]));
}

describe('ZookeeperEnsemble', () => {
  test('renders a tuned zoo.cfg per member with the log and snapshots on separate disks', () => {
    const { members } = ensemble();
    const cfg = zooCfg(members[1]);
    expect(Object.fromEntries(cfg)).toMatchObject({
      tickTime: '2000',
      dataDir: '/var/lib/zookeeper',
      dataLogDir: '/var/lib/zookeeper-txlog',
      clientPortAddress: '10.10.0.12',
      clientPort: '2181',
      preAllocSize: '65536',
      snapCount: '100000',
      'autopurge.purgeInterval': '1',
      'autopurge.snapRetainCount': '3',
      maxClientCnxns: '60',
      '4lw.commands.whitelist': 'srvr,mntr,ruok,conf',
      'admin.enableServer': 'false',
      reconfigEnabled: 'true',
    });
    // The membership is ZooKeeper's dynamic configuration; the synthesized one starts a new ensemble.
    expect([...cfg.keys()].filter((k) => k.startsWith('server.') || k === 'skipACL')).toEqual([]);
    const doc = members[1].renderUserData();
    expect(fileContent(doc, '/etc/zookeeper/smartstack/zoo.cfg.dynamic')).toBe(
      [11, 12, 13].map((n, i) => `server.${i + 1}=10.10.0.${n}:2888:3888:participant;10.10.0.${n}:2181\n`).join(''),
    );
    // myid goes onto the data disk once it is mounted, by the steps that mount it.
    expect(fileContent(doc, '/etc/zookeeper/smartstack/myid')).toBe('2\n');
    const steps = fileContent(doc, '/usr/lib/smartstack/host-steps.sh');
    expect(steps).toContain('filesystem /dev/disk/by-id/virtio-zk2-data zk-data /var/lib/zookeeper ext4 defaults,noatime,nofail');
    expect(steps).toContain('filesystem /dev/disk/by-id/virtio-zk2-txlog zk-txlog /var/lib/zookeeper-txlog ext4 defaults,noatime,nofail');
    expect(steps.indexOf('filesystem /dev/disk/by-id/virtio-zk2-data')).toBeLessThan(steps.indexOf("'/etc/zookeeper/smartstack/myid' '/var/lib/zookeeper/myid'"));
    // cloud-init's own disk modules never see the disks: they format without looking.
    expect(parse(doc)).not.toHaveProperty('fs_setup');
    expect(parse(doc)).not.toHaveProperty('mounts');
    expect(parse(doc).packages).toContain('e2fsprogs');
    const files = writtenFiles(doc);
    expect(files.get('/etc/zookeeper/smartstack/zoo.cfg')).toMatchObject({ owner: 'root:zookeeper', permissions: '0640', defer: true });
    const unit = fileContent(doc, '/etc/systemd/system/zookeeper.service');
    expect(unit).toContain('RequiresMountsFor=/var/lib/zookeeper /var/lib/zookeeper-txlog');
    expect(unit).toContain('AssertPathIsMountPoint=/var/lib/zookeeper\nAssertPathIsMountPoint=/var/lib/zookeeper-txlog\n');
  });

  test('AdminServer, when asked for, binds to localhost only', () => {
    const { members } = ensemble({ adminServerPort: 8180 });
    expect(Object.fromEntries(zooCfg(members[0]))).toMatchObject({ 'admin.enableServer': 'true', 'admin.serverAddress': '127.0.0.1', 'admin.serverPort': '8180' });
  });

  test('sizes the JVM heap from the host memory and keeps it out of swap', () => {
    expect(defaultHeapMiB(4096)).toBe(3072);
    expect(defaultHeapMiB(2048)).toBe(1024);
    expect(defaultHeapMiB(65536)).toBe(31744);
    const { members } = ensemble();
    const doc = members[0].renderUserData();
    expect(fileContent(doc, '/etc/zookeeper/smartstack/java.env')).toMatch(/-Xms3072m -Xmx3072m .*-XX:\+ExitOnOutOfMemoryError/);
    expect(fileContent(doc, '/etc/sysctl.d/60-zookeeper.conf')).toContain('vm.swappiness = 1');
    expect(fileContent(doc, '/etc/systemd/system/zookeeper.service')).toContain('MemorySwapMax=0');
    const big = ensemble({ heapMiB: 2000 });
    expect(fileContent(big.members[0].renderUserData(), '/etc/zookeeper/smartstack/java.env')).toContain('-Xmx2000m');
  });

  test('opens the client port to the members and clientNetworks only, and quorum ports to members only', () => {
    const { members } = ensemble({ clientNetworks: ['10.20.0.0/16'] });
    const nft = fileContent(members[0].renderUserData(), '/etc/smartstack/nftables.nft');
    expect(nft).toContain('tcp dport { 2181 } ip saddr { 10.10.0.11/32, 10.10.0.12/32, 10.10.0.13/32, 10.20.0.0/16 } accept');
    expect(nft).toContain('tcp dport { 2888, 3888 } ip saddr { 10.10.0.11/32, 10.10.0.12/32, 10.10.0.13/32 } accept');
    expect(nft.indexOf('drop')).toBeGreaterThan(nft.lastIndexOf('accept'));
  });

  test('rolls out one member at a time: each waits for the previous, whose apply waits for the quorum', () => {
    const { s, members } = ensemble({}, 5);
    const json = JSON.parse(Testing.synth(s));
    const byHost = (n: number) => Object.entries(json.resource.null_resource).find(([k]) => k.startsWith(`zk${n}_`))!;
    expect((byHost(1)[1] as any).depends_on).toBeUndefined();
    for (let n = 2; n <= 5; n++) {
      expect((byHost(n)[1] as any).depends_on).toEqual([`null_resource.${byHost(n - 1)[0]}`]);
    }
    const script = members[2].renderApplyScript();
    expect(script).toContain('zk_mode 10.10.0.13 2181');
    expect(script).toContain('for peer in 10.10.0.11 10.10.0.12 10.10.0.14 10.10.0.15; do');
    expect(script).toMatch(/did not rejoin the quorum within 300 s/);
  });

  test('exposes the connection string as a property and a Terraform output', () => {
    const { s, zk } = ensemble();
    expect(zk.connectionString).toBe('10.10.0.11:2181,10.10.0.12:2181,10.10.0.13:2181');
    const json = JSON.parse(Testing.synth(s));
    expect(json.output.zk_connection_string.value).toBe(zk.connectionString);
  });

  test('a single member is allowed only as an explicit development ensemble', () => {
    expect(() => ensemble({}, 1)).toThrow(/ZookeeperEnsemble 'test\/zk': members = \["zk1"\]: an ensemble needs at least 3 members/);
    expect(() => ensemble({ allowDevelopmentSize: true }, 1)).not.toThrow();
  });

  test.each<[string, Partial<ZookeeperEnsembleProps>, number, RegExp]>([
    ['an even member count', {}, 4, /members = \["zk1","zk2","zk3","zk4"\]: 4 members tolerate no more failures than 3.*odd number/],
    ['two members, even in development', { allowDevelopmentSize: true }, 2, /members = \["zk1","zk2"\]: 2 members/],
    ['a port clash', { quorumPort: 2181 }, 3, /quorumPort = 2181: the same port as clientPort/],
    ['an unknown disk', { dataDisk: 'nope' }, 3, /dataDisk = "nope": host zk1 \(members\[0\]\) has no such disk; it has \["zk-data","zk-txlog"\]/],
    ['log and snapshots on one device', { txnLogDisk: 'zk-data' }, 3, /txnLogDisk = "zk-data": on host zk1 it is the same device as dataDisk/],
    ['autopurge below 3 snapshots', { autopurgeSnapRetainCount: 2 }, 3, /autopurgeSnapRetainCount = 2/],
    ['a bad 4lw', { fourLetterWords: ['srvr', 'ruok', 'kill'] }, 3, /fourLetterWords = "kill": not a ZooKeeper 3.8 four-letter word/],
    ['no srvr', { fourLetterWords: ['ruok'] }, 3, /fourLetterWords = \["ruok"\]: must include 'srvr'/],
    ['a JVM flag with a space', { jvmFlags: ['-Dx=1 -Dy=2'] }, 3, /jvmFlags\[0\] = "-Dx=1 -Dy=2": expected one JVM flag/],
    ['a heap too big', { heapMiB: 4000 }, 3, /heapMiB = 4000: host zk1 has 4096 MiB/],
    ['a bad client network', { clientNetworks: ['10.0.0.0/33'] }, 3, /clientNetworks\[0\] = "10.0.0.0\/33"/],
    ['min session timeout over max', { minSessionTimeoutMs: 50000 }, 3, /minSessionTimeoutMs = 50000: greater than maxSessionTimeoutMs 40000/],
  ])('rejects %s, naming construct, field and value', (_name, props, count, message) => {
    expect(() => ensemble(props, count)).toThrow(new RegExp(`ZookeeperEnsemble 'test/zk': .*${message.source}`));
  });

  test('rejects the same host or address twice', () => {
    const s = new TerraformStack(Testing.app(), 'test');
    const [a, b] = hosts(s, 2);
    expect(() => new ZookeeperEnsemble(s, 'zk', { members: [a, b, a], dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' })).toThrow(/members\[2\] = "zk1": the same host name as members\[0\]/);
    // A second host with a member's address is refused where it is created.
    expect(() => new VdsNode(s, 'zk9', { privateAddress: '10.10.0.11', memoryMiB: 4096, disks: a.disks })).toThrow(/VdsNode 'test\/zk9': privateAddress = "10.10.0.11": already the private address of VdsNode 'test\/zk1'/);
  });

  test('a port clash with another role on the same host names both', () => {
    const { members } = ensemble();
    expect(() => members[0].reservePort(2181, members[0], 'sidecar.statsPort')).toThrow(/port 2181 on host zk1 is already used by test\/zk \(clientPort\)/);
  });

  test('a rejected ensemble changes no host', () => {
    const s = new TerraformStack(Testing.app(), 'test');
    const members = hosts(s, 3);
    members[2].reservePort(3888, members[2], 'other.port');
    const before = members.map((m) => m.renderUserData());
    expect(() => new ZookeeperEnsemble(s, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' })).toThrow(
      /electionPort = 3888: port 3888 on host zk3 is already used by test\/zk3 \(other.port\)/,
    );
    expect(members.map((m) => m.renderUserData())).toEqual(before);
    expect(members[0].findPortOwner(2181)).toBeUndefined();
  });

  describe('ACLs', () => {
    test('are on by default: a sensitive secret variable, digest auth in a Java argument file, and a bootstrap after every member', () => {
      const { s, members } = ensemble();
      new SmartStackService(s, 'user-service', { ensemble: s.node.findChild('zk') as ZookeeperEnsemble, port: 8080 });
      const json = JSON.parse(Testing.synth(s));
      expect(json.variable.zk_secret).toMatchObject({ sensitive: true, type: 'string' });
      const doc = members[0].renderUserData();
      expect(writtenFiles(doc).get('/etc/zookeeper/smartstack/jvm-auth.args')).toMatchObject({ owner: 'root:zookeeper', permissions: '0640' });
      expect(fileContent(doc, '/etc/zookeeper/smartstack/jvm-auth.args')).toBe(
        '-Dzookeeper.DigestAuthenticationProvider.digestAlg=SHA-256\n-Dzookeeper.DigestAuthenticationProvider.superDigest=admin:@@secret:test/zk/admin/digest@@\n',
      );
      expect(fileContent(doc, '/etc/systemd/system/zookeeper.service')).toContain('ExecStart=/usr/bin/java $JVM_FLAGS @/etc/zookeeper/smartstack/jvm-auth.args ');
      const acl = Object.entries(json.resource.null_resource as Record<string, any>).find(([k]) => k.startsWith('zk_acl_'))![1];
      const resources = Object.keys(json.resource.null_resource);
      expect(acl.depends_on).toEqual(resources.filter((k) => /^zk[123]_cloud-init|^zk_membership_/.test(k)).map((k) => `null_resource.${k}`));
      expect(acl.connection.host).toBe('10.10.0.13');
      const script = acl.provisioner[1].file.content as string;
      expect(script).toContain('addauth digest admin:${sha256(join(":", ["admin", var.zk_secret]))}');
      expect(script).toContain('create /services/user-service\n');
      expect(script).toMatch(/setAcl \/services\/user-service digest:admin:\$\{base64sha256\(.*\)\}:cdrwa,digest:reader:\$\{.*\}:r,digest:registrar-user-service:\$\{.*\}:cdr\n/);
      expect(script).toContain('setAcl / digest:admin:');
      // The member's trigger changes with the secret, which the plan shows only as sensitive.
      expect(acl.triggers.secrets_sha256).toContain('var.zk_secret');
    });

    test('a literal secret is refused without repeating it', () => {
      const message = thrown(() => ensemble({ secret: 'hunter2-hunter2-hunter2-hunter2-hunter2' }));
      expect(message).toContain("ZookeeperEnsemble 'test/zk': secret = \"(hidden)\": expected a reference to a sensitive Terraform variable");
      expect(message).not.toContain('hunter2');
    });

    test('a secret of the user\'s own variable is used for every identity', () => {
      const s = new TerraformStack(Testing.app(), 'test');
      const mine = new TerraformVariable(s, 'mesh_secret', { type: 'string', sensitive: true });
      new ZookeeperEnsemble(s, 'zk', { members: hosts(s, 3), dataDisk: 'zk-data', txnLogDisk: 'zk-txlog', secret: mine.stringValue });
      const json = JSON.parse(Testing.synth(s));
      expect(Object.keys(json.variable)).toEqual(expect.not.arrayContaining(['zk_secret']));
      expect(JSON.stringify(json)).toContain('sha256(join(\\":\\", [\\"admin\\", var.mesh_secret]))');
    });

    test('members not delivered over SSH: a warning, and the script to run as a Terraform string', () => {
      const s = new TerraformStack(Testing.app(), 'test');
      const members = [11, 12, 13].map((n, i) => new VdsNode(s, `zk${i + 1}`, {
        privateAddress: `10.10.0.${n}`, memoryMiB: 4096, deliverOverSsh: false,
        disks: [{ name: 'zk-data', device: `/dev/disk/by-id/d${i}` }, { name: 'zk-txlog', device: `/dev/disk/by-id/t${i}` }],
      }));
      const zk = new ZookeeperEnsemble(s, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
      expect(zk.aclBootstrap).toBeUndefined();
      const warnings = zk.node.metadata.filter((m) => m.type === AnnotationMetadataEntryType.WARN).map((m) => String(m.data));
      expect(warnings).toEqual([
        expect.stringContaining("member zk3 is not delivered over SSH, so nothing changes the running ensemble's membership"),
        expect.stringContaining('ACLs are on but member zk3 is not delivered over SSH, so nothing sets them'),
      ]);
      new TerraformOutput(s, 'acl-script', { value: zk.aclBootstrapScript, sensitive: true });
      const json = JSON.parse(Testing.synth(s));
      expect(json.output['acl-script'].value).toContain('addauth digest admin:${sha256(join(":", ["admin", var.zk_secret]))}');
    });

    test('acls: false leaves the ensemble open as before: no secret, no argument file, no bootstrap', () => {
      const { s, members } = ensemble({ acls: false });
      const json = JSON.parse(Testing.synth(s));
      expect(json.variable?.zk_secret).toBeUndefined();
      expect(writtenFiles(members[0].renderUserData()).has('/etc/zookeeper/smartstack/jvm-auth.args')).toBe(false);
      expect(Object.keys(json.resource.null_resource).some((k) => k.startsWith('zk_acl_'))).toBe(false);
    });
  });

  describe('membership changes (a new synthesis with another members list)', () => {
    /** The default topology's ensemble with the given member numbers (zkN at 10.10.0.(10+N)) and ids. */
    function synth(numbers: number[], memberIds?: number[], props: Partial<ZookeeperEnsembleProps> = {}) {
      const s = new TerraformStack(Testing.app(), 'test');
      const members = numbers.map((n) =>
        new VdsNode(s, `zk${n}`, {
          privateAddress: `10.10.0.${10 + n}`,
          memoryMiB: 4096,
          disks: [
            { name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${n}-data` },
            { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${n}-txlog` },
          ],
        }),
      );
      const zk = new ZookeeperEnsemble(s, 'zk', { members, memberIds, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog', ...props });
      const users = new SmartStackService(s, 'user-service', { ensemble: zk, port: 8080, localPort: 3210 });
      new HaproxySidecar(new VdsNode(s, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048 }), 'sidecar', { provides: [users] });
      const json = JSON.parse(Testing.synth(s));
      const resources = json.resource.null_resource as Record<string, any>;
      const resource = (prefix: string) => Object.entries(resources).find(([k]) => k.startsWith(prefix))!;
      const address = (prefix: string) => `null_resource.${resource(prefix)[0]}`;
      const membershipScript = resource('zk_membership_')[1].provisioner[1].file.content as string;
      return { s, members, zk, json, resource, address, membershipScript };
    }
    const startFiles = ['/etc/zookeeper/smartstack/zoo.cfg', '/etc/zookeeper/smartstack/java.env', '/etc/zookeeper/smartstack/myid', '/etc/zookeeper/smartstack/jvm-auth.args', '/etc/systemd/system/zookeeper.service'];
    const firewall = (member: VdsNode) => fileContent(member.renderUserData(), '/etc/smartstack/nftables.nft');

    test('growing 3 to 5: the running members keep what they start with, admit the new ones first, and one reconfig adds them', () => {
      const three = synth([1, 2, 3]);
      const five = synth([1, 2, 3, 4, 5]);
      for (const i of [0, 1, 2]) {
        const before = three.members[i].renderUserData();
        const after = five.members[i].renderUserData();
        // Nothing a running member reads at start changes, so its apply does not restart it ...
        for (const path of startFiles) expect({ path, content: fileContent(after, path) }).toEqual({ path, content: fileContent(before, path) });
        // ... but its firewall lets the new members reach the quorum and election ports.
        expect(firewall(five.members[i])).toMatch(/tcp dport \{ 2888, 3888 \} ip saddr \{ 10\.10\.0\.11\/32, 10\.10\.0\.12\/32, 10\.10\.0\.13\/32, 10\.10\.0\.14\/32, 10\.10\.0\.15\/32 \} accept/);
      }
      // The new members come after the running ones, one at a time; the reconfig after all of them, the ACLs last.
      for (const n of [2, 3, 4, 5]) expect(five.resource(`zk${n}_cloud-init`)[1].depends_on).toEqual([five.address(`zk${n - 1}_cloud-init`)]);
      expect(five.resource('zk_membership_')[1].depends_on).toEqual([1, 2, 3, 4, 5].map((n) => five.address(`zk${n}_cloud-init`)));
      expect(five.resource('zk_acl_')[1].depends_on).toContain(five.address('zk_membership_'));
      expect(five.membershipScript).toContain('addauth digest admin:${sha256(join(":", ["admin", var.zk_secret]))}');
      expect(five.membershipScript).toContain(
        `reconfig "$want" -members '${[1, 2, 3, 4, 5].map((n) => `server.${n}=10.10.0.${10 + n}:2888:3888:participant;10.10.0.${10 + n}:2181`).join(',')}'\n`,
      );
      // zkCli may use any synthesized member; new ones count only once they serve.
      expect(five.membershipScript).toContain('zkCli.sh -server 10.10.0.11:2181,10.10.0.12:2181,10.10.0.13:2181,10.10.0.14:2181,10.10.0.15:2181 ');
      expect(five.membershipScript).toContain('for joiner in 1:10.10.0.11 2:10.10.0.12 3:10.10.0.13 4:10.10.0.14 5:10.10.0.15 ; do');
      // The script changes with the membership, so Terraform runs it again.
      expect(five.resource('zk_membership_')[1].triggers.script_sha256).not.toBe(three.resource('zk_membership_')[1].triggers.script_sha256);
      // Sidecars connect to all five.
      const nerve = JSON.parse(fileContent(synthDocument(five, 'app1'), '/etc/smartstack/nerve.conf.json'));
      expect(nerve.services['user-service'].zk_hosts).toEqual([1, 2, 3, 4, 5].map((n) => `10.10.0.${10 + n}:2181`));
    });

    test('a member replaced by a new host: the new host takes a new id, applied after the running members', () => {
      // zk3 leaves; zk6 (a new address) joins with id 6; the list order does not decide the rollout order.
      const replaced = synth([6, 1, 2, 4, 5], [6, 1, 2, 4, 5]);
      expect(replaced.zk.memberIds).toEqual([6, 1, 2, 4, 5]);
      expect(fileContent(replaced.members[0].renderUserData(), '/etc/zookeeper/smartstack/myid')).toBe('6\n');
      expect(replaced.resource('zk1_cloud-init')[1].depends_on).toBeUndefined();
      expect(replaced.resource('zk4_cloud-init')[1].depends_on).toEqual([replaced.address('zk2_cloud-init')]);
      expect(replaced.resource('zk6_cloud-init')[1].depends_on).toEqual([replaced.address('zk5_cloud-init')]);
      expect(replaced.resource('zk_membership_')[1].connection.host).toBe('10.10.0.16');
      expect(replaced.membershipScript).toContain(
        `reconfig "$want" -members '${[1, 2, 4, 5, 6].map((n) => `server.${n}=10.10.0.${10 + n}:2888:3888:participant;10.10.0.${10 + n}:2181`).join(',')}'\n`,
      );
      // Members that leave are removed before the new one is added: the old leader's firewall does not admit it.
      expect(replaced.membershipScript.indexOf('reconfig "$remaining" -remove "$leaving"')).toBeLessThan(replaced.membershipScript.indexOf('reconfig "$want" -members'));
      // The old member's address is gone from every member's quorum rule and from the connection string.
      expect(firewall(replaced.members[1])).not.toContain('10.10.0.13');
      expect(replaced.zk.connectionString).toBe('10.10.0.16:2181,10.10.0.11:2181,10.10.0.12:2181,10.10.0.14:2181,10.10.0.15:2181');
      // A joiner takes the running ensemble's committed membership plus itself, and refuses an id that is taken.
      const step = fileContent(replaced.members[0].renderUserData(), '/usr/lib/smartstack/host-steps.sh');
      expect(step).toContain("echo 'server.6=10.10.0.16:2888:3888:participant;10.10.0.16:2181'");
      expect(step).toContain("''|'server.6=10.10.0.16:'*) ;;");
      expect(step).toContain('for peer in 10.10.0.11 10.10.0.12 10.10.0.14 10.10.0.15; do');
    });

    test('ZooKeeper is restarted by its own step, only when what it reads at start changed', () => {
      const { members } = synth([1, 2, 3]);
      const steps = fileContent(members[0].renderUserData(), '/usr/lib/smartstack/host-steps.sh');
      const restartAll = steps.split('\n').find((l) => l.startsWith('run systemctl restart '))!;
      expect(restartAll).not.toContain('zookeeper.service');
      // Not the membership: that is ZooKeeper's own once it runs.
      expect(steps).toContain(
        'inputs=$(cat /etc/zookeeper/smartstack/zoo.cfg /etc/zookeeper/smartstack/java.env /etc/zookeeper/smartstack/log4j.properties /etc/zookeeper/smartstack/myid /etc/zookeeper/smartstack/jvm-auth.args /etc/systemd/system/zookeeper.service | sha256sum',
      );
      expect(steps).toContain('run systemctl restart zookeeper.service');
      expect(fileContent(members[0].renderUserData(), '/etc/systemd/system/zookeeper.service')).toContain('QuorumPeerMain /var/lib/zookeeper/conf/zoo.cfg\n');
    });

    test('without ACLs there is no superuser: any client may reconfigure (skipACL), and the script authenticates as nobody', () => {
      const open = synth([1, 2, 3], undefined, { acls: false });
      expect(fileContent(open.members[0].renderUserData(), '/etc/zookeeper/smartstack/zoo.cfg')).toContain('\nskipACL=yes\n');
      expect(open.membershipScript).not.toContain('addauth');
      expect(open.json.variable?.zk_secret).toBeUndefined();
    });

    test.each<[string, number[], RegExp]>([
      ['too few ids', [1, 2], /memberIds = \[1,2\]: 2 ids for 3 members/],
      ['an id twice', [1, 2, 1], /memberIds\[2\] = 1: the same id as memberIds\[0\] \(zk1\)/],
      ['an id out of range', [1, 2, 256], /memberIds\[2\] = 256: expected a ZooKeeper server id 1-255/],
      ['a fraction', [1, 2, 2.5], /memberIds\[2\] = 2.5: expected a ZooKeeper server id 1-255/],
    ])('rejects %s, naming construct, field and value', (_name, ids, message) => {
      expect(() => synth([1, 2, 3], ids)).toThrow(message);
    });
  });
});

function synthDocument(synthesis: { s: TerraformStack }, hostname: string): string {
  return (synthesis.s.node.findChild(hostname) as VdsNode).renderUserData();
}

function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}
