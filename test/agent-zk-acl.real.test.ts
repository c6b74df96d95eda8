/**
 * ZooKeeper digest authentication and ACLs with the real agents: a member that derives digest ids
 * with SHA-256, the bootstrap's ACL layout made here as `admin`, nerve registering as
 * `registrar-a`, synapse reading as `reader` and routing through a real HAProxy. Shows what each
 * identity may and may not do, that refused requests neither crash nor spin, that a credentials
 * file others can read is refused, and that no password reaches a log.
 */
import { createHash } from 'crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import * as zookeeper from 'node-zookeeper-client';
import { tmpdir } from 'os';
import { join } from 'path';
import { isInService } from '../lib/agent/haproxy-runtime';
import { Logger } from '../lib/agent/log';
import { ZkRegistration } from '../lib/agent/zk-registration';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { loadSynapseConfig } from '../lib/agent/synapse-config-loader';
import { readZookeeperCredentials, zookeeperDigest } from '../lib/schema/zookeeper-credentials';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, LogRecord, spawnAgent } from './support/agent-process';
import { expireSession } from './support/agent-session-expiry';
import { eventually, httpGet } from './support/eventually';
import { freePort, HaproxyProcess, startHaproxy } from './support/haproxy-process';
import { connectZookeeper } from './support/zookeeper-client';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

const { READ, CREATE, DELETE, ALL } = zookeeper.Permission;
const NO_AUTH = zookeeper.Exception.NO_AUTH;
const IDENTITIES = ['admin', 'reader', 'registrar-a', 'registrar-b', 'registrar-c'];

/** 64 hex characters per identity, as the bootstrap derives them. */
function password(user: string): string {
  return createHash('sha256').update(`agent-zk-acl test secret:${user}`).digest('hex');
}

function digestAcl(perms: number, user: string): zookeeper.ACL {
  return new zookeeper.ACL(perms, new zookeeper.Id('digest', zookeeperDigest(user, password(user))));
}

/** A service path as the bootstrap makes it: admin ALL, the service's registrar CREATE|DELETE|READ, reader READ. */
function serviceAcl(service: string): zookeeper.ACL[] {
  return [digestAcl(ALL, 'admin'), digestAcl(CREATE | DELETE | READ, `registrar-${service}`), digestAcl(READ, 'reader')];
}

/** What nerve gives its node: ALL for its own identity, READ for the ids of its `zk_read_acl` (the reader). */
function registrationAcl(user: string): string[] {
  return aclLines([digestAcl(ALL, user), digestAcl(READ, 'reader')]);
}

/** An ACL as `perms scheme:id` lines, sorted, for comparisons. */
function aclLines(acl: zookeeper.ACL[]): string[] {
  return acl.map((a) => `${(a as unknown as { permission: number }).permission} ${a.id.scheme}:${a.id.id}`).sort();
}

/** The ZooKeeper error code a request ends with; 0 when it succeeds. */
function outcome(run: (done: (e: Error | zookeeper.Exception | null) => void) => void): Promise<number> {
  return new Promise((resolve) => run((e) => resolve(e ? (e instanceof zookeeper.Exception ? e.getCode() : -1) : 0)));
}

