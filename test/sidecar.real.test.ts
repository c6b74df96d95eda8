import { spawnSync } from 'child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { basename, join } from 'path';
import { AgentRuntime, Balance, HaproxySidecar, HealthCheck, ServiceMode, SmartStackService, VdsNode } from '../lib';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { SynapseConfig, SynapseServiceConfig } from '../lib/schema/synapse-config';
import { buildArticleTopology } from '../examples/smartstack-topology';
import { fileContent, writtenFiles } from './support/cloud-config-files';
import { AGENT_USER_IDS, haproxyCheck, runHaproxyUnit, withAgentAccounts } from './support/sidecar-haproxy';
import { meshFixture } from './support/sidecar-fixtures';

/** The article's topology plus one that exercises every option, each host with its sidecar. */
function topologies(): Array<{ name: string; host: VdsNode; sidecar: HaproxySidecar }> {
  const a = meshFixture();
  const article = buildArticleTopology(a.stack, a.zk);

  // Without ACLs: its web2 runs Airbnb's Ruby agents, which cannot authenticate (the article's has them on).
  const f = meshFixture({ acls: false });
  const users = new SmartStackService(f.stack, 'user-service', {
    ensemble: f.zk, port: 8080, localPort: 3210,
    healthCheck: HealthCheck.http({ path: '/health?deep=1', expectStatus: 200, expectBody: 'ok', intervalSeconds: 0.5, timeoutSeconds: 0.25 }),
    labels: { zone: 'oslo-1' }, weight: 20,
  });
  const cache = new SmartStackService(f.stack, 'cache', {
    ensemble: f.zk, port: 6379, localPort: 3300, mode: ServiceMode.TCP, balance: Balance.LEAST_CONN,
    connectTimeoutMs: 250, serverSlots: 64, redispatch: false,
    defaultServers: [{ name: 'legacy', host: '10.20.0.5', port: 6379 }], keepDefaultServers: true,
  });
  const orders = new SmartStackService(f.stack, 'orders.v2', {
    ensemble: f.zk, port: 9000, localPort: 3211, retryNonIdempotent: true, balance: Balance.SOURCE, retryOn: ['conn-failure', '503', 'response-timeout'],
    healthCheck: HealthCheck.tcp(), defaultServers: [{ host: 'orders.legacy.internal', port: 80 }],
  });
  const both = f.host('app1', 55);
  const web = f.host('web1', 30);
  const ruby = f.host('web2', 31);
  return [
    ...article.sidecars.map((sidecar) => ({ name: `article ${sidecar.host.hostname}`, host: sidecar.host, sidecar })),
    { name: 'mixed app1', host: both, sidecar: new HaproxySidecar(both, 'sidecar', { provides: [users, cache], consumes: [orders] }) },
    { name: 'mixed web1', host: web, sidecar: new HaproxySidecar(web, 'sidecar', { consumes: [users, cache, orders], maxConnections: 8000 }) },
    { name: 'mixed web2 (ruby)', host: ruby, sidecar: new HaproxySidecar(ruby, 'sidecar', { consumes: [users, cache], runtime: AgentRuntime.ruby(), statsPort: 9100 }) },
  ];
}

