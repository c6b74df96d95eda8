/**
 * synapse keys people use, against a real HAProxy (started by synapse through reload_command) and
 * a real ZooKeeper: `server_options` placeholders, `cookie_value_method` with cookies on server
 * lines, `use_nerve_weights` as an opt-in, `backend_port_override`, `file_output`, `restart_jitter`.
 */
import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { request } from 'http';
import { get as httpsGet } from 'https';
import { tmpdir } from 'os';
import { join } from 'path';
import { HaproxyRuntime, isInService } from '../lib/agent/haproxy-runtime';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { eventually, httpGet } from './support/eventually';
import { freePort, HAPROXY_BINARY } from './support/haproxy-process';
import { fourLetterWord } from './support/zookeeper-4lw';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

function getWithCookie(port: number, cookie: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { Cookie: cookie }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('synapse keys with a real HAProxy and ZooKeeper', () => {
  let cluster: ZookeeperCluster;
  let zk: ZkSession;
  let dir: string;
  let synapse: AgentProcess;
  let runtime: HaproxyRuntime;
  let metricsPort: number;
  const ports: { [service: string]: number } = {};
  const backends: TestBackend[] = [];
  const pidFile = (): string => join(dir, 'haproxy.pid');

  async function register(service: string, b: TestBackend, name: string, extra: object = {}): Promise<void> {
    await zk.mkdirp(`/services/${service}`);
    await zk.create(`/services/${service}/${name}_`, Buffer.from(JSON.stringify({ host: b.host, port: b.port, name, ...extra })), CreateMode.EPHEMERAL_SEQUENTIAL);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synapse-keys-'));
    cluster = await startLocalCluster(3);
    for (const s of ['templated', 'sticky', 'weighted', 'unweighted', 'overridden', 'ordered', 'templated-weight', 'tls']) ports[s] = await freePort();
    metricsPort = await freePort();
    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 10000 });
    await zk.start(20000);
    backends.push(await startBackend('127.0.0.51'), await startBackend('127.0.0.52'), await startBackend('127.0.0.53'));
    const [a, b, c] = backends;
    await register('templated', a, 'app1');
    await register('templated-weight', a, 'app1');
    await register('tls', a, 'app1');
    // HAProxy's crt: certificate and key in one file.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    writeFileSync(join(dir, 'tls.pem'), readFileSync(join(dir, 'cert.pem'), 'utf8') + readFileSync(join(dir, 'key.pem'), 'utf8'));
    await register('sticky', a, 'app1');
    await register('sticky', b, 'app2');
    await register('weighted', a, 'app1', { weight: 7 });
    await register('unweighted', a, 'app1', { weight: 7 });
    await register('overridden', { ...c, port: 1 } as TestBackend, 'app3');
    for (const [x, name] of [[b, 'app2'], [a, 'app1'], [c, 'app3']] as const) await register('ordered', x, name);

    const configPath = join(dir, 'haproxy.cfg');
    const discovery = (service: string): object => ({ method: 'zookeeper', path: `/services/${service}`, hosts: cluster.connectString.split(',') });
    const http = ['mode http', 'option httpchk GET /health'];
    writeFileSync(join(dir, 'synapse.conf.json'), JSON.stringify({
      services: {
        templated: { discovery: discovery('templated'), haproxy: { port: ports.templated, server_options: 'check port %{port} inter 1s rise 1 fall 2', listen: http } },
        'templated-weight': { discovery: discovery('templated-weight'), haproxy: { port: ports['templated-weight'], server_options: 'check port %{port} weight 4' } },
        tls: { discovery: discovery('tls'), haproxy: { port: ports.tls, bind_options: `ssl crt ${join(dir, 'tls.pem')}`, listen: ['mode http'] } },
        sticky: {
          discovery: discovery('sticky'),
          haproxy: { port: ports.sticky, cookie_value_method: 'hash', listen: http, backend: ['cookie SRV insert indirect nocache'], server_options: 'check inter 1s rise 1' },
        },
        weighted: { discovery: discovery('weighted'), haproxy: { port: ports.weighted, use_nerve_weights: true, server_options: 'weight 3' } },
        unweighted: { discovery: discovery('unweighted'), haproxy: { port: ports.unweighted, server_options: 'weight 3' } },
        overridden: { discovery: discovery('overridden'), backend_port_override: c.port, haproxy: { port: ports.overridden } },
        ordered: { discovery: discovery('ordered'), haproxy: { port: ports.ordered, backend_order: 'desc' } },
      },
      haproxy: {
        config_file_path: configPath,
        socket_file_path: join(dir, 'admin.sock'),
        reload_command: `P=${pidFile()}; if [ -s $P ] && kill -0 $(cat $P) 2>/dev/null; then kill -USR2 $(cat $P); else ${HAPROXY_BINARY} -D -p $P -f ${configPath}; fi`,
        restart_interval: 1,
        restart_jitter: 0.5,
        defaults: ['timeout connect 1s', 'timeout client 10s', 'timeout server 10s'],
      },
      file_output: { output_directory: join(dir, 'out') },
      zk_session_timeout: 7,
      metrics_port: metricsPort,
    }));
    runtime = new HaproxyRuntime(join(dir, 'admin.sock'));
    synapse = spawnAgent(['synapse', '--config', join(dir, 'synapse.conf.json')]);
    await eventually('every service routed', async () => {
      for (const [service, port] of Object.entries(ports)) if (service !== 'tls' && !(await httpGet(`http://127.0.0.1:${port}/`).then(() => true, () => false))) return false;
      return true;
    }, 40000, 200);
  });

  afterAll(async () => {
    await synapse?.stop('SIGKILL');
    if (existsSync(pidFile())) {
      try {
        process.kill(Number(readFileSync(pidFile(), 'utf8').trim()), 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await Promise.all(backends.map((b) => b.kill()));
    await zk?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const serverLines = (backend: string): string[] => {
    const text = readFileSync(join(dir, 'haproxy.cfg'), 'utf8');
    const body = text.split(`\nbackend ${backend}\n`)[1].split('\n\n')[0];
    return body.split('\n').filter((l) => l.includes('server ') && !l.includes(' disabled'));
  };

  test('server_options placeholders are filled in per server', () => {
    const [a] = backends;
    expect(serverLines('templated')).toEqual([expect.stringContaining(`${a.host}:${a.port} check port ${a.port} inter 1s rise 1 fall 2`)]);
  });

  test('a weight inside filled-in server_options is the server\'s weight, and reads back without another reload', async () => {
    expect((await runtime.serversState('templated-weight')).find(isInService)?.weight).toBe(4);
    const reloads = (): number => synapse.logs().filter((r) => r.msg === 'haproxy reloaded for a new config shape').length;
    const before = reloads();
    // A text that did not read back would reload at the next comparison with HAProxy (at most 10 s away).
    const syncs = async () => {
      const text = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
      return text.split('\n').filter((l) => l.startsWith('synapse_syncs_total{result="ok"}')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    };
    const syncsBefore = await syncs();
    await eventually('the next comparison with HAProxy', async () => ((await syncs()) > syncsBefore ? true : undefined), 15000);
    expect(reloads()).toBe(before);
  }, 30000);

  test('cookie_value_method hash: each server line carries the hashed name, and the cookie pins a client to it', async () => {
    const [a, b] = backends;
    const hash = (x: TestBackend, name: string): string => createHash('sha1').update(`${name}_${x.host}:${x.port}`).digest('hex');
    const lines = serverLines('sticky').join('\n');
    expect(lines).toContain(`cookie ${hash(a, 'app1')}`);
    expect(lines).toContain(`cookie ${hash(b, 'app2')}`);
    await eventually('both sticky servers up', async () => (await runtime.serversState('sticky')).filter((s) => isInService(s) && s.operationalState === 2).length === 2, 20000);
    for (let i = 0; i < 6; i++) expect(await getWithCookie(ports.sticky, `SRV=${hash(b, 'app2')}`)).toContain(`${b.host}:${b.port}`);
  });

  test('use_nerve_weights: the registration weight replaces server_options\' weight only where asked', async () => {
    const weight = async (backend: string): Promise<number | undefined> => (await runtime.serversState(backend)).find(isInService)?.weight;
    expect(await weight('weighted')).toBe(7);
    expect(await weight('unweighted')).toBe(3);
  });

  test('backend_port_override: the registered port is replaced', async () => {
    const c = backends[2];
    expect(await httpGet(`http://127.0.0.1:${ports.overridden}/`)).toContain(`${c.host}:${c.port}`);
  });

  test('backend_order desc: new servers take the free slots in descending name order', async () => {
    const [a, b, c] = backends;
    const slots = (await runtime.serversState('ordered')).filter(isInService).sort((x, y) => Number(x.server.slice(4)) - Number(y.server.slice(4)));
    expect(slots.map((x) => `${x.address}:${x.port}`)).toEqual([c, b, a].map((x) => `${x.host}:${x.port}`));
  });

  test('bind_options: TLS on the bind line, as upstream\'s own sample', async () => {
    const a = backends[0];
    const body = await new Promise<string>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port: ports.tls, path: '/', rejectUnauthorized: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    expect(body).toContain(`${a.host}:${a.port}`);
    await expect(httpGet(`http://127.0.0.1:${ports.tls}/`)).rejects.toBeDefined();
  });

  test('zk_session_timeout in the file is the session timeout synapse asks for', async () => {
    const timeouts: number[] = [];
    for (const member of cluster.connectString.split(',')) {
      const [host, port] = member.split(':');
      for (const line of (await fourLetterWord(host, Number(port), 'cons')).split('\n')) {
        const sid = /sid=0x([0-9a-f]+)/.exec(line)?.[1];
        // Every session but the test's own is synapse's.
        if (sid !== undefined && BigInt(`0x${sid}`) !== BigInt(`0x${zk.sessionId}`)) timeouts.push(Number(/to=([0-9]+)/.exec(line)?.[1]));
      }
    }
    expect(timeouts).toEqual([7000]);
  });

  test('file_output writes each service\'s servers', () => {
    const sticky = JSON.parse(readFileSync(join(dir, 'out', 'sticky.json'), 'utf8')) as { name: string }[];
    expect(sticky.map((s) => s.name).sort()).toEqual(['app1', 'app2']);
  });
});