function call<T>(run: (done: (e: Error | zookeeper.Exception | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((e, value) => (e ? reject(e) : resolve(value))));
}

describe('ZooKeeper digest authentication and ACLs with the real agents', () => {
  let cluster: ZookeeperCluster;
  let dir: string;
  let admin: zookeeper.Client;
  let haproxy: HaproxyProcess | undefined;
  let nerveA: AgentProcess;
  let synapse: AgentProcess;
  let backendA: TestBackend;
  let localPort: number;
  let synapseMetricsPort: number;
  const clients: zookeeper.Client[] = [];
  const agents: AgentProcess[] = [];
  const backends: TestBackend[] = [];
  const sessions: ZkSession[] = [];
  const inProcessLog: string[] = [];
  const credentialFile: { [user: string]: string } = {};

  /** A raw client authenticated as the given identities (none: anonymous). */
  async function connectAs(...users: string[]): Promise<zookeeper.Client> {
    const identities = users.map((user) => ({ scheme: 'digest' as const, user, password: password(user) }));
    const client = await connectZookeeper(cluster.connectString, { sessionTimeout: 6000, spinDelay: 200, retries: 0 }, identities);
    clients.push(client);
    return client;
  }

  /** A node's ACL as its owner sees it (others see digest ids as `user:x`). */
  async function aclAs(user: string, path: string): Promise<string[]> {
    const client = await connectAs(user);
    return aclLines(await call<zookeeper.ACL[]>((done) => client.getACL(path, done)));
  }

  const children = (path: string): Promise<string[]> => call<string[]>((done) => admin.getChildren(path, done)).catch(() => []);

  function writeJson(name: string, value: unknown, mode = 0o600): string {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(value, null, 2));
    chmodSync(file, mode);
    return file;
  }

  function nerveConfig(instanceId: string, backend: TestBackend, service: string, authFile: string, metricsPort?: number): object {
    return {
      instance_id: instanceId,
      ...(metricsPort !== undefined ? { metrics_port: metricsPort } : {}),
      services: {
        [service]: {
          host: backend.host, port: backend.port, reporter_type: 'zookeeper',
          zk_hosts: cluster.connectString.split(','), zk_path: `/services/${service}`, zk_auth_file: authFile,
          zk_read_acl: [`digest:${zookeeperDigest('reader', password('reader'))}`],
          check_interval: 0.2, checks: [{ type: 'http', uri: '/health', timeout: 0.5, rise: 1, fall: 2 }],
        },
      },
    };
  }

  function spawn(args: string[]): AgentProcess {
    const agent = spawnAgent(args);
    agents.push(agent);
    return agent;
  }

  async function metric(port: number, prefix: string): Promise<number> {
    const text = await httpGet(`http://127.0.0.1:${port}/metrics`);
    return text.split('\n').filter((l) => l.startsWith(prefix)).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  }

  async function inService(): Promise<string[]> {
    return (await haproxy!.runtime.serversState('a')).filter(isInService).map((s) => `${s.address}:${s.port}`);
  }

  const noAuthLines = (agent: AgentProcess): LogRecord[] => agent.logs().filter((r) => String(r.msg).startsWith('zookeeper refused the'));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-zk-acl-'));
    cluster = await startLocalCluster(1, { firstAddress: 41, jvmArgs: ['-Dzookeeper.DigestAuthenticationProvider.digestAlg=SHA-256'] });
    for (const user of IDENTITIES) credentialFile[user] = writeJson(`zk-${user}.json`, { scheme: 'digest', user, password: password(user) });

    // The bootstrap's layout, made as admin; `/` last, so nobody else can write anywhere.
    admin = await connectAs('admin');
    await call((done) => admin.create('/services', Buffer.alloc(0), [digestAcl(ALL, 'admin'), digestAcl(READ, 'reader')], CreateMode.PERSISTENT, done));
    for (const s of ['a', 'b']) await call((done) => admin.create(`/services/${s}`, Buffer.alloc(0), serviceAcl(s), CreateMode.PERSISTENT, done));
    await call((done) => admin.setACL('/', [digestAcl(ALL, 'admin')], -1, done));
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await haproxy?.stop();
    await Promise.all(backends.map((b) => b.kill()));
    await Promise.all(sessions.map((s) => s.close()));
    clients.forEach((c) => c.close());
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('nerve as registrar-a registers service a with its own ACL, and synapse as reader routes to it', async () => {
    backendA = await startBackend('127.0.0.51');
    backends.push(backendA);
    nerveA = spawn(['nerve', '--config', writeJson('nerve-a.json', nerveConfig('app1', backendA, 'a', credentialFile['registrar-a'])), '--zk-session-timeout', '4000']);
    const [child] = await eventually('a registration under /services/a', async () => {
      const c = await children('/services/a');
      return c.length === 1 ? c : undefined;
    });
    const path = `/services/a/${child}`;
    // Only its owner and the reader may read it (the admin, ZooKeeper's superuser on real members, is not one here).
    const reader = await connectAs('reader');
    const data = await call<Buffer>((done) => reader.getData(path, done));
    expect(await outcome((d) => admin.getData(path, d))).toBe(NO_AUTH);
    expect(data.toString()).toBe(`{"host":"127.0.0.51","port":${backendA.port},"name":"app1"}`);
    expect(await aclAs('registrar-a', path)).toEqual(registrationAcl('registrar-a'));

    const synapseConfig = join(dir, 'synapse.conf.json');
    [localPort, synapseMetricsPort] = await Promise.all([freePort(), freePort()]);
    haproxy = await startHaproxy((paths) => {
      writeJson('synapse.conf.json', {
        services: {
          a: {
            discovery: { method: 'zookeeper', path: '/services/a', hosts: cluster.connectString.split(','), auth_file: credentialFile.reader },
            haproxy: { port: localPort, server_options: 'check inter 1s rise 1 fall 2', listen: ['mode http', 'option httpchk GET /health'], server_slots: 4 },
          },
        },
        haproxy: {
          config_file_path: paths.configPath, socket_file_path: paths.adminSocket, master_socket_file_path: paths.masterSocket,
          state_file_path: paths.stateFile, restart_interval: 1, defaults: ['timeout connect 1s', 'timeout client 10s', 'timeout server 10s'],
        },
        metrics_port: synapseMetricsPort,
      });
      return renderHaproxyConfig(loadSynapseConfig(synapseConfig).config, {});
    });
    synapse = spawn(['synapse', '--config', synapseConfig, '--zk-session-timeout', '4000']);
    const want = `${backendA.host}:${backendA.port}`;
    await eventually('service a in haproxy', async () => ((await inService()).includes(want) ? true : undefined));
    expect(await eventually('a request routed to service a', async () => {
      const body = await httpGet(`http://127.0.0.1:${localPort}/`);
      return body.trim() === want ? body : undefined;
    })).toBe(`${want}\n`);
    expect(noAuthLines(nerveA)).toEqual([]);
    expect(noAuthLines(synapse)).toEqual([]);
  });

  test('nerve holding only registrar-a\'s credentials cannot register service b: NoAuth is logged and counted, without a tight loop', async () => {
    const backend = await startBackend('127.0.0.52');
    backends.push(backend);
    const metricsPort = await freePort();
    const nerve = spawn(['nerve', '--config', writeJson('nerve-b.json', nerveConfig('app2', backend, 'b', credentialFile['registrar-a'], metricsPort)), '--zk-session-timeout', '4000']);
    const first = await nerve.waitForLog((r) => String(r.msg).startsWith('zookeeper refused the request'));
    expect(first).toMatchObject({ level: 'error', service: 'b', operation: 'children', path: '/services/b', user: 'registrar-a' });
    expect(await metric(metricsPort, 'nerve_zk_no_auth_total{')).toBeGreaterThanOrEqual(1);
    // Retries back off (1 s, 2 s, 4 s, ...): a handful in 4 s, not hundreds.
    await new Promise((r) => setTimeout(r, 4000));
    expect(noAuthLines(nerve).length).toBeGreaterThanOrEqual(2);
    expect(noAuthLines(nerve).length).toBeLessThanOrEqual(4);
    expect(await children('/services/b')).toEqual([]);
    expect(nerve.child.exitCode).toBeNull();
    expect(await metric(metricsPort, 'nerve_registered{service="b"}')).toBe(0);
    await nerve.stop();
  });

  test('with credentials nerve does not create a missing service path: it says so once and registers once the path exists', async () => {
    const backend = await startBackend('127.0.0.53');
    backends.push(backend);
    const nerve = spawn(['nerve', '--config', writeJson('nerve-c.json', nerveConfig('app3', backend, 'c', credentialFile['registrar-c'])), '--zk-session-timeout', '4000']);
    await nerve.waitForLog((r) => String(r.msg).startsWith('service path does not exist'));
    await new Promise((r) => setTimeout(r, 2500)); // two more retries
    expect(nerve.logs().filter((r) => String(r.msg).startsWith('service path does not exist'))).toHaveLength(1);
    expect(await call<zookeeper.Stat | null>((done) => admin.exists('/services/c', done))).toBeNull();

    await call((done) => admin.create('/services/c', Buffer.alloc(0), serviceAcl('c'), CreateMode.PERSISTENT, done));
    const registered = await nerve.waitForLog((r) => r.msg === 'registered', 10000);
    expect(await aclAs('registrar-c', registered.path as string)).toEqual(registrationAcl('registrar-c'));
    await nerve.stop();
  });

  test('an unauthenticated client can change nothing under /services, nor nerve\'s node', async () => {
    const [child] = await children('/services/a');
    const node = `/services/a/${child}`;
    const anonymous = await connectAs();
    const results = {
      'create /services/x': await outcome((d) => anonymous.create('/services/x', Buffer.from('x'), d)),
      'setData /services': await outcome((d) => anonymous.setData('/services', Buffer.from('x'), -1, d)),
      'delete /services/a': await outcome((d) => anonymous.remove('/services/a', -1, d)),
      'create /services/a/evil_': await outcome((d) => anonymous.create('/services/a/evil_', Buffer.from('{"host":"10.9.9.9","port":80}'), CreateMode.EPHEMERAL_SEQUENTIAL, d)),
      'setData /services/a': await outcome((d) => anonymous.setData('/services/a', Buffer.from('x'), -1, d)),
      'setACL /services/a': await outcome((d) => anonymous.setACL('/services/a', [new zookeeper.ACL(ALL, new zookeeper.Id('world', 'anyone'))], -1, d)),
      [`delete ${node}`]: await outcome((d) => anonymous.remove(node, -1, d)),
      [`setData ${node}`]: await outcome((d) => anonymous.setData(node, Buffer.from('{"host":"10.9.9.9","port":80}'), -1, d)),
      'list /services/a': await outcome((d) => anonymous.getChildren('/services/a', d)),
    };
    expect(results).toEqual(Object.fromEntries(Object.keys(results).map((k) => [k, NO_AUTH])));
    expect(await children('/services/a')).toEqual([child]);
    // Not even a registration whose name it knows.
    expect(await outcome((d) => anonymous.getData(node, d))).toBe(NO_AUTH);
  });

  test('registrar-a cannot create or delete under /services/b, nor change /services/a itself', async () => {
    const b = await call<string>((done) => admin.create('/services/b/app-b_', Buffer.from('{"host":"127.0.0.54","port":8080,"name":"app-b"}'),
      [digestAcl(ALL, 'admin'), digestAcl(READ, 'reader')], CreateMode.EPHEMERAL_SEQUENTIAL, done));
    const registrarA = await connectAs('registrar-a');
    const results = {
      'create /services/b/x_': await outcome((d) => registrarA.create('/services/b/x_', Buffer.from('x'), CreateMode.EPHEMERAL_SEQUENTIAL, d)),
      [`delete ${b}`]: await outcome((d) => registrarA.remove(b, -1, d)),
      'delete /services/a': await outcome((d) => registrarA.remove('/services/a', -1, d)),
      'setData /services/a': await outcome((d) => registrarA.setData('/services/a', Buffer.from('x'), -1, d)),
      'create /services/d': await outcome((d) => registrarA.create('/services/d', Buffer.from('x'), d)),
    };
    expect(results).toEqual(Object.fromEntries(Object.keys(results).map((k) => [k, NO_AUTH])));
    expect(await children('/services/b')).toEqual([b.slice('/services/b/'.length)]);
    await call<void>((done) => admin.remove(b, -1, (e) => done(e, undefined)));
  });

  test('synapse keeps haproxy on its last servers when reading is refused, and skips a registration it may not read', async () => {
    const want = `${backendA.host}:${backendA.port}`;
    const noAuthBefore = await metric(synapseMetricsPort, 'synapse_zk_no_auth_total{');
    // A registration only admin may read: refused, the others stay.
    const hidden = await call<string>((done) => admin.create('/services/a/hidden_', Buffer.from('{"host":"127.0.0.55","port":8080,"name":"hidden"}'),
      [digestAcl(ALL, 'admin')], CreateMode.EPHEMERAL_SEQUENTIAL, done));
    const refused = await synapse.waitForLog((r) => r.msg === 'registration refused' && r.path === hidden);
    expect(refused.reason).toBe('not readable as reader (NoAuth)');
    expect(await inService()).toEqual([want]);

    await call<void>((done) => admin.remove(hidden, -1, (e) => done(e, undefined)));

    // The reader loses READ on the path. ZooKeeper then sends it no more change events; the
    // listing after a reconnect (the member restarts) is refused.
    await call((done) => admin.setACL('/services/a', [digestAcl(ALL, 'admin'), digestAcl(CREATE | DELETE | READ, 'registrar-a')], -1, done));
    await cluster.stopMember(1);
    cluster.startMember(1);
    await cluster.waitForQuorum([1]);
    admin = await connectAs('admin'); // the old client may have lost its session
    const refusedList = await synapse.waitForLog((r) => String(r.msg).startsWith('zookeeper refused the read'));
    expect(refusedList).toMatchObject({ level: 'error', service: 'a', operation: 'children', path: '/services/a', user: 'reader' });
    expect(await metric(synapseMetricsPort, 'synapse_zk_no_auth_total{')).toBeGreaterThan(noAuthBefore);
    expect(await inService()).toEqual([want]);
    expect((await httpGet(`http://127.0.0.1:${localPort}/`)).trim()).toBe(want);

    // READ back: the retry lists the path again and later changes flow as before.
    await call((done) => admin.setACL('/services/a', serviceAcl('a'), -1, done));
    const extra = await startBackend('127.0.0.57');
    backends.push(extra);
    const node = await call<string>((done) => admin.create('/services/a/app7_', Buffer.from(`{"host":"127.0.0.57","port":${extra.port},"name":"app7"}`),
      [digestAcl(ALL, 'admin'), digestAcl(READ, 'reader')], CreateMode.EPHEMERAL_SEQUENTIAL, done));
    await eventually('the new instance in haproxy after READ is back', async () => ((await inService()).includes(`127.0.0.57:${extra.port}`) ? true : undefined), 40000);
    await call<void>((done) => admin.remove(node, -1, (e) => done(e, undefined)));
    await eventually('the removed instance out of haproxy', async () => ((await inService()).join() === want ? true : undefined));
  }, 90000);

  test('a new session authenticates again: after expiry the registration comes back under its ACL', async () => {
    const credentials = readZookeeperCredentials(credentialFile['registrar-a']);
    const log = new Logger({ agent: 'test' }, 'debug', (line) => inProcessLog.push(line));
    const session = new ZkSession(cluster.connectString, { sessionTimeoutMs: 4000, spinDelayMs: 200, log });
    sessions.push(session);
    session.addCredentials(credentials);
    const registration = new ZkRegistration(session, '/services/a', 'app9', '{"host":"127.0.0.59","port":8080,"name":"app9"}', log, {}, credentials, [`digest:${zookeeperDigest('reader', password('reader'))}`]);
    expect(await session.start(20000)).toBe(true);
    registration.setUp(true);
    const first = await eventually('the first registration', () => registration.registeredPath);

    // The client may win the race back to its session; end it again until a new one exists.
    await eventually('a new session', async () => {
      const current = session.sessionCredentials();
      if (session.generation === 1 && current) await expireSession(cluster.connectString, current);
      return session.generation > 1;
    }, 30000, 200);
    const second = await eventually('a registration in the next session', () => (registration.registeredPath !== first ? registration.registeredPath : undefined));
    expect(await aclAs('registrar-a', second)).toEqual(registrationAcl('registrar-a'));
    expect(inProcessLog.join('')).not.toContain('zookeeper refused');
    await registration.stop();
  });

  test('smartstack status reads the protected registry with --auth-file, and says what it may not read without', async () => {
    // After the member's restart above nerve may still be registering again in a new session.
    await eventually('nerve a registered', async () => ((await children('/services/a')).length === 1 ? true : undefined), 30000)
      .catch((e: Error) => Promise.reject(new Error(`${e.message}; nerve a logged:\n${nerveA.logs().slice(-15).map((r) => JSON.stringify(r)).join('\n')}`)));
    const anonymous = spawn(['status', '--zk', cluster.connectString]);
    expect(await anonymous.exited()).toBe(1);
    expect(anonymous.stdout()).toContain('/services: no permission to list /services unauthenticated (see --auth-file)');

    const reader = spawn(['status', '--zk', cluster.connectString, '--auth-file', credentialFile.reader, '--json']);
    expect(await reader.exited()).toBe(0);
    const status = JSON.parse(reader.stdout()) as { services: { name: string; instances: { host: string; name: string }[] }[] };
    expect(status.services.find((s) => s.name === 'a')?.instances.map((i) => [i.host, i.name])).toEqual([['127.0.0.51', 'app1']]);
    expect(status.services.map((s) => s.name)).toEqual(['a', 'b', 'c']);
  });

  test('a credentials file that group or others may read is refused before anything connects', async () => {
    const open = writeJson('zk-open.json', { scheme: 'digest', user: 'registrar-a', password: password('registrar-a') }, 0o644);
    const reason = `${open}: (mode) = "0644": credentials must not be accessible by group or others: chmod 600`;
    const backend = await startBackend('127.0.0.56');
    backends.push(backend);
    const nerve = spawn(['nerve', '--config', writeJson('nerve-open.json', nerveConfig('app6', backend, 'a', open))]);
    const synapseOpen = spawn(['synapse', '--config', writeJson('synapse-open.json', {
      services: { a: { discovery: { method: 'zookeeper', path: '/services/a', hosts: cluster.connectString.split(','), auth_file: open }, haproxy: { port: 3999 } } },
      haproxy: { do_socket: false, do_reloads: false },
    })]);
    const status = spawn(['status', '--zk', cluster.connectString, '--auth-file', open]);
    for (const agent of [nerve, synapseOpen, status]) {
      expect(await agent.exited()).toBe(2);
      expect(agent.stderr()).toContain(reason);
    }
    expect(nerve.logs().filter((r) => r.msg === 'zookeeper session established')).toEqual([]);
  });

  test('an ensemble that refuses digest authentication gets a new session after a growing pause, not in a loop', async () => {
    const refusing = await startLocalCluster(1, { firstAddress: 46, jvmArgs: ['-Dzookeeper.DigestAuthenticationProvider.enabled=false'] });
    try {
      const log = new Logger({ agent: 'test' }, 'info', (line) => inProcessLog.push(line));
      const session = new ZkSession(refusing.connectString, { sessionTimeoutMs: 4000, log });
      sessions.push(session);
      session.addCredentials(readZookeeperCredentials(credentialFile.reader));
      await session.start();
      await new Promise((r) => setTimeout(r, 4000));
      // Pauses of 1 s, then 2 s: at most three refusals in 4 s, where an immediate retry would make hundreds.
      expect(session.authFailures).toBeGreaterThanOrEqual(2);
      expect(session.authFailures).toBeLessThanOrEqual(3);
      expect(inProcessLog.join('')).toContain('"msg":"zookeeper refused the credentials; trying a new session later","users":["reader"]');
      await session.close();
    } finally {
      await refusing.stop();
    }
  });

  test('no password appears in any agent\'s output', () => {
    expect(agents.length).toBeGreaterThanOrEqual(8);
    const output = [...agents.map((a) => `${a.stdout()}${a.stderr()}`), inProcessLog.join('')].join('\n');
    for (const user of IDENTITIES) expect(output).not.toContain(password(user));
  });
});
