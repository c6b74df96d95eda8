/**
 * What the agents cost at rest: CPU share and resident memory of nerve with many provided services,
 * and of synapse with many consumed services and their registered backends, each sampled over the
 * same window as an idle Node process (the baseline: what any Node agent costs before doing work).
 * The agents run from the transpiled tree, as built JavaScript runs on a host.
 */
import { spawn } from 'child_process';
import { readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { loadSynapseConfig } from '../lib/agent/synapse-config-loader';
import { startBackend, TestBackend } from '../test/support/agent-backend';
import { freePort, HaproxyProcess, startHaproxy } from '../test/support/haproxy-process';
import { startLocalCluster, ZookeeperCluster } from '../test/support/zookeeper-cluster';
import { Agent, startAgent } from './convergence';
import { round } from './stats';
import { scratchDir, sleep } from './subprocess';
import { BenchContext } from './suite';
import { count, ms, Row, times } from './table';
import { transpiledTree } from './transpile';

/** CPU seconds (user + system) and resident KiB of a process, from /proc. */
function usage(pid: number): { cpuSeconds: number; rssKiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return { cpuSeconds: ticks / 100, rssKiB };
}

interface AtRest {
  /** Percent of one core over the window. */
  readonly cpuPercent: number;
  readonly rssMiB: number;
}

/** Samples each process over one window of `windowMs`. */
async function atRest(pids: number[], windowMs: number): Promise<AtRest[]> {
  const before = pids.map(usage);
  await sleep(windowMs);
  return pids.map((pid, i) => {
    const after = usage(pid);
    return { cpuPercent: round(((after.cpuSeconds - before[i].cpuSeconds) / (windowMs / 1000)) * 100, 2), rssMiB: round(after.rssKiB / 1024, 1) };
  });
}

/** Waits for a condition, polling; throws with `what` after `limitMs`. */
async function until(what: string, limitMs: number, condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${limitMs / 1000} s`);
    await sleep(200);
  }
}

export async function runAgentFootprint(ctx: BenchContext): Promise<{ rows: Row[]; result: unknown }> {
  const services = ctx.quick ? 10 : 50;
  const perService = ctx.quick ? 5 : 10;
  const windowMs = ctx.quick ? 5000 : 30000;
  const jsRoot = transpiledTree();
  const dir = scratchDir('bench-footprint-');
  const agents: Agent[] = [];
  const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  let cluster: ZookeeperCluster | undefined;
  let zk: ZkSession | undefined;
  let haproxy: HaproxyProcess | undefined;
  let backend: TestBackend | undefined;
  try {
    ctx.log('footprint: starting a 3-member ZooKeeper ensemble on loopback');
    cluster = await startLocalCluster(3);
    zk = new ZkSession(cluster.connectString);
    await zk.start(20000);
    const zkHosts = cluster.connectString.split(',');

    // nerve: every service on one healthy backend, checked every 2 s.
    backend = await startBackend('127.0.0.50');
    const nerveServices: Record<string, object> = {};
    for (let i = 0; i < services; i++) {
      nerveServices[`svc${i}`] = { host: backend.host, port: backend.port, reporter_type: 'zookeeper', zk_hosts: zkHosts, zk_path: `/nerve/svc${i}`,
        check_interval: 2, checks: [{ type: 'http', uri: '/health', timeout: 1, rise: 3, fall: 2 }] };
    }
    const nerveFile = join(dir, 'nerve.json');
    writeFileSync(nerveFile, JSON.stringify({ instance_id: 'app1', services: nerveServices }));
    const nerve = startAgent(jsRoot, 'nerve', 'nerve', nerveFile);
    agents.push(nerve);
    const registered = async () => {
      let n = 0;
      for (let i = 0; i < services; i++) n += (await zk!.getChildren(`/nerve/svc${i}`).catch(() => [])).length;
      return n;
    };
    await until(`nerve did not register its ${services} services`, 60000, async () => (await registered()) === services);
    const [nerveRest, idleForNerve] = await atRest([nerve.child.pid!, idle.pid!], windowMs);
    ctx.log(`footprint: nerve with ${services} services: ${nerveRest.cpuPercent}% of a core, ${nerveRest.rssMiB} MiB (idle node ${idleForNerve.rssMiB} MiB)`);
    await nerve.stop();

    // synapse: every service with its registered backends (never reached: checks every 60 s).
    const synapseFile = join(dir, 'synapse.json');
    const ports = await Promise.all(Array.from({ length: services }, () => freePort()));
    haproxy = await startHaproxy((paths) => {
      const consumed: Record<string, object> = {};
      for (let i = 0; i < services; i++) {
        consumed[`svc${i}`] = { discovery: { method: 'zookeeper', path: `/services/svc${i}`, hosts: zkHosts },
          haproxy: { port: ports[i], server_options: 'check inter 60s', listen: ['mode tcp'], server_slots: 16 } };
      }
      writeFileSync(synapseFile, JSON.stringify({ services: consumed, haproxy: { config_file_path: paths.configPath, socket_file_path: paths.adminSocket,
        master_socket_file_path: paths.masterSocket, state_file_path: paths.stateFile } }));
      return renderHaproxyConfig(loadSynapseConfig(synapseFile).config, {});
    });
    for (let i = 0; i < services; i++) {
      await zk.mkdirp(`/services/svc${i}`);
      for (let j = 0; j < perService; j++) {
        await zk.create(`/services/svc${i}/i${j}_`, Buffer.from(`{"host":"127.0.77.${j + 1}","port":${20000 + i},"name":"i${j}"}`), CreateMode.EPHEMERAL_SEQUENTIAL);
      }
    }
    const started = Date.now();
    const synapse = startAgent(jsRoot, 'synapse', 'synapse', synapseFile);
    agents.push(synapse);
    const h = haproxy;
    await until(`synapse did not fill ${services * perService} servers`, 60000, async () =>
      (await h.runtime.serversState()).filter((s) => s.address.startsWith('127.0.77.') && (s.adminState & 0x23) === 0).length === services * perService);
    const fillMs = Date.now() - started;
    const [synapseRest, idleForSynapse] = await atRest([synapse.child.pid!, idle.pid!], windowMs);
    ctx.log(`footprint: synapse with ${services * perService} servers: filled in ${fillMs} ms, ${synapseRest.cpuPercent}% of a core, ${synapseRest.rssMiB} MiB`);

    const nerveScenario = `nerve, ${services} services`;
    const synapseScenario = `synapse, ${count(services * perService)} servers`;
    const window = `over ${windowMs / 1000} s at rest`;
    const rows: Row[] = [
      { bench: 'footprint', scenario: nerveScenario, metric: 'CPU (% of a core)', ours: `${nerveRest.cpuPercent}%`, baseline: `${idleForNerve.cpuPercent}% idle node`, ratio: '', note: window },
      { bench: 'footprint', scenario: nerveScenario, metric: 'resident memory', ours: `${nerveRest.rssMiB} MiB`, baseline: `${idleForNerve.rssMiB} MiB idle node`, ratio: times(nerveRest.rssMiB / idleForNerve.rssMiB) },
      { bench: 'footprint', scenario: synapseScenario, metric: 'process start -> all servers in HAProxy', ours: ms(fillMs), baseline: '', ratio: '' },
      { bench: 'footprint', scenario: synapseScenario, metric: 'CPU (% of a core)', ours: `${synapseRest.cpuPercent}%`, baseline: `${idleForSynapse.cpuPercent}% idle node`, ratio: '', note: window },
      { bench: 'footprint', scenario: synapseScenario, metric: 'resident memory', ours: `${synapseRest.rssMiB} MiB`, baseline: `${idleForSynapse.rssMiB} MiB idle node`, ratio: times(synapseRest.rssMiB / idleForSynapse.rssMiB) },
    ];
    return { rows, result: { services, perService, windowMs, nerve: nerveRest, synapse: { ...synapseRest, fillMs }, idleNode: { duringNerve: idleForNerve, duringSynapse: idleForSynapse } } };
  } finally {
    idle.kill('SIGKILL');
    for (const a of agents) await a.stop();
    await haproxy?.stop();
    await backend?.kill().catch(() => undefined);
    await zk?.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
