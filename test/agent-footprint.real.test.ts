/**
 * Measures what the agents cost at rest: CPU share and resident memory of nerve with 50
 * provided services and of synapse with 50 consumed services and 500 registered backends.
 * Off by default. Run against compiled JavaScript so the TypeScript compiler is not counted:
 *   npx tsc -p tsconfig.dev.json --noEmit false --outDir /tmp/agent-js
 *   SMARTSTACK_MEASURE=1 SMARTSTACK_AGENT_JS=/tmp/agent-js npx jest test/agent-footprint.real.test.ts
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { loadSynapseConfig } from '../lib/agent/synapse-config-loader';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { freePort, HaproxyProcess, startHaproxy } from './support/haproxy-process';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

const MEASURE = process.env.SMARTSTACK_MEASURE === '1';
const SERVICES = 50;
const PER_SERVICE = 10;
const SAMPLE_MS = Number(process.env.SMARTSTACK_SAMPLE_MS ?? 30000);

/** CPU seconds (user + system) and resident MiB of a process, from /proc. */
function usage(pid: number): { cpuSeconds: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return { cpuSeconds: ticks / 100, rssMiB: Math.round(rssKiB / 102.4) / 10 };
}

async function atRest(agent: AgentProcess): Promise<string> {
  const before = usage(agent.pid);
  await new Promise((r) => setTimeout(r, SAMPLE_MS));
  const after = usage(agent.pid);
  const share = ((after.cpuSeconds - before.cpuSeconds) / (SAMPLE_MS / 1000)) * 100;
  return `cpu ${share.toFixed(2)}% of a core over ${SAMPLE_MS / 1000} s, rss ${after.rssMiB} MiB`;
}

(MEASURE ? describe : describe.skip)('agent footprint at rest (measurement)', () => {
  let cluster: ZookeeperCluster;
  let haproxy: HaproxyProcess;
  let zk: ZkSession;
  let dir: string;
  const agents: AgentProcess[] = [];
  const backends: TestBackend[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-footprint-'));
    cluster = await startLocalCluster(3);
    zk = new ZkSession(cluster.connectString);
    await zk.start(20000);
  }, 120000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await haproxy?.stop();
    await Promise.all(backends.map((b) => b.kill()));
    await zk?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(`nerve with ${SERVICES} services, checked every 2 s`, async () => {
    const b = await startBackend('127.0.0.50');
    backends.push(b);
    const services: { [name: string]: object } = {};
    for (let i = 0; i < SERVICES; i++) {
      services[`svc${i}`] = { host: b.host, port: b.port, reporter_type: 'zookeeper', zk_hosts: cluster.connectString.split(','), zk_path: `/nerve/svc${i}`,
        check_interval: 2, checks: [{ type: 'http', uri: '/health', timeout: 1, rise: 3, fall: 2 }] };
    }
    const file = join(dir, 'nerve.json');
    writeFileSync(file, JSON.stringify({ instance_id: 'app1', services }));
    const nerve = spawnAgent(['nerve', '--config', file]);
    agents.push(nerve);
    const deadline = Date.now() + 60000;
    while (nerve.logs().filter((r) => r.msg === 'registered').length < SERVICES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    console.log(`nerve, ${SERVICES} services registered: ${await atRest(nerve)}`);
    await nerve.stop();
  }, SAMPLE_MS + 120000);

  test(`synapse with ${SERVICES} services and ${SERVICES * PER_SERVICE} backends`, async () => {
    const file = join(dir, 'synapse.json');
    const ports = await Promise.all(Array.from({ length: SERVICES }, () => freePort()));
    haproxy = await startHaproxy((paths) => {
      const services: { [name: string]: object } = {};
      for (let i = 0; i < SERVICES; i++) {
        services[`svc${i}`] = { discovery: { method: 'zookeeper', path: `/services/svc${i}`, hosts: cluster.connectString.split(',') },
          haproxy: { port: ports[i], server_options: 'check inter 60s', listen: ['mode tcp'], server_slots: 16 } };
      }
      writeFileSync(file, JSON.stringify({ services, haproxy: { config_file_path: paths.configPath, socket_file_path: paths.adminSocket,
        master_socket_file_path: paths.masterSocket, state_file_path: paths.stateFile } }));
      return renderHaproxyConfig(loadSynapseConfig(file).config, {});
    });
    for (let i = 0; i < SERVICES; i++) {
      await zk.mkdirp(`/services/svc${i}`);
      for (let j = 0; j < PER_SERVICE; j++) {
        await zk.create(`/services/svc${i}/i${j}_`, Buffer.from(`{"host":"10.77.${i}.${j + 1}","port":8080,"name":"i${j}"}`), CreateMode.EPHEMERAL_SEQUENTIAL);
      }
    }
    const started = Date.now();
    const synapse = spawnAgent(['synapse', '--config', file]);
    agents.push(synapse);
    const deadline = Date.now() + 60000;
    for (;;) {
      const servers = await haproxy.runtime.serversState();
      if (servers.filter((s) => s.address.startsWith('10.77.') && (s.adminState & 0x23) === 0).length === SERVICES * PER_SERVICE) break;
      if (Date.now() > deadline) throw new Error('synapse did not fill the backends within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    console.log(`synapse filled ${SERVICES * PER_SERVICE} backends in ${Date.now() - started} ms from process start; at rest: ${await atRest(synapse)}`);
    await synapse.stop();
  }, SAMPLE_MS + 180000);
});
