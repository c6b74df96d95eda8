/**
 * Benchmark 3, sidecar overhead: the same HTTP client and the same backend, reached three ways in
 * interleaved rounds of one run:
 *
 * - direct: straight to the backend;
 * - minimal: through a hand-written HAProxy config (one listen, one server) — the floor of any hop;
 * - sidecar: through the haproxy.cfg our renderer writes for a HaproxySidecar (health checks,
 *   retries, redispatch, stats and Prometheus listener on), with the backend in a server slot.
 *
 * The backend is HAProxy itself answering `http-request return` on one thread: it spends fewer CPU
 * cycles per request than a Node http server, so more of the 2 shared cores go to the client and
 * the proxy under test, and the differences between the proxies are not hidden behind a slow backend.
 */
import { mkdtempSync, rmSync } from 'fs';
import { get } from 'http';
import { tmpdir } from 'os';
import { join } from 'path';
import { HealthCheck } from '../lib';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { checkHaproxyConfig, freePort, HaproxyPaths, HaproxyProcess, startHaproxy } from '../test/support/haproxy-process';
import { hasWrk, LoadResult, runLoad, WRK_MISSING } from './http-load';
import { localSynapseConfig, renderMeshConfigs, SERVICE } from './mesh-configs';
import { hasCallgrind, instructionsPerRequest } from './proxy-instructions';
import { BenchContext } from './suite';
import { median, ratio, round } from './stats';
import { sleep } from './subprocess';
import { count, perSecond, Row, times, us } from './table';

type Target = 'direct' | 'minimal' | 'sidecar';
const TARGETS: Target[] = ['direct', 'minimal', 'sidecar'];

interface LoadKind {
  readonly name: string;
  readonly connections: number;
}
/** One connection shows the latency a request pays; 32 show the throughput the hop allows. */
const LOADS: LoadKind[] = [
  { name: 'latency (1 conn)', connections: 1 },
  { name: 'throughput (32 conns)', connections: 32 },
];

/** The sidecar's haproxy.cfg as synapse writes it, with the backend in slot 1; paths moved into `paths.dir`. */
function sidecarConfig(paths: HaproxyPaths, localPort: number, statsPort: number, backendPort: number): string {
  const mesh = renderMeshConfigs({
    localPort,
    statsPort,
    healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: 3, fall: 2 }),
    providers: ['app1'],
  });
  return renderHaproxyConfig(localSynapseConfig(mesh.synapseConfigJson, paths), { [SERVICE]: [{ host: '127.0.0.1', port: backendPort }] });
}

function minimalConfig(paths: HaproxyPaths, port: number, backendPort: number): string {
  return [
    'global',
    '  maxconn 4096',
    `  stats socket ${paths.adminSocket} mode 600 level admin`,
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 60s',
    '  timeout server 60s',
    'listen minimal',
    `  bind 127.0.0.1:${port}`,
    `  server s1 127.0.0.1:${backendPort}`,
    '',
  ].join('\n');
}

function backendConfig(paths: HaproxyPaths, port: number): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    `  stats socket ${paths.adminSocket} mode 600 level admin`,
    'defaults',
    '  mode http',
    '  timeout client 60s',
    'frontend backend',
    `  bind 127.0.0.1:${port}`,
    '  http-request return status 200 content-type text/plain string ok',
    '',
  ].join('\n');
}

async function started(name: string, render: (paths: HaproxyPaths) => string): Promise<HaproxyProcess> {
  let text = '';
  const proc = await startHaproxy((paths) => {
    text = render(paths);
    const check = checkHaproxyConfig(text);
    if (!check.ok) throw new Error(`the ${name} haproxy.cfg does not pass haproxy -c:\n${check.output}\n${text}`);
    return text;
  });
  return proc;
}

async function waitForServerUp(proc: HaproxyProcess, backend: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await proc.runtime.serversState(backend).catch(() => []);
    if (states.some((s) => s.server === 'slot1' && s.operationalState === 2)) return;
    if (Date.now() > deadline) throw new Error(`slot1 of ${backend} did not come up within ${timeoutMs} ms: ${JSON.stringify(states.slice(0, 2))}`);
    await sleep(100);
  }
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
  });
}

