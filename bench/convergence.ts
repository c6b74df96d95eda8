/**
 * Benchmark 2, convergence: a real mesh on this machine's loopback — a 3-member ZooKeeper
 * ensemble, our nerve on each of three provider "hosts", our synapse driving a master-worker
 * HAProxy with the sidecar's haproxy.cfg — and a client calling the service through the local port
 * all along. Two providers stay up; the third dies and comes back, trial after trial:
 *
 * - death → removal: from the backend's death until HAProxy stops routing to it (whichever comes
 *   first: HAProxy's own check or error observation, or synapse acting on nerve's deregistration),
 *   with the deregistration and synapse's change timed too;
 * - first passing check → first request: from the first `/health` the revived backend passes
 *   until the first client request reaches it.
 *
 * Health checks run every 0.5 s (rise 3, fall 2), so detection is 1 s and rise 1.5 s; the targets
 * are detection + 0.5 s and rise + 0.5 s. Also counted: HAProxy reloads and failed client requests.
 */
import { ChildProcess, spawn } from 'child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { HealthCheck } from '../lib';
import { isInService } from '../lib/agent/haproxy-runtime';
import { ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { startBackend, TestBackend } from '../test/support/agent-backend';
import { startRequestLoop } from '../test/support/agent-request-loop';
import { freePort, HaproxyProcess, startHaproxy } from '../test/support/haproxy-process';
import { startLocalCluster, ZookeeperCluster } from '../test/support/zookeeper-cluster';
import { localNerveConfig, localSynapseConfig, renderMeshConfigs, SERVICE } from './mesh-configs';
import { summarize, Summary } from './stats';
import { REPO_ROOT, scratchDir, sleep } from './subprocess';
import { BenchContext } from './suite';
import { ms, Row } from './table';
import { transpiledTree } from './transpile';

const INTERVAL_S = 0.5;
const RISE = 3;
const FALL = 2;
const DETECTION_MS = FALL * INTERVAL_S * 1000;
const RISE_MS = RISE * INTERVAL_S * 1000;
/** Provider hosts: two stay up, the last one dies and comes back. */
const PROVIDERS = ['stable1', 'stable2', 'churn1'];
const ADDRESSES = ['127.0.0.91', '127.0.0.92', '127.0.0.93'];
const DISCOVERY_PATH = `/services/${SERVICE}`;

export interface Agent {
  readonly name: string;
  readonly child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** Runs `smartstack <agent> --config <file>` from the transpiled tree (a host runs built JavaScript, not ts-node). */
export function startAgent(jsRoot: string, name: string, agent: 'nerve' | 'synapse', config: string): Agent {
  const child = spawn(process.execPath, [join(jsRoot, 'lib', 'cli', 'main.js'), agent, '--config', config, '--log-level', 'info'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const append = (d: Buffer) => {
    out += d.toString();
    if (out.length > 400_000) out = out.slice(-200_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return {
    name,
    child,
    log: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Peak RSS (KiB) and CPU seconds of a running process, from /proc. */
function processCost(pid: number | undefined): { peakRssKiB: number; cpuSeconds: number } | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/status`)) return undefined;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { peakRssKiB: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN), cpuSeconds: ticks / 100 };
}

/** Watches the service's registrations and stamps when an instance's node appears and disappears. */
class RegistrationClock {
  private present = new Set<string>();
  private readonly events: Array<{ instance: string; kind: 'up' | 'down'; at: number }> = [];
  private stopped = false;

  public constructor(private readonly session: ZkSession) {}

  public async start(): Promise<void> {
    await this.session.mkdirp(DISCOVERY_PATH);
    await this.list();
  }

  public stop(): void {
    this.stopped = true;
  }

  /** The first time since `after` that `instance` went `kind`. */
  public when(instance: string, kind: 'up' | 'down', after: number): number | undefined {
    return this.events.find((e) => e.instance === instance && e.kind === kind && e.at >= after)?.at;
  }

  private async list(): Promise<void> {
    if (this.stopped) return;
    const children = await this.session.getChildren(DISCOVERY_PATH, () => void this.list().catch(() => undefined));
    const now = Date.now();
    const instances = new Set(children.map((c) => c.replace(/_\d+$/, '')));
    for (const i of instances) if (!this.present.has(i)) this.events.push({ instance: i, kind: 'up', at: now });
    for (const i of this.present) if (!instances.has(i)) this.events.push({ instance: i, kind: 'down', at: now });
    this.present = instances;
  }
}

interface Trial {
  /** Death → HAProxy stops routing to it. */
  removedMs?: number;
  /** Death → nerve's registration gone from ZooKeeper. */
  deregisteredMs?: number;
  /** Death → synapse put its slot in maintenance. */
  synapseRemovedMs?: number;
  /** What took it out first: HAProxy itself (its checks, or errors observed on live traffic) or synapse. */
  removedBy?: 'haproxy' | 'synapse';
  /** First passing check → first client request. */
  firstRequestMs?: number;
  /** First passing check → registered in ZooKeeper. */
  registeredMs?: number;
  /** First passing check → slot in service. */
  inServiceMs?: number;
}

async function slotOf(proc: HaproxyProcess, b: { host: string; port: number }) {
  const states = await proc.runtime.serversState(SERVICE);
  return states.find((s) => s.address === b.host && s.port === b.port);
}

export async function runConvergence(ctx: BenchContext): Promise<{ rows: Row[]; result: unknown }> {
  const trials = ctx.quick ? 5 : 30;
  const jsRoot = transpiledTree();
  const dir = scratchDir('bench-convergence-');
  const agents: Agent[] = [];
  const backends = new Map<string, TestBackend>();
  let cluster: ZookeeperCluster | undefined;
  let haproxy: HaproxyProcess | undefined;
  let zk: ZkSession | undefined;
  let clock: RegistrationClock | undefined;
  try {
    ctx.log('convergence: starting ZooKeeper, HAProxy, synapse, 3 nerves and backends');
    cluster = await startLocalCluster(3, { firstAddress: 81, heapMiB: 256 });
    const zkHosts = cluster.members.map((m) => m.clientAddress);
    const [localPort, statsPort, synapseMetricsPort] = [await freePort(), await freePort(), await freePort()];
    const mesh = renderMeshConfigs({
      localPort,
      statsPort,
      synapseMetricsPort,
      healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: INTERVAL_S, timeoutSeconds: INTERVAL_S / 2, rise: RISE, fall: FALL }),
      providers: PROVIDERS,
    });

    let synapseFile = '';
    haproxy = await startHaproxy((paths) => {
      const config = localSynapseConfig(mesh.synapseConfigJson, paths, zkHosts);
      synapseFile = join(dir, 'synapse.conf.json');
      writeFileSync(synapseFile, `${JSON.stringify(config, null, 2)}\n`);
      // HAProxy starts from the bootstrap file, as the unit does; synapse fills the slots.
      return renderHaproxyConfig(config, {});
    });
    const reloadsBefore = (await haproxy.processes()).reloads;

    for (const [i, name] of PROVIDERS.entries()) backends.set(name, await startBackend(ADDRESSES[i], 0, true));
    const synapse = startAgent(jsRoot, 'synapse', 'synapse', synapseFile);
    agents.push(synapse);
    for (const name of PROVIDERS) {
      const b = backends.get(name)!;
      const file = join(dir, `nerve-${name}.conf.json`);
      writeFileSync(file, localNerveConfig(mesh.nerveConfigJson[name], { host: b.host, port: b.port }, zkHosts, await freePort()));
      agents.push(startAgent(jsRoot, name, 'nerve', file));
    }

    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 10_000 });
    if (!(await zk.start(30_000))) throw new Error('could not connect to the ensemble');
    clock = new RegistrationClock(zk);
    await clock.start();

    // Wait for all three instances in service.
    const ready = Date.now() + 60_000;
    for (;;) {
      const slots = await Promise.all([...backends.values()].map((b) => slotOf(haproxy!, b).catch(() => undefined)));
      if (slots.every((s) => s !== undefined && s.operationalState === 2 && isInService(s))) break;
      if (Date.now() > ready) throw new Error(`the mesh did not converge within 60 s:\n${agents.map((a) => `--- ${a.name}\n${a.log().slice(-2000)}`).join('\n')}`);
      await sleep(100);
    }

    // An application calling the service all along (bounded in count and time); every failure counts.
    const loop = startRequestLoop('127.0.0.1', localPort, { pauseMs: 2, maxDurationMs: 600_000, maxRequests: 500_000, timeoutMs: 5000 });
    const results: Trial[] = [];
    const churn = PROVIDERS[PROVIDERS.length - 1];
    try {
      await sleep(500);
      for (let t = 0; t < trials; t++) {
        if (t >= 2 && Date.now() > ctx.deadline) break;
        results.push(await trial(haproxy, clock, backends, churn));
      }
    } catch (e) {
      await loop.stop();
      throw e;
    }
    const loopResult = await loop.stop();
    const reloads = (await haproxy.processes()).reloads - reloadsBefore;
    const cost = {
      synapse: processCost(synapse.child.pid),
      nerve: processCost(agents.find((a) => a.name === churn)?.child.pid),
    };
    ctx.log(`convergence: ${results.length} trials, ${reloads} reloads, ${loopResult.failures.length} failed of ${loopResult.sent} requests`);
    return report(results, reloads, loopResult, cost);
  } finally {
    clock?.stop();
    await zk?.close();
    for (const a of agents.reverse()) await a.stop();
    for (const b of backends.values()) await b.kill().catch(() => undefined);
    await haproxy?.stop();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One death and one revival of the churning backend. */
async function trial(haproxy: HaproxyProcess, clock: RegistrationClock, backends: Map<string, TestBackend>, churn: string): Promise<Trial> {
  const result: Trial = {};
  const b = backends.get(churn)!;
  const address = { host: b.host, port: b.port };

  // Death.
  const killedAt = Date.now();
  await b.kill();
  const deathDeadline = killedAt + 15_000;
  while (Date.now() < deathDeadline) {
    const slot = await slotOf(haproxy, address).catch(() => undefined);
    const now = Date.now();
    const out = slot === undefined || slot.operationalState !== 2 || !isInService(slot);
    if (out && result.removedMs === undefined) {
      result.removedMs = now - killedAt;
      result.removedBy = slot !== undefined && isInService(slot) ? 'haproxy' : 'synapse';
    }
    if ((slot === undefined || !isInService(slot)) && result.synapseRemovedMs === undefined) result.synapseRemovedMs = now - killedAt;
    const down = clock.when(churn, 'down', killedAt);
    if (down !== undefined) result.deregisteredMs = down - killedAt;
    if (result.removedMs !== undefined && result.synapseRemovedMs !== undefined && result.deregisteredMs !== undefined) break;
    await sleep(10);
  }

  // Revival on the same address: nerve, still running, finds it healthy again.
  const revivedAt = Date.now();
  const revived = await startBackend(address.host, address.port, true);
  backends.set(churn, revived);
  const birthDeadline = revivedAt + 20_000;
  while (Date.now() < birthDeadline) {
    const firstCheck = revived.firstHealthyAt;
    const slot = await slotOf(haproxy, address).catch(() => undefined);
    if (firstCheck !== undefined) {
      const up = clock.when(churn, 'up', revivedAt);
      if (up !== undefined && result.registeredMs === undefined) result.registeredMs = up - firstCheck;
      if (slot && slot.operationalState === 2 && isInService(slot) && result.inServiceMs === undefined) result.inServiceMs = Date.now() - firstCheck;
      if (revived.firstRequestAt !== undefined) {
        result.firstRequestMs = revived.firstRequestAt - firstCheck;
        if (result.registeredMs !== undefined && result.inServiceMs !== undefined) break;
      }
    }
    await sleep(10);
  }
  // Let the revived instance settle into rotation before the next death.
  await sleep(300);
  return result;
}

function report(
  trials: Trial[],
  reloads: number,
  loop: { sent: number; failures: Array<{ at: number; error: string }> },
  cost: Record<string, { peakRssKiB: number; cpuSeconds: number } | undefined>,
): { rows: Row[]; result: unknown } {
  const pick = (f: (t: Trial) => number | undefined) => trials.map(f).filter((x): x is number => x !== undefined);
  const missing = (f: (t: Trial) => number | undefined) => trials.length - pick(f).length;
  const figures: Record<string, Summary & { missing: number }> = {};
  const add = (key: string, f: (t: Trial) => number | undefined) => {
    figures[key] = { ...summarize(pick(f)), missing: missing(f) };
    return figures[key];
  };
  const removed = add('deathToRemovedMs', (t) => t.removedMs);
  const deregistered = add('deathToDeregisteredMs', (t) => t.deregisteredMs);
  const synapseRemoved = add('deathToSynapseRemovedMs', (t) => t.synapseRemovedMs);
  const firstRequest = add('firstCheckToFirstRequestMs', (t) => t.firstRequestMs);
  const registered = add('firstCheckToRegisteredMs', (t) => t.registeredMs);
  const inService = add('firstCheckToInServiceMs', (t) => t.inServiceMs);
  const byCheck = trials.filter((t) => t.removedBy === 'haproxy').length;

  const line = (s: Summary & { missing: number }) => `${ms(s.median)} / ${ms(s.p99)} / ${ms(s.max)}${s.missing > 0 ? ` (${s.missing} timed out)` : ''}`;
  const scenario = `${trials.length} trials`;
  const rows: Row[] = [
    { bench: 'convergence', scenario, metric: 'death -> out of HAProxy (med/p99/worst)', ours: line(removed), baseline: `detection ${ms(DETECTION_MS)}`, ratio: '', note: `target p99 <= ${ms(DETECTION_MS + 500)}; ${byCheck}/${trials.length} first by HAProxy's own checks` },
    { bench: 'convergence', scenario, metric: 'death -> deregistered in ZK', ours: line(deregistered), baseline: '', ratio: '', note: `nerve: fall ${FALL} x ${INTERVAL_S} s` },
    { bench: 'convergence', scenario, metric: 'death -> synapse took slot out', ours: line(synapseRemoved), baseline: '', ratio: '' },
    { bench: 'convergence', scenario, metric: 'first pass -> first request (med/p99/worst)', ours: line(firstRequest), baseline: `rise ${ms(RISE_MS)}`, ratio: '', note: `target p99 <= ${ms(RISE_MS + 500)}` },
    { bench: 'convergence', scenario, metric: 'first pass -> registered in ZK', ours: line(registered), baseline: '', ratio: '', note: `nerve: rise ${RISE} x ${INTERVAL_S} s` },
    { bench: 'convergence', scenario, metric: 'first pass -> slot in service', ours: line(inService), baseline: '', ratio: '' },
    { bench: 'convergence', scenario, metric: 'HAProxy reloads', ours: String(reloads), baseline: '', ratio: '', note: 'target 0' },
    { bench: 'convergence', scenario, metric: 'failed client requests', ours: `${loop.failures.length} of ${loop.sent}`, baseline: '', ratio: '', note: 'target 0' },
  ];
  const s = cost.synapse;
  const n = cost.nerve;
  if (s && n) {
    rows.push({ bench: 'convergence', scenario, metric: 'agent peak RSS / CPU time', ours: `synapse ${(s.peakRssKiB / 1024).toFixed(0)} MiB ${s.cpuSeconds.toFixed(1)} s, nerve ${(n.peakRssKiB / 1024).toFixed(0)} MiB ${n.cpuSeconds.toFixed(1)} s`, baseline: '', ratio: '', note: 'whole run, under load' });
  }
  return {
    rows,
    result: {
      healthCheck: { intervalSeconds: INTERVAL_S, rise: RISE, fall: FALL, detectionMs: DETECTION_MS, riseMs: RISE_MS },
      trials: trials.length,
      figures,
      removedFirstByHaproxyCheck: byCheck,
      reloads,
      requests: loop.sent,
      failedRequests: loop.failures.length,
      failures: loop.failures.slice(0, 20),
      agents: cost,
      samples: trials,
    },
  };
}
