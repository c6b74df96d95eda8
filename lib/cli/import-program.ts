/**
 * Writes an imported estate as a TypeScript program using the constructs: one VdsNode per ZooKeeper
 * host and per app host, the ensemble, a SmartStackService per registration path, and a sidecar per
 * app host with what it provides and consumes. The notes become comments at the top.
 */
import { isIpAddress } from '../schema/haproxy-safe';
import { ImportedCheck, ImportedEstate, ImportError } from './import-estate';

export interface ProgramOptions {
  /** Addresses of hosts named in the files (ZooKeeper hosts, default servers), by name. */
  readonly addresses?: Record<string, string>;
  /** The module the constructs are imported from. */
  readonly library?: string;
  /** The stack's name. */
  readonly stackName?: string;
}

/** An identifier for a variable from any name: letters, digits and `_`, not starting with a digit. */
function identifier(name: string, taken: Set<string>): string {
  let id = name.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '') || 'x';
  if (/^[0-9]/.test(id)) id = `_${id}`;
  let unique = id;
  for (let n = 2; taken.has(unique); n++) unique = `${id}_${n}`;
  taken.add(unique);
  return unique;
}

/** A single-quoted TypeScript string. */
const quote = (s: string): string => `'${s.replace(/[\\']/g, '\\$&').replace(/\n/g, '\\n')}'`;

function checkExpression(check: ImportedCheck | undefined): string | undefined {
  if (!check) return undefined;
  const options: string[] = [];
  if (check.type === 'http') options.push(`path: ${quote(check.path ?? '/')}`);
  if (check.intervalSeconds !== undefined) options.push(`intervalSeconds: ${check.intervalSeconds}`);
  if (check.timeoutSeconds !== undefined) options.push(`timeoutSeconds: ${check.timeoutSeconds}`);
  if (check.rise !== undefined) options.push(`rise: ${check.rise}`);
  if (check.fall !== undefined) options.push(`fall: ${check.fall}`);
  return `HealthCheck.${check.type}({ ${options.join(', ')} })`;
}

