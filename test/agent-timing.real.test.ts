/**
 * Measures, with real processes, how long membership changes take end to end:
 * - a backend's death (process gone) → its slot out of HAProxy;
 * - a new backend's first passing check (nerve's first 200 on /health) → its first proxied request.
 * Prints median and worst over the trials, plus failed requests and reloads seen meanwhile.
 * Off by default (about 15 s per trial): SMARTSTACK_MEASURE=1 npx jest test/agent-timing.real.test.ts
 * Knobs: SMARTSTACK_TRIALS (10), SMARTSTACK_CHECK_INTERVAL seconds (2), rise 3 and fall 2 as the article.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { isInService } from '../lib/agent/haproxy-runtime';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { loadSynapseConfig } from '../lib/agent/synapse-config-loader';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { startRequestLoop } from './support/agent-request-loop';
import { freePort, HaproxyProcess, startHaproxy } from './support/haproxy-process';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

const MEASURE = process.env.SMARTSTACK_MEASURE === '1';
const TRIALS = Number(process.env.SMARTSTACK_TRIALS ?? 10);
const INTERVAL_S = Number(process.env.SMARTSTACK_CHECK_INTERVAL ?? 2);
const RISE = 3;
const FALL = 2;

function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return `median ${median} ms, worst ${sorted[sorted.length - 1]} ms, best ${sorted[0]} ms (n=${values.length})`;
}

(MEASURE ? describe : describe.skip)('membership change timings (measurement)', () => {
  let cluster: ZookeeperCluster;
  let haproxy: HaproxyProcess;
  let synapse: AgentProcess;
  let zk: ZkSession;
  let dir: string;
  let localPort: number;
  const backends: TestBackend[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-timing-'));
    const configFile = join(dir, 'synapse.conf.json');
    localPort = await freePort();
    cluster = await startLocalCluster(3);
    haproxy = await startHaproxy((paths) => {
      writeFileSync(configFile, JSON.stringify({
        services: {
          users: {
            discovery: { method: 'zookeeper', path: '/services/users', hosts: cluster.connectString.split(',') },
            haproxy: {
              port: localPort,
              server_options: `check inter ${INTERVAL_S}s rise ${RISE} fall ${FALL}`,
              listen: ['mode http', 'option httpchk GET /health', 'retry-on conn-failure empty-response response-timeout'],
            },
          },
        },
        haproxy: { config_file_path: paths.configPath, socket_file_path: paths.adminSocket, master_socket_file_path: paths.masterSocket, state_file_path: paths.stateFile },
      }));
      return renderHaproxyConfig(loadSynapseConfig(configFile).config, {});
    });
    synapse = spawnAgent(['synapse', '--config', configFile]);
    zk = new ZkSession(cluster.connectString);
    await zk.start(20000);
    // One instance that stays, so the request loop always has somewhere to go.
    const stable = await startBackend('127.0.0.40');
    backends.push(stable);
    await zk.mkdirp('/services/users');
    await zk.create('/services/users/stable_', Buffer.from(`{"host":"${stable.host}","port":${stable.port},"name":"stable"}`), CreateMode.EPHEMERAL_SEQUENTIAL);
    const deadline = Date.now() + 30000;
    while (!(await haproxy.runtime.serversState('users')).some((s) => isInService(s) && s.operationalState === 2)) {
      if (Date.now() > deadline) throw new Error('the stable backend never went into service');
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 120000);

  afterAll(async () => {
    await synapse?.stop('SIGKILL');
    await haproxy?.stop();
    await Promise.all(backends.map((b) => b.kill()));
    await zk?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(`${TRIALS} trials with check interval ${INTERVAL_S}s, rise ${RISE}, fall ${FALL}`, async () => {
    const joins: number[] = [];
    const removal: number[] = [];
    const reloadsBefore = (await haproxy.processes()).reloads;
    const loop = startRequestLoop('127.0.0.1', localPort, { maxRequests: 1_000_000, maxDurationMs: TRIALS * 40000, pauseMs: 10 });
    for (let i = 0; i < TRIALS; i++) {
      const b = await startBackend(`127.0.0.${41 + (i % 20)}`);
      const nerveFile = join(dir, `nerve-${i}.json`);
      writeFileSync(nerveFile, JSON.stringify({
        instance_id: `trial${i}`,
        services: { users: { host: b.host, port: b.port, reporter_type: 'zookeeper', zk_hosts: cluster.connectString.split(','), zk_path: '/services/users',
          check_interval: INTERVAL_S, checks: [{ type: 'http', uri: '/health', timeout: 1, rise: RISE, fall: FALL }] } },
      }));
      const nerve = spawnAgent(['nerve', '--config', nerveFile]);
      const deadline = Date.now() + 30000;
      while (b.firstRequestAt === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      if (b.firstRequestAt === undefined || b.firstHealthyAt === undefined) throw new Error(`trial ${i}: the new backend took no request within 30 s`);
      joins.push(b.firstRequestAt - b.firstHealthyAt);

      const key = `${b.host}:${b.port}`;
      // Die at a random point of nerve's check cycle, not just after a check.
      await new Promise((r) => setTimeout(r, Math.random() * INTERVAL_S * 1000));
      const diedAt = Date.now();
      await b.kill();
      for (;;) {
        const servers = await haproxy.runtime.serversState('users');
        if (!servers.some((s) => isInService(s) && `${s.address}:${s.port}` === key)) break;
        if (Date.now() - diedAt > 30000) throw new Error(`trial ${i}: the dead backend stayed in haproxy for 30 s`);
        await new Promise((r) => setTimeout(r, 10));
      }
      removal.push(Date.now() - diedAt);
      await nerve.stop();
    }
    const result = await loop.stop();
    const reloads = (await haproxy.processes()).reloads - reloadsBefore;
    const report = [
      `check interval ${INTERVAL_S}s, rise ${RISE}, fall ${FALL}; ${TRIALS} trials`,
      `death -> out of haproxy:            ${summary(removal)}  (target ${FALL * INTERVAL_S * 1000 + 500} ms)`,
      `first passing check -> 1st request:  ${summary(joins)}  (target ${RISE * INTERVAL_S * 1000 + 500} ms)`,
      `requests ${result.sent}, failed ${result.failures.length}, reloads ${reloads}`,
    ].join('\n');
    console.log(report);
    expect(result.failures).toEqual([]);
    expect(reloads).toBe(0);
  }, TRIALS * 60000 + 60000);
});

