/**
 * The self-healing scenario on a local mesh: under a steady, bounded request load through a
 * consumer's local port, one disruption after another, each with its failed requests and the time
 * until the mesh converged. Used by the end-to-end test (which asserts) and by
 * `npm run figures:local` (which prints the README's table).
 */
import { readFileSync, statSync } from 'fs';
import { join } from 'path';
import { HaproxyMaster, HaproxyRuntime, isInService } from '../../lib/agent/haproxy-runtime';
import { LocalMesh } from '../../lib/local/local-mesh';
import { LoopbackHost } from '../../lib/local/loopback-host';
import { SynapseConfig } from '../../lib/schema/synapse-config';
import { RequestLoop, RequestLoopResult, startRequestLoop } from './agent-request-loop';
import { eventually } from './eventually';

export interface StepFigure {
  readonly step: string;
  readonly requests: number;
  readonly failed: number;
  /** Milliseconds from the disruption until the mesh converged. */
  readonly convergenceMs: number;
  /** What "converged" means for this step. */
  readonly convergedWhen: string;
  readonly failures: string[];
}

export interface ScenarioOptions {
  /** The consumer host and the service it calls, e.g. web1 and user-service. */
  readonly consumer: string;
  readonly service: string;
  /** The providers of that service, at least two. */
  readonly providers: string[];
  /** How long all ZooKeeper members stay down. */
  readonly ensembleOutageMs?: number;
  readonly log?: (line: string) => void;
}

const STEP_TIMEOUT_MS = 60000;
/** How often convergence is checked: the resolution of the figures. */
const POLL_MS = 100;

/** The consumer's sidecar as the scenario observes it: its HAProxy sockets and local port. */
export function sidecarOf(mesh: LocalMesh, hostname: string, service: string) {
  const host = mesh.hosts.find((h) => h.hostname === hostname)!;
  const synapse = JSON.parse(host.files.get('/etc/smartstack/synapse.conf.json')!) as SynapseConfig;
  const port = Number(synapse.services[service].haproxy.port);
  return {
    host,
    port,
    runtime: new HaproxyRuntime(synapse.haproxy.socket_file_path!),
    master: new HaproxyMaster(synapse.haproxy.master_socket_file_path!),
    /** Addresses of the servers HAProxy has in service (up by its checks and not in maintenance). */
    async serving(): Promise<string[]> {
      const states = await this.runtime.serversState(service).catch(() => []);
      return states.filter((s) => isInService(s) && s.operationalState === 2).map((s) => `${s.address}:${s.port}`).sort();
    },
  };
}

export async function registeredInstances(mesh: LocalMesh, service: string): Promise<string[] | undefined> {
  const status = await mesh.status();
  if (!status.registry?.reachable) return undefined;
  return (status.registry.services.find((s) => s.name === service)?.instances ?? []).filter((i) => i.valid).map((i) => i.name!).sort();
}

function diff(before: RequestLoopResult, after: RequestLoopResult) {
  const answered: { [who: string]: number } = {};
  for (const [who, n] of Object.entries(after.answeredBy)) answered[who] = n - (before.answeredBy[who] ?? 0);
  return { requests: after.sent - before.sent, failures: after.failures.slice(before.failures.length).map((f) => f.error), answered };
}

