/**
 * A health-check change applied the way `terraform apply` applies it to three hosts in parallel,
 * under a bounded request load through the consumer's local port, repeated:
 *
 * - both providers: nerve restarts with the new check (it deregisters on SIGTERM and registers
 *   again once the check has passed `rise` times);
 * - the consumer: HAProxy reloads as its unit's ExecReload does (`haproxy -c`, dump the server
 *   state, reload through the master CLI), then synapse restarts with the new synapse.conf.json.
 *
 * The configuration files are the constructs' own (`renderMeshConfigs`), moved onto loopback; the
 * agents run from the transpiled tree, as built JavaScript runs on a host. Each change alternates
 * `rise` between 3 and 2 (the default example's check: every 2 s, fall 2). Per change it reports
 * the failed requests, the time until both providers were back in service at the right address and
 * port with the new check in haproxy.cfg and in HAProxy itself (`show stat` check_rise), the slot
 * count, and servers at a wrong address or port.
 *
 *   ts-node -P tsconfig.dev.json bench/rolling-change.ts [--changes 5]
 */
import { spawnSync } from 'child_process';
import { readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { HealthCheck } from '../lib';
import { isInService } from '../lib/agent/haproxy-runtime';
import { ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { startBackend, TestBackend } from '../test/support/agent-backend';
import { startRequestLoop } from '../test/support/agent-request-loop';
import { freePort, HAPROXY_BINARY, HaproxyProcess, startHaproxy } from '../test/support/haproxy-process';
import { startLocalCluster, ZookeeperCluster } from '../test/support/zookeeper-cluster';
import { Agent, startAgent } from './convergence';
import { localNerveConfig, localSynapseConfig, renderMeshConfigs, SERVICE } from './mesh-configs';
import { scratchDir, sleep } from './subprocess';
import { transpiledTree, removeTranspiledTree } from './transpile';

const PROVIDERS = ['app1', 'app2'];
const ADDRESSES = ['127.0.12.51', '127.0.12.52'];
const INTERVAL_S = 2;
const CONVERGE_LIMIT_MS = 60_000;

interface ChangeResult {
  readonly rise: number;
  readonly requests: number;
  readonly failed: number;
  readonly firstFailures: string[];
  readonly convergedMs?: number;
  readonly slots: number;
  readonly wrongServers: string[];
  readonly reloads: number;
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--changes');
  const changes = at > 0 ? Number(process.argv[at + 1]) : 5;
  const jsRoot = transpiledTree();
  const dir = scratchDir('bench-rolling-change-');
  const agents = new Map<string, Agent>();
  const backends = new Map<string, TestBackend>();
  let cluster: ZookeeperCluster | undefined;
  let haproxy: HaproxyProcess | undefined;
  let zk: ZkSession | undefined;
  try {
    cluster = await startLocalCluster(3, { firstAddress: 131 });
    const zkHosts = cluster.members.map((m) => m.clientAddress);
    const [localPort, statsPort] = [await freePort(), await freePort()];
    const mesh = (rise: number) => renderMeshConfigs({
      localPort,
      statsPort,
      healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: INTERVAL_S, rise, fall: 2 }),
      providers: PROVIDERS,
    });
    const synapseFile = join(dir, 'synapse.conf.json');
    const writeSynapse = (rise: number, paths: HaproxyProcess | Parameters<Parameters<typeof startHaproxy>[0]>[0]) => {
      const mapped = localSynapseConfig(mesh(rise).synapseConfigJson, paths, zkHosts);
      // The ensemble here has no ACLs and there are no credential files: discovery reads anonymously.
      const services = Object.fromEntries(Object.entries(mapped.services).map(([name, s]) => [name, { ...s, discovery: { ...s.discovery, auth_file: undefined } }]));
      const config = { ...mapped, services };
      writeFileSync(synapseFile, `${JSON.stringify(config, null, 2)}\n`);
      return config;
    };
    haproxy = await startHaproxy((paths) => renderHaproxyConfig(writeSynapse(3, paths), {}));
    const h = haproxy;
    for (const [i, name] of PROVIDERS.entries()) backends.set(name, await startBackend(ADDRESSES[i], 0, true));
    const nerveFile = (name: string) => join(dir, `nerve-${name}.conf.json`);
    const writeNerve = (name: string, rise: number) => {
      const b = backends.get(name)!;
      const config = JSON.parse(localNerveConfig(mesh(rise).nerveConfigJson[name], { host: b.host, port: b.port }, zkHosts)) as { services: Record<string, Record<string, unknown>> };
      for (const service of Object.values(config.services)) {
        delete service.zk_auth_file;
        delete service.zk_read_acl;
      }
      writeFileSync(nerveFile(name), `${JSON.stringify(config, null, 2)}\n`);
    };
    const start = (name: string, agent: 'nerve' | 'synapse', file: string) => agents.set(name, startAgent(jsRoot, name, agent, file));
    for (const name of PROVIDERS) {
      writeNerve(name, 3);
      start(name, 'nerve', nerveFile(name));
    }
    start('synapse', 'synapse', synapseFile);
    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 10_000 });
    await zk.start(30_000);

    const expected = [...backends.values()].map((b) => `${b.host}:${b.port}`).sort();
    const converged = async (rise: number): Promise<boolean> => {
      const servers = await h.runtime.serversState(SERVICE).catch(() => []);
      const up = servers.filter((s) => isInService(s) && s.operationalState === 2).map((s) => `${s.address}:${s.port}`).sort();
      const filled = readFileSync(h.configPath, 'utf8').split('\n').filter((l) => /^\s*server slot\d+ /.test(l) && !/ disabled$/.test(l));
      const registered = await zk!.getChildren(`/services/${SERVICE}`).catch(() => [] as string[]);
      return up.join() === expected.join() && filled.length === 2 && filled.every((l) => l.includes(` rise ${rise} `)) && registered.length === 2
        && (await runningRise()).join() === expected.map(() => rise).join();
    };
    /** The `rise` HAProxy itself runs for the servers in service (`show stat`), not what a file says. */
    const runningRise = async (): Promise<number[]> => {
      const [header, ...rows] = (await h.runtime.command('show stat').catch(() => '')).split('\n').map((l) => l.replace(/^# /, '').split(','));
      const col = (name: string) => header.indexOf(name);
      return rows.filter((r) => r[col('pxname')] === SERVICE && /^slot\d+$/.test(r[col('svname')] ?? '') && expected.includes(r[col('addr')]))
        .map((r) => Number(r[col('check_rise')]));
    };
    const ready = Date.now() + CONVERGE_LIMIT_MS;
    while (!(await converged(3))) {
      if (Date.now() > ready) throw new Error(`the mesh did not converge:\n${[...agents.values()].map((a) => `--- ${a.name}\n${a.log().slice(-1500)}`).join('\n')}`);
      await sleep(200);
    }

    const loop = startRequestLoop('127.0.0.1', localPort, { pauseMs: 5, maxRequests: 200_000, maxDurationMs: 600_000, timeoutMs: 5000 });
    const results: ChangeResult[] = [];
    try {
      await sleep(1000);
      for (let c = 0; c < changes; c++) {
        const rise = c % 2 === 0 ? 2 : 3;
        const before = loop.snapshot();
        const reloadsBefore = (await h.processes()).reloads;
        const t0 = Date.now();
        await Promise.all([
          ...PROVIDERS.map(async (name) => {
            await agents.get(name)!.stop();
            writeNerve(name, rise);
            start(name, 'nerve', nerveFile(name));
          }),
          (async () => {
            // The consumer host: `systemctl reload-or-restart` of HAProxy, then `systemctl restart` of synapse.
            const check = spawnSync(HAPROXY_BINARY, ['-c', '-q', '-f', h.configPath], { encoding: 'utf8' });
            if (check.status !== 0) throw new Error(`haproxy -c: ${check.stderr}`);
            writeFileSync(h.stateFile, await h.runtime.serversStateFile());
            await h.master.reload();
            await agents.get('synapse')!.stop();
            writeSynapse(rise, h);
            start('synapse', 'synapse', synapseFile);
          })(),
        ]);
        let convergedMs: number | undefined;
        while (Date.now() - t0 < CONVERGE_LIMIT_MS) {
          if (await converged(rise)) {
            convergedMs = Date.now() - t0;
            break;
          }
          await sleep(100);
        }
        await sleep(2000);
        const after = loop.snapshot();
        const servers = await h.runtime.serversState(SERVICE);
        const failures = after.failures.slice(before.failures.length);
        results.push({
          rise,
          requests: after.sent - before.sent,
          failed: failures.length,
          firstFailures: failures.slice(0, 3).map((f) => `+${f.at - t0} ms ${f.error.trim()}`),
          convergedMs,
          slots: servers.length,
          wrongServers: servers.filter((s) => isInService(s) && !expected.includes(`${s.address}:${s.port}`)).map((s) => `${s.server} ${s.address}:${s.port}`),
          reloads: (await h.processes()).reloads - reloadsBefore,
        });
        console.error(`change ${c + 1}: ${JSON.stringify(results[results.length - 1])}`);
      }
    } finally {
      await loop.stop();
    }
    const total = results.reduce((n, r) => n + r.failed, 0);
    const sent = results.reduce((n, r) => n + r.requests, 0);
    console.log('| change | requests | failed | converged in | slots after | servers at a wrong address | reloads |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const [i, r] of results.entries()) {
      console.log(`| ${i + 1}: rise -> ${r.rise} | ${r.requests} | ${r.failed} | ${r.convergedMs === undefined ? `not within ${CONVERGE_LIMIT_MS / 1000} s` : `${(r.convergedMs / 1000).toFixed(1)} s`} | ${r.slots} | ${r.wrongServers.join(', ') || 'none'} | ${r.reloads} |`);
    }
    console.log(`\n${total} failed of ${sent} requests over ${results.length} changes`);
    // Failed requests are a figure; a change that never converged means the benchmark no longer works.
    if (results.some((r) => r.convergedMs === undefined)) process.exitCode = 1;
  } finally {
    await zk?.close();
    for (const a of agents.values()) await a.stop();
    for (const b of backends.values()) await b.kill().catch(() => undefined);
    await haproxy?.stop();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
    removeTranspiledTree();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