export async function runSidecarOverhead(ctx: BenchContext): Promise<{ rows: Row[]; result: unknown }> {
  const rounds = ctx.quick ? 2 : 3;
  const durationS = ctx.quick ? 2 : 5;
  const wrk = await hasWrk();
  if (!wrk) ctx.log(`overhead: ${WRK_MISSING}`);

  const [backendPort, minimalPort, localPort, statsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const procs: HaproxyProcess[] = [];
  try {
    const backend = await started('backend', (p) => backendConfig(p, backendPort));
    procs.push(backend);
    const minimal = await started('minimal', (p) => minimalConfig(p, minimalPort, backendPort));
    procs.push(minimal);
    const sidecar = await started('sidecar', (p) => sidecarConfig(p, localPort, statsPort, backendPort));
    procs.push(sidecar);
    await waitForServerUp(sidecar, SERVICE, 15_000);

    const urls: Record<Target, string> = {
      direct: `http://127.0.0.1:${backendPort}/`,
      minimal: `http://127.0.0.1:${minimalPort}/`,
      sidecar: `http://127.0.0.1:${localPort}/`,
    };
    // Warm-up: first connections and the first health checks are not measured.
    for (const t of TARGETS) await runLoad({ url: urls[t], connections: 4, durationS: 1 });

    const samples: Record<string, Record<Target, LoadResult[]>> = {};
    for (const load of LOADS) samples[load.name] = { direct: [], minimal: [], sidecar: [] };
    let roundsRun = 0;
    for (let r = 0; r < rounds; r++) {
      if (r > 0 && Date.now() > ctx.deadline) break;
      // Rotate the order each round, so that drift in the machine's load falls on every target alike.
      const order = TARGETS.map((_, i) => TARGETS[(i + r) % TARGETS.length]);
      for (const load of LOADS) {
        for (const t of order) {
          const res = await runLoad({ url: urls[t], connections: load.connections, durationS });
          samples[load.name][t].push(res);
        }
      }
      roundsRun++;
      ctx.log(`overhead: round ${r + 1}/${rounds} done`);
    }

    const metrics = await fetchText(`http://127.0.0.1:${statsPort}/metrics`).catch((e: Error) => `error: ${e.message}`);
    const served = /haproxy_server_http_responses_total\{proxy="user-service",server="slot1",code="2xx"\} (\d+)/.exec(metrics)?.[1];
    const slotState = (await sidecar.runtime.serversState(SERVICE)).find((s) => s.server === 'slot1');
    const reloads = (await sidecar.processes()).reloads;
    // The measured proxies are done; the backend serves the instruction counts.
    await minimal.stop();
    await sidecar.stop();
    const instructions = await countInstructions(ctx, backendPort);

    const facts = { rounds: roundsRun, durationS, client: wrk ? 'wrk' : 'node', sidecarServed2xx: served === undefined ? null : Number(served), metricsBytes: metrics.length, slot1Up: slotState?.operationalState === 2, reloads };
    const out = summarize(samples, facts);
    return { rows: [...out.rows, ...instructionRows(instructions)], result: { ...(out.result as object), instructionsPerRequest: instructions } };
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

/**
 * Variants of the sidecar config that each drop one feature, to tell what its extra cost comes
 * from (full runs only). Diagnostics: none of them is a config we ship.
 */
const ABLATIONS: Array<[string, (config: string) => string]> = [
  ['sidecar without L7 retries', (c) => c.split('\n').filter((l) => !/^\s*(retry-on|http-request disable-l7-retry)\b/.test(l)).join('\n')],
  ['sidecar without logging', (c) => c.split('\n').filter((l) => !/^\s*log\b/.test(l)).join('\n')],
  ['sidecar without checks/observe', (c) => c.split('\n').filter((l) => !/^\s*option httpchk\b/.test(l)).join('\n').replace(/ check inter \S+ rise \d+ fall \d+/g, '').replace(/ observe layer4 error-limit \d+ on-error mark-down/g, '')],
];

type InstructionFigures = Record<string, number> | { skipped: string };

/** Instructions per request of the minimal and the sidecar config (and, in full runs, ablations), under callgrind. */
async function countInstructions(ctx: BenchContext, backendPort: number): Promise<InstructionFigures> {
  if (!(await hasCallgrind())) return { skipped: 'valgrind is not installed (Debian package valgrind)' };
  const requests = ctx.quick ? 2000 : 5000;
  const dir = mkdtempSync(join(tmpdir(), 'bench-instr-'));
  const fakePaths: HaproxyPaths = { dir, configPath: join(dir, 'haproxy.cfg'), adminSocket: join(dir, 'admin.sock'), masterSocket: join(dir, 'master.sock'), stateFile: join(dir, 'state') };
  try {
    const out: Record<string, number> = {};
    const port = await freePort();
    out.minimal = (await instructionsPerRequest(minimalConfig(fakePaths, port, backendPort), port, requests)).instructionsPerRequest;
    const sidecar = sidecarConfig(fakePaths, port, await freePort(), backendPort);
    out.sidecar = (await instructionsPerRequest(sidecar, port, requests)).instructionsPerRequest;
    if (!ctx.quick) {
      for (const [name, edit] of ABLATIONS) {
        if (Date.now() > ctx.deadline + 60_000) break;
        out[name] = (await instructionsPerRequest(edit(sidecar), port, requests)).instructionsPerRequest;
      }
    }
    ctx.log(`overhead: instructions per request ${Object.entries(out).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}`);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function instructionRows(f: InstructionFigures): Row[] {
  if ('skipped' in f) return [{ bench: 'overhead', scenario: 'callgrind', metric: 'instructions per request', ours: 'skipped', baseline: '', ratio: '', note: String(f.skipped) }];
  const rows: Row[] = [{
    bench: 'overhead',
    scenario: 'callgrind, 1 thread',
    metric: 'proxy instructions per request',
    ours: count(f.sidecar),
    baseline: `${count(f.minimal)} minimal`,
    ratio: times(ratio(f.sidecar, f.minimal)),
    note: 'noise-free cost of the config itself',
  }];
  for (const [name] of ABLATIONS) {
    if (f[name] === undefined) continue;
    rows.push({ bench: 'overhead', scenario: 'callgrind, 1 thread', metric: name, ours: count(f[name]), baseline: `${count(f.minimal)} minimal`, ratio: times(ratio(f[name], f.minimal)), note: `diagnostic: ${count(f.sidecar - f[name])} of the sidecar's` });
  }
  return rows;
}

interface RunFacts {
  readonly rounds: number;
  readonly durationS: number;
  readonly client: string;
  /** 2xx answers the sidecar's slot1 counted in its Prometheus metrics: the traffic went through the slot. */
  readonly sidecarServed2xx: number | null;
  readonly metricsBytes: number;
  readonly slot1Up: boolean;
  readonly reloads: number;
}

function summarize(samples: Record<string, Record<Target, LoadResult[]>>, facts: RunFacts): { rows: Row[]; result: unknown } {
  const rows: Row[] = [];
  const result: Record<string, unknown> = { ...facts, backend: 'haproxy http-request return, 1 thread', loads: {} };
  for (const load of LOADS) {
    const s = samples[load.name];
    const med = (t: Target, f: (r: LoadResult) => number) => median(s[t].map(f));
    const fig = (t: Target) => ({
      rps: med(t, (r) => r.requestsPerSecond),
      p50: med(t, (r) => r.p50us),
      p99: med(t, (r) => r.p99us),
      failed: s[t].reduce((n, r) => n + r.failed, 0),
      requests: s[t].reduce((n, r) => n + r.requests, 0),
    });
    const d = fig('direct');
    const m = fig('minimal');
    const c = fig('sidecar');
    const scenario = load.name;
    rows.push({ bench: 'overhead', scenario, metric: 'throughput', ours: perSecond(c.rps), baseline: `${perSecond(m.rps)} minimal, ${perSecond(d.rps)} direct`, ratio: times(ratio(c.rps, m.rps)), note: 'vs minimal; target >= 0.95x' });
    for (const [name, key] of [['p50', 'p50'], ['p99', 'p99']] as const) {
      const addedOurs = c[key] - d[key];
      const addedMin = m[key] - d[key];
      rows.push({
        bench: 'overhead',
        scenario,
        metric: `latency ${name} (added over direct)`,
        ours: `${us(c[key])} (${signed(addedOurs)})`,
        baseline: `${us(m[key])} (${signed(addedMin)}) minimal, ${us(d[key])} direct`,
        // A hop cannot make requests faster: a negative difference is noise, and so is its ratio.
        ratio: addedOurs > 0 && addedMin > 0 ? times(ratio(addedOurs, addedMin)) : 'noise',
        note: 'added vs added; target <= 1.05x',
      });
    }
    rows.push({ bench: 'overhead', scenario, metric: 'failed requests', ours: String(c.failed), baseline: `${m.failed} minimal, ${d.failed} direct`, ratio: '', note: `of ${c.requests} / ${m.requests} / ${d.requests}` });
    (result.loads as Record<string, unknown>)[load.name] = {
      connections: load.connections,
      direct: roundFig(d),
      minimal: roundFig(m),
      sidecar: roundFig(c),
      ratios: {
        throughputSidecarOverMinimal: round(ratio(c.rps, m.rps)),
        throughputMinimalOverDirect: round(ratio(m.rps, d.rps)),
        addedP50SidecarOverMinimal: round(ratio(c.p50 - d.p50, m.p50 - d.p50)),
        addedP99SidecarOverMinimal: round(ratio(c.p99 - d.p99, m.p99 - d.p99)),
      },
      samples: Object.fromEntries(TARGETS.map((t) => [t, s[t]])),
    };
  }
  rows.push({
    bench: 'overhead',
    scenario: 'sidecar checks',
    metric: 'slot1 UP, metrics, reloads',
    ours: `${facts.slot1Up ? 'UP' : 'DOWN'}, ${facts.sidecarServed2xx ?? 'no'} 2xx in /metrics, ${facts.reloads} reloads`,
    baseline: '',
    ratio: '',
    note: `${facts.client === 'wrk' ? 'wrk' : 'Node client: install wrk for better figures (sudo apt-get install -y wrk)'}, ${facts.rounds} rounds x ${facts.durationS} s`,
  });
  return { rows, result };
}

function signed(micros: number): string {
  return micros < 0 ? `-${us(-micros)}` : `+${us(micros)}`;
}

function roundFig(f: { rps: number; p50: number; p99: number; failed: number; requests: number }) {
  return { rps: round(f.rps, 0), p50us: round(f.p50, 0), p99us: round(f.p99, 0), failed: f.failed, requests: f.requests };
}