const all = topologies();
const consumers = all.filter((t) => t.sidecar.consumes.length > 0);
const dir = mkdtempSync(join(tmpdir(), 'smartstack-sidecar-'));

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error) throw new Error(`${command} could not run (${result.error.message}): install the Debian package that provides it`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/**
 * The warnings HAProxy may give: the server-state file does not exist until the first reload, and a
 * default server named by a host name that does not resolve here starts disabled (init-addr none).
 */
function unexpectedWarnings(output: string): string[] {
  const expected = [/Can't open global server state file/, /could not resolve address '[a-z.]+', disabling server/];
  return output.split('\n').filter((l) => /\[(WARNING|ALERT)\]/.test(l) && !expected.some((e) => e.test(l)));
}

describe('the machine the tests run on', () => {
  const accounts = () => [readFileSync('/etc/passwd', 'utf8'), readFileSync('/etc/group', 'utf8')];
  const before = accounts();
  afterAll(() => {
    // No user or group of the tests is left behind (or ever added): HAProxy's users live in its namespace.
    expect(accounts()).toEqual(before);
  });

  test('a machine that already has nerve, synapse and zookeeper users gets the agent users at the ids the checks expect', () => {
    const passwd = 'root:x:0:0:root:/root:/bin/bash\nsynapse:x:998:998::/var/lib/synapse:/bin/false\nnerve:x:997:997::/:/bin/false\nzookeeper:x:103:106:ZooKeeper:/var/lib/zookeeper:/bin/false\n';
    const group = 'root:x:0:\nsynapse:x:998:\nnerve:x:997:\nzookeeper:x:106:\n';
    const files = withAgentAccounts(passwd, group);
    expect(files.passwd.split('\n').filter((l) => /^(synapse|nerve):/.test(l))).toEqual([
      `nerve:x:${AGENT_USER_IDS.nerve}:${AGENT_USER_IDS.nerve}::/nonexistent:/usr/sbin/nologin`,
      `synapse:x:${AGENT_USER_IDS.synapse}:${AGENT_USER_IDS.synapse}::/nonexistent:/usr/sbin/nologin`,
    ]);
    expect(files.group).toContain(`synapse:x:${AGENT_USER_IDS.synapse}:\n`);
    expect(files.group).not.toContain('synapse:x:998:');
    // Every other account is kept as it is.
    expect(files.passwd).toContain('root:x:0:0:root:/root:/bin/bash\nzookeeper:x:103:106:ZooKeeper:/var/lib/zookeeper:/bin/false\n');
    expect(files.group).toContain('zookeeper:x:106:');
  });
});

describe('sidecar files checked by the real tools', () => {
  test.each(consumers.map((t) => [t.name, t] as const))('%s: haproxy -c accepts the bootstrap haproxy.cfg', (_, t) => {
    const config = fileContent(t.host.renderUserData(), '/etc/smartstack/haproxy-bootstrap.cfg');
    const result = haproxyCheck(config);
    expect(result.output).toContain('Configuration file is valid');
    expect(unexpectedWarnings(result.output)).toEqual([]);
    expect(result.status).toBe(0);
  });

  test('haproxy -c rejects a config with an injected line (the check can fail)', () => {
    const config = consumers[0].sidecar.haproxyBootstrapConfig!.replace('option httpchk GET /health', 'option httpchk GET /health\n\tbogus-directive');
    expect(haproxyCheck(config).status).not.toBe(0);
  });

  test("the article's synapse example, on our haproxy section, renders a config haproxy -c accepts", () => {
    const article: SynapseServiceConfig = {
      default_servers: [{ name: 'localhost', host: '127.0.0.1', port: '8080' }],
      discovery: { method: 'zookeeper', path: '/services/user-service', hosts: ['zk1.coolvds.net:2181', 'zk2.coolvds.net:2181'] },
      haproxy: { port: 3210, server_options: 'check inter 2s rise 3 fall 2', listen: ['mode http', 'option httpchk GET /health'] },
    };
    const ours = JSON.parse(consumers[0].sidecar.synapseConfigJson!) as SynapseConfig;
    const config = renderHaproxyConfig({ ...ours, services: { 'user-service': article } }, {});
    const result = haproxyCheck(config);
    expect(result.output).toContain('Configuration file is valid');
    expect(result.status).toBe(0);
  });

  test.each(consumers.map((t) => [t.name, t] as const))('%s: the HAProxy unit starts under its LimitNOFILE, serves, and reloads in place', (_, t) => {
    const userData = t.host.renderUserData();
    const unit = fileContent(userData, '/etc/systemd/system/smartstack-haproxy.service');
    const life = runHaproxyUnit({
      unit,
      bootstrap: fileContent(userData, '/etc/smartstack/haproxy-bootstrap.cfg'),
      steps: fileContent(userData, '/usr/lib/smartstack/host-steps.sh'),
      localPorts: t.sidecar.consumes.map((s) => s.localPort!),
      statsPort: t.sidecar.statsPort,
    });
    const limit = Number(/LimitNOFILE=(\d+)/.exec(unit)![1]);
    expect(Number(life.info.Maxconn)).toBe(t.sidecar.maxConnections);
    expect(Number(life.info['Ulimit-n'])).toBeLessThanOrEqual(limit);
    // Both sockets: mode 0600, owned by synapse (its id in the namespace, whatever this machine's synapse is).
    expect(life.sockets).toHaveLength(2);
    for (const line of life.sockets) expect(line).toMatch(new RegExp(`^srw------- 1 ${AGENT_USER_IDS.synapse} `));
    expect(life.metrics).toContain('haproxy_process_');
    for (const service of t.sidecar.consumes) {
      expect(life.stats).toContain(`${service.serviceName},BACKEND`);
      // No instance registered yet: HAProxy answers 503 (HTTP) or closes (TCP), it never refuses.
      const status = life.localPortStatus[String(service.localPort)];
      if (service.mode === ServiceMode.HTTP && service.defaultServers.length === 0) expect(status).toBe(503);
    }
    // The reload re-executed the same master and replaced the worker.
    const worker = (proc: string) => /^(\d+)\s+worker/m.exec(proc)?.[1];
    expect(life.masterPidAfter).toBe(life.masterPidBefore);
    expect(life.procAfter).toMatch(/^\d+\s+master\s+1 \[failed: 0\]/m);
    expect(worker(life.procAfter)).toBeDefined();
    expect(worker(life.procAfter)).not.toBe(worker(life.procBefore));
  });

  test.each(all.map((t) => [t.name, t] as const))('%s: cloud-init schema accepts the host document', (_, t) => {
    const file = join(dir, `${t.name.replace(/\W+/g, '-')}.user-data`);
    writeFileSync(file, t.host.renderUserData());
    const result = run('cloud-init', ['schema', '--config-file', file]);
    expect(result.output).toContain('Valid cloud-config');
    expect(result.status).toBe(0);
  });

  test.each(all.filter((t) => t.sidecar.provides.length > 0).map((t) => [t.name, t] as const))('%s: nft accepts the firewall ruleset', (_, t) => {
    const file = join(dir, `${t.name.replace(/\W+/g, '-')}.nft`);
    writeFileSync(file, fileContent(t.host.renderUserData(), '/etc/smartstack/nftables.nft'));
    const result = run('nft', ['-c', '-f', file]);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  test.each(all.map((t) => [t.name, t] as const))('%s: systemd-analyze verify accepts the units', (_, t) => {
    const unitDir = join(dir, `${t.name.replace(/\W+/g, '-')}-units`);
    mkdirSync(unitDir, { recursive: true });
    const units = [...writtenFiles(t.host.renderUserData()).values()].filter((f) => /\/smartstack-(nerve|synapse|haproxy)\.service$/.test(f.path));
    expect(units.length).toBeGreaterThan(0);
    const paths = units.map((u) => {
      const path = join(unitDir, basename(u.path));
      writeFileSync(path, u.content);
      return path;
    });
    const result = run('systemd-analyze', ['verify', '--man=no', ...paths]);
    // The agents are installed by the document's own npm/gem commands, so they are missing here.
    const problems = result.output.split('\n').filter((l) => l && !/Command \/usr\/local\/bin\/(smartstack|nerve|synapse) is not executable/.test(l));
    expect(problems).toEqual([]);
  });
});