/** The program; throws ImportError when an address is missing (naming the host and how to give it). */
export function renderProgram(estate: ImportedEstate, options: ProgramOptions = {}): string {
  const library = options.library ?? 'cdktf-smartstack';
  const addresses = options.addresses ?? {};
  estate = { ...estate, zookeeper: estate.zookeeper.map((z) => ({ ...z, host: addresses[z.host] ?? z.host })) };
  const taken = new Set(['app', 'ensemble', 'stack']);
  const lines: string[] = [];
  const out = (line = '') => lines.push(line);
  const notes = [...estate.notes];
  let usesRuntime = false;

  if (estate.zookeeper.length === 0) throw new ImportError('the files name no ZooKeeper host (nerve zk_hosts, synapse discovery.hosts): nothing to build an ensemble from');
  const ports = new Set(estate.zookeeper.map((z) => z.port));
  if (ports.size > 1) throw new ImportError(`the files name ZooKeeper client ports ${[...ports].join(', ')}: an ensemble has one`);
  for (const z of estate.zookeeper) {
    if (!isIpAddress(z.host)) throw new ImportError(`ZooKeeper host ${z.host} is a name, not an address: give its address with --address ${z.host}=IP`);
  }
  for (const h of estate.hosts) {
    if (h.address === undefined) throw new ImportError(`host ${h.name} has no address in its files (nerve's host): give it with --address ${h.name}=IP`);
    if (!isIpAddress(h.address)) throw new ImportError(`host ${h.name}: address ${h.address} is a name, not an address: give it with --address ${h.name}=IP`);
  }

  out('export class ImportedStack extends TerraformStack {');
  out('  public constructor(scope: Construct, id: string) {');
  out('    super(scope, id);');
  const members = estate.zookeeper.map((z, i) => {
    const v = identifier(`zk${i + 1}`, taken);
    out(`    const ${v} = new VdsNode(this, ${quote(`zk${i + 1}`)}, {`);
    out(`      privateAddress: ${quote(z.host)},`);
    out('      memoryMiB: 4096,');
    out('      disks: [');
    out(`        { name: 'zk-data', device: ${quote(`/dev/disk/by-id/virtio-zk${i + 1}-data`)} },`);
    out(`        { name: 'zk-txlog', device: ${quote(`/dev/disk/by-id/virtio-zk${i + 1}-txlog`)} },`);
    out('      ],');
    out('    });');
    return v;
  });
  const clientPort = estate.zookeeper[0].port;
  const development = members.length < 3 ? ', allowDevelopmentSize: true' : '';
  out(`    const ensemble = new ZookeeperEnsemble(this, 'zk', { members: [${members.join(', ')}], dataDisk: 'zk-data', txnLogDisk: 'zk-txlog'${clientPort !== 2181 ? `, clientPort: ${clientPort}` : ''}${development} });`);
  out();

  const serviceVar = new Map<string, string>();
  for (const s of estate.services) {
    const v = identifier(s.name, taken);
    serviceVar.set(s.discoveryPath, v);
    const props = ['ensemble', `serviceName: ${quote(s.name)}`, `discoveryPath: ${quote(s.discoveryPath)}`];
    if (s.port === undefined) throw new ImportError(`service ${s.name} (${s.discoveryPath}): no host registers it, so its port is unknown; add the nerve file of one provider`);
    props.push(`port: ${s.port}`);
    if (s.localPort !== undefined) props.push(`localPort: ${s.localPort}`);
    const check = checkExpression(s.check);
    if (check) props.push(`healthCheck: ${check}`);
    if (s.defaultServers.length > 0) {
      const servers = s.defaultServers.map((d) => {
        const host = addresses[d.host] ?? d.host;
        if (!isIpAddress(host)) throw new ImportError(`service ${s.name}: default server host ${d.host} is a name, not an address: give it with --address ${d.host}=IP`);
        return `{ ${d.name !== undefined ? `name: ${quote(d.name)}, ` : ''}host: ${quote(host)}, port: ${d.port} }`;
      });
      props.push(`defaultServers: [${servers.join(', ')}]`);
    }
    out(`    const ${v} = new SmartStackService(this, ${quote(s.name)}, { ${props.join(', ')} });`);
  }
  out();

  for (const h of estate.hosts) {
    const v = identifier(h.name, taken);
    out(`    const ${v} = new VdsNode(this, ${quote(h.name)}, { privateAddress: ${quote(h.address!)}, memoryMiB: 2048 });`);
    const provides = h.provides.map((p) => serviceVar.get(p.discoveryPath)!);
    const consumes = h.consumes.map((p) => serviceVar.get(p)!).filter((x) => x !== undefined);
    const props: string[] = [];
    if (provides.length > 0) props.push(`provides: [${provides.join(', ')}]`);
    if (consumes.length > 0) props.push(`consumes: [${consumes.join(', ')}]`);
    const overrides = h.provides
      .map((p) => {
        const service = estate.services.find((s) => s.discoveryPath === p.discoveryPath)!;
        const o: string[] = [];
        if (p.port !== service.port) o.push(`port: ${p.port}`);
        if (p.weight !== undefined) o.push(`weight: ${p.weight}`);
        return o.length > 0 ? `{ service: ${serviceVar.get(p.discoveryPath)}, ${o.join(', ')} }` : undefined;
      })
      .filter((o): o is string => o !== undefined);
    if (overrides.length > 0) props.push(`providerOverrides: [${overrides.join(', ')}]`);
    // The agents' metrics and HAProxy's stats take ports of their own (3213, 3214, 3212 by default),
    // which estates often give to services: moved to free ones, with a note.
    const used = new Set<number>([
      ...h.provides.map((p) => p.port),
      ...h.consumes.map((p) => estate.services.find((s) => s.discoveryPath === p)?.localPort).filter((x): x is number => x !== undefined),
    ]);
    const freePort = (preferred: number): number => {
      let port = preferred;
      while (used.has(port)) port += 10000;
      used.add(port);
      if (port !== preferred) notes.push(`host ${h.name}: a service uses port ${preferred}, so the program moves ${preferred === 3212 ? "HAProxy's stats" : 'an agent\'s metrics'} to ${port}`);
      return port;
    };
    const stats = freePort(3212);
    const nerveMetrics = freePort(3213);
    const synapseMetrics = freePort(3214);
    if (stats !== 3212) props.push(`statsPort: ${stats}`);
    if (nerveMetrics !== 3213 || synapseMetrics !== 3214) {
      usesRuntime = true;
      props.push(`runtime: AgentRuntime.node({ nerveMetricsPort: ${nerveMetrics}, synapseMetricsPort: ${synapseMetrics} })`);
    }
    if (props.length > 0) out(`    new HaproxySidecar(${v}, 'sidecar', { ${props.join(', ')} });`);
  }
  out('  }');
  out('}');
  out();
  out('const app = new App();');
  out(`new ImportedStack(app, ${quote(options.stackName ?? 'imported')});`);
  out('app.synth();');

  const head = [
    '// Written by `smartstack import`: the mesh of the nerve and synapse files it read, as constructs.',
    '// Check the disks and memory of the ZooKeeper hosts, which the files do not say.',
    ...(notes.length > 0 ? ['//', '// Left out or changed, with the file and key:', ...notes.map((n) => `//   ${n.replace(/\n/g, ' ')}`)] : []),
    "import { App, TerraformStack } from 'cdktf';",
    "import { Construct } from 'constructs';",
    `import { ${usesRuntime ? 'AgentRuntime, ' : ''}HaproxySidecar, HealthCheck, SmartStackService, VdsNode, ZookeeperEnsemble } from ${quote(library)};`,
    '',
  ];
  return `${[...head, ...lines].join('\n')}\n`;
}
