/**
 * `smartstack graph` on the default example: the diagram names every host and every provide and
 * consume edge the constructs declared, and the README shows exactly that diagram.
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { HaproxySidecar, VdsNode } from '../lib';
import { buildApp } from '../examples/main';

const bin = join(__dirname, '..', 'bin', 'smartstack');
const outdir = mkdtempSync(join(tmpdir(), 'smartstack-graph-'));
const app = buildApp(outdir);
app.synth();
const constructs = app.node.findAll();
const hosts = constructs.filter((c): c is VdsNode => c instanceof VdsNode);
const sidecars = constructs.filter((c): c is HaproxySidecar => c instanceof HaproxySidecar);

function graph(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'graph', outdir, ...args], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('smartstack graph, Mermaid', () => {
  const { status, stdout: mermaid } = graph();
  /** Mermaid node id of the node whose label is `label`. */
  const idOf = (label: RegExp) => new RegExp(`^\\s+(\\w+)${label.source}$`, 'm').exec(mermaid)?.[1];

  test('exits 0 with a flowchart', () => {
    expect(status).toBe(0);
    expect(mermaid).toMatch(/^flowchart LR\n/);
  });

  test('names every host with its address, the members inside the ensemble', () => {
    expect(hosts.length).toBeGreaterThanOrEqual(6);
    for (const h of hosts) expect(idOf(new RegExp(`\\["${h.hostname}<br/>${h.privateAddress.replace(/\./g, '\\.')}"\\]`))).toBeDefined();
    const ensemble = /subgraph ensemble\["ZooKeeper ensemble"\]\n([\s\S]*?)\n {2}end\n/.exec(mermaid)?.[1] ?? '';
    expect([...ensemble.matchAll(/\["(\w+)<br\/>/g)].map((m) => m[1]).sort()).toEqual(['zk1', 'zk2', 'zk3']);
  });

  test('draws every provide edge (with the port) and every consume edge (with the local port) the sidecars declare', () => {
    const edges = sidecars.flatMap((s) => [
      ...s.provides.map((service) => ({ host: s.host, service, label: `provides :${service.port}` })),
      ...s.consumes.map((service) => ({ host: s.host, service, label: `consumes on localhost:${service.localPort}` })),
    ]);
    expect(edges.length).toBe(3);
    for (const e of edges) {
      const from = idOf(new RegExp(`\\["${e.host.hostname}<br/>[\\d.]+"\\]`));
      const to = idOf(new RegExp(`\\(\\["${e.service.serviceName}"\\]\\)`));
      expect(mermaid).toContain(`  ${from} -->|"${e.label}"| ${to}\n`);
    }
    // Nothing else is drawn from a host to a service.
    expect(mermaid.split('\n').filter((l) => /-->\|/.test(l))).toHaveLength(edges.length);
  });

  test("the README's diagram is this one", () => {
    const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
    expect(/```mermaid\n([\s\S]*?)```/.exec(readme)?.[1]).toBe(mermaid);
  });

  test('Graphviz source names the same hosts and edges', () => {
    const dot = graph('--format', 'dot').stdout;
    for (const h of hosts) expect(dot).toContain(`"host:${h.hostname}" [label="${h.hostname}\\n${h.privateAddress}", shape=box]`);
    expect(dot).toContain('"host:app1" -> "service:user-service" [label="provides :8080"];');
    expect(dot).toContain('"host:web1" -> "service:user-service" [label="consumes on localhost:3210"];');
  });

  test('an unknown format is refused, naming the choices', () => {
    const r = graph('--format', 'png');
    expect(r.stderr.split('\n')[0]).toBe('smartstack graph: --format png: expected one of mermaid, dot, svg');
    expect(r.status).toBe(2);
  });
});