/** Runs every step in turn; the mesh must be running with every provider healthy. */
export async function runSelfHealingScenario(mesh: LocalMesh, options: ScenarioOptions): Promise<StepFigure[]> {
  const log = options.log ?? (() => undefined);
  const { service, providers } = options;
  const sidecar = sidecarOf(mesh, options.consumer, service);
  const hostOf = (name: string): LoopbackHost => mesh.hosts.find((h) => h.hostname === name)!;
  const providerPort = (name: string) => Number(JSON.parse(hostOf(name).files.get('/etc/smartstack/nerve.conf.json')!).services[service].port);
  const address = (name: string) => `${hostOf(name).address}:${providerPort(name)}`;
  const allServing = async () => JSON.stringify(await sidecar.serving()) === JSON.stringify(providers.map(address).sort());
  await eventually('every provider in service at the consumer', allServing, STEP_TIMEOUT_MS, POLL_MS);

  const loop: RequestLoop = startRequestLoop(sidecar.host.address, sidecar.port, { maxDurationMs: 10 * 60000, maxRequests: 200000, pauseMs: 5 });
  const figures: StepFigure[] = [];
  const step = async (name: string, convergedWhen: string, disrupt: () => Promise<void>, converged: () => Promise<boolean | undefined>, settle?: () => Promise<void>) => {
    log(`step: ${name}`);
    const before = loop.snapshot();
    const start = Date.now();
    await disrupt();
    await eventually(`${name}: ${convergedWhen}`, converged, STEP_TIMEOUT_MS, POLL_MS);
    const convergenceMs = Date.now() - start;
    const d = diff(before, loop.snapshot());
    figures.push({ step: name, requests: d.requests, failed: d.failures.length, convergenceMs, convergedWhen, failures: d.failures.slice(0, 5) });
    log(`  ${d.requests} requests, ${d.failures.length} failed, converged in ${convergenceMs} ms`);
    if (settle) await settle();
  };

  const [first, second] = providers;
  const backend = (name: string) => `${name}/backend:${service}`;
  const answeredBySince = (snapshot: RequestLoopResult, who: string) => (loop.snapshot().answeredBy[`${service} ${who}`] ?? 0) > (snapshot.answeredBy[`${service} ${who}`] ?? 0);
  const registered = async (names: string[]) => JSON.stringify(await registeredInstances(mesh, service)) === JSON.stringify([...names].sort());

  try {
    await step(
      `kill -9 of a provider backend (${first})`,
      `${first} deregistered and out of HAProxy`,
      () => mesh.kill(backend(first), 'SIGKILL'),
      async () => (await registered(providers.filter((p) => p !== first))) && !(await sidecar.serving()).includes(address(first)),
    );

    let mark = loop.snapshot();
    await step(
      `a new provider appearing (${first} back)`,
      `${first} answers requests through the consumer`,
      async () => {
        mark = loop.snapshot();
        mesh.restart(backend(first));
      },
      async () => answeredBySince(mark, first),
    );

    await step(
      `graceful stop of a provider (${second})`,
      `${second} deregistered and out of HAProxy`,
      () => mesh.kill(`${second}/nerve`, 'SIGTERM'),
      async () => (await registered(providers.filter((p) => p !== second))) && !(await sidecar.serving()).includes(address(second)),
      async () => {
        mesh.restart(`${second}/nerve`);
        await eventually(`${second} back in service`, allServing, STEP_TIMEOUT_MS, POLL_MS);
      },
    );

    const members = mesh.members.map((m) => m.hostname);
    let leader = '';
    await step(
      'kill -9 of the ZooKeeper leader',
      'a new leader serves and the registrations are intact',
      async () => {
        const status = await mesh.status();
        leader = status.members.find((m) => m.mode === 'leader')!.hostname;
        await mesh.kill(`${leader}/zookeeper`, 'SIGKILL');
      },
      async () => {
        const status = await mesh.status();
        return status.members.some((m) => m.mode === 'leader' && m.hostname !== leader) && (await registered(providers));
      },
      async () => {
        mesh.restart(`${leader}/zookeeper`);
        await eventually('the old leader back as a follower', async () => (await mesh.status()).members.every((m) => m.mode !== ''), STEP_TIMEOUT_MS, POLL_MS);
      },
    );

    const outage = options.ensembleOutageMs ?? 20000;
    await step(
      `all ZooKeeper members stopped for ${outage / 1000} s, then restarted`,
      'the ensemble serves again and every provider is registered and in service',
      async () => {
        for (const m of members) await mesh.kill(`${m}/zookeeper`, 'SIGTERM');
        await new Promise((r) => setTimeout(r, outage));
        for (const m of members) mesh.restart(`${m}/zookeeper`);
      },
      async () => (await registered(providers)) && allServing(),
    );

    const synapseLog = join(mesh.workdir, 'logs', `${options.consumer}-synapse.log`);
    let logOffset = 0;
    await step(
      'kill -9 of synapse, and its restart',
      'the new synapse has read the registry and HAProxy has every provider in service',
      async () => {
        await mesh.kill(`${options.consumer}/synapse`, 'SIGKILL');
        logOffset = statSync(synapseLog).size;
        mesh.restart(`${options.consumer}/synapse`);
      },
      async () => readFileSync(synapseLog, 'utf8').slice(logOffset).includes('"msg":"instances changed"') && allServing(),
    );

    let reloadsBefore = 0;
    await step(
      'a configuration change that reloads HAProxy',
      'a new worker serves with every provider in service',
      async () => {
        reloadsBefore = (await sidecar.master.processes()).reloads;
        await mesh.reloadHaproxy(options.consumer);
      },
      async () => (await sidecar.master.processes()).reloads > reloadsBefore && allServing(),
    );
  } finally {
    await loop.stop();
  }
  return figures;
}

/** The README's table. */
export function renderFigures(figures: StepFigure[]): string {
  const lines = ['| step | requests | failed | converged in | converged when |', '| --- | ---: | ---: | ---: | --- |'];
  for (const f of figures) lines.push(`| ${f.step} | ${f.requests} | ${f.failed} | ${(f.convergenceMs / 1000).toFixed(1)} s | ${f.convergedWhen} |`);
  return lines.join('\n');
}
