/**
 * Reads an estate of hand-written nerve and synapse files (Airbnb's formats, JSON or YAML,
 * `service_conf_dir` included) into what the constructs need: the ZooKeeper hosts, the services,
 * and which host provides and consumes what. What has no construct equivalent is kept as a note
 * naming the file and the key, never dropped silently.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'fs';
import { basename, dirname, extname, join, relative, resolve } from 'path';
import { parse as parseYaml } from 'yaml';

/** Input refused: names the file and the key. */
export class ImportError extends Error {
  public constructor(message: string) {
    super(message);
    this.name = 'ImportError';
  }
}

export interface ImportedCheck {
  readonly type: 'http' | 'tcp';
  readonly path?: string;
  readonly intervalSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly rise?: number;
  readonly fall?: number;
}

export interface ImportedService {
  /** The synapse entry's name when a host consumes it, else nerve's. */
  readonly name: string;
  readonly discoveryPath: string;
  readonly port?: number;
  readonly localPort?: number;
  readonly check?: ImportedCheck;
  /** synapse's default_servers: used while nothing is registered. */
  readonly defaultServers: { readonly name?: string; readonly host: string; readonly port: number }[];
}

export interface ImportedHost {
  readonly name: string;
  readonly address?: string;
  /** Discovery paths this host registers, with its port and weight. */
  readonly provides: { readonly discoveryPath: string; readonly port: number; readonly weight?: number }[];
  /** Discovery paths this host's synapse watches. */
  readonly consumes: string[];
}

export interface ImportedEstate {
  readonly hosts: ImportedHost[];
  /** host:port of each ZooKeeper member the files name. */
  readonly zookeeper: { readonly host: string; readonly port: number }[];
  readonly services: ImportedService[];
  /** `file: key: why`, for what the program cannot express. */
  readonly notes: string[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A host's files: the folder it came from (or the files given), by kind. */
interface HostFiles {
  readonly name?: string;
  readonly files: string[];
}

/**
 * The hosts of `paths`: files given directly are one host; a folder holding nerve or synapse files is
 * one host named after it; a folder of such folders is one host per folder.
 */
export function hostFilesOf(paths: string[]): HostFiles[] {
  const direct: string[] = [];
  const hosts: HostFiles[] = [];
  for (const p of paths) {
    if (!existsSync(p)) throw new ImportError(`${p}: no such file or folder`);
    if (!statSync(p).isDirectory()) {
      direct.push(p);
      continue;
    }
    const files = configFilesIn(p);
    if (files.length > 0) {
      hosts.push({ name: basename(resolve(p)), files });
      continue;
    }
    const subfolders = readdirSync(p).sort().map((n) => join(p, n)).filter((d) => statSync(d).isDirectory()).map((d) => ({ name: basename(d), files: configFilesIn(d) })).filter((h) => h.files.length > 0);
    if (subfolders.length === 0) throw new ImportError(`${p}: holds no nerve or synapse file (*.json, *.yaml, *.yml), directly or one folder down`);
    hosts.push(...subfolders);
  }
  if (direct.length > 0) hosts.unshift({ files: direct });
  return hosts;
}

function configFilesIn(dir: string): string[] {
  return readdirSync(dir).sort().filter((n) => /\.(json|ya?ml)$/.test(n)).map((n) => join(dir, n)).filter((f) => statSync(f).isFile());
}

function readConfig(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ImportError(`${file}: cannot read it: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ImportError(`${file}: not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (!isObject(value)) throw new ImportError(`${file}: expected an object at the top, found ${Array.isArray(value) ? 'a list' : typeof value}`);
  return value;
}

/** nerve's files have services with zk_hosts or checks; synapse's a haproxy section or services with discovery. */
function kindOf(config: Json): 'nerve' | 'synapse' | undefined {
  const services = isObject(config.services) ? Object.values(config.services) : [];
  if (isObject(config.haproxy) || services.some((s) => isObject(s) && isObject(s.discovery))) return 'synapse';
  if ('instance_id' in config || services.some((s) => isObject(s) && ('zk_hosts' in s || 'checks' in s || 'reporter_type' in s))) return 'nerve';
  return undefined;
}

/** The services of a file and of its `service_conf_dir` (one file per service, named after it). */
function servicesOf(file: string, config: Json): { name: string; entry: Json; at: (key: string) => string }[] {
  const out: { name: string; entry: Json; at: (key: string) => string }[] = [];
  if (config.services !== undefined && !isObject(config.services)) throw new ImportError(`${file}: services must be an object of services by name`);
  for (const [name, entry] of Object.entries((config.services as Json | undefined) ?? {})) {
    if (!isObject(entry)) throw new ImportError(`${file}: services.${name} must be an object`);
    out.push({ name, entry, at: (key) => `${file}: services.${name}${key ? `.${key}` : ''}` });
  }
  if (typeof config.service_conf_dir === 'string') {
    // Upstream reads it relative to where the agent runs; the file's folder is the usual one, then the current one.
    const candidates = [...new Set([resolve(dirname(file), config.service_conf_dir), resolve(config.service_conf_dir)])];
    const dir = candidates.find((d) => existsSync(d) && statSync(d).isDirectory());
    if (dir === undefined) throw new ImportError(`${file}: service_conf_dir = ${config.service_conf_dir}: no such folder (looked in ${candidates.join(' and ')})`);
    for (const f of configFilesIn(dir)) out.push({ name: basename(f).replace(/\.(json|ya?ml)$/, ''), entry: readConfig(f), at: (key) => `${relative(process.cwd(), f) || f}: ${key}` });
  }
  return out;
}

const NERVE_SERVICE_KEYS = new Set(['host', 'port', 'reporter_type', 'zk_hosts', 'zk_path', 'check_interval', 'checks', 'weight']);
const NERVE_TOP_KEYS = new Set(['instance_id', 'services', 'service_conf_dir']);
const SYNAPSE_SERVICE_KEYS = new Set(['discovery', 'default_servers']);
const SYNAPSE_TOP_KEYS = new Set(['services', 'service_conf_dir']);

/** Reads the estate; throws ImportError naming the file and key for anything refused. */
export function readEstate(paths: string[], addresses: Record<string, string> = {}): ImportedEstate {
  const notes: string[] = [];
  const services = new Map<string, { name?: string; nerveName?: string; port?: number; localPort?: number; check?: ImportedCheck; defaultServers?: ImportedService['defaultServers'] }>();
  const zookeeper = new Map<string, { host: string; port: number }>();
  const hosts: ImportedHost[] = [];
  const serviceAt = (path: string) => {
    const s = services.get(path) ?? {};
    services.set(path, s);
    return s;
  };
  const addZookeeper = (where: string, list: unknown) => {
    if (!Array.isArray(list) || list.length === 0 || list.some((h) => typeof h !== 'string')) throw new ImportError(`${where}: expected a list of host:port, found ${JSON.stringify(list)}`);
    for (const entry of list as string[]) {
      const m = /^([^:/]+)(?::([0-9]+))?(\/.*)?$/.exec(entry);
      if (!m) throw new ImportError(`${where}: ${JSON.stringify(entry)} is not host:port`);
      if (m[3]) notes.push(`${where}: the chroot ${m[3]} of ${entry} is left out: the constructs register at the ensemble's root`);
      zookeeper.set(`${m[1]}:${m[2] ?? 2181}`, { host: m[1], port: Number(m[2] ?? 2181) });
    }
  };

  hostFilesOf(paths).forEach((group, index) => {
    let name = group.name;
    let address: string | undefined;
    const provides: ImportedHost['provides'] = [];
    const consumes: string[] = [];
    for (const file of group.files) {
      const config = readConfig(file);
      const kind = kindOf(config);
      if (kind === undefined) throw new ImportError(`${file}: neither a nerve file (services with zk_hosts and checks) nor a synapse file (a haproxy section, services with discovery)`);
      if (kind === 'nerve') {
        if (typeof config.instance_id === 'string') name ??= config.instance_id;
        Object.keys(config).filter((k) => !NERVE_TOP_KEYS.has(k)).forEach((k) => notes.push(`${file}: ${k}: no construct equivalent; left out`));
        for (const { entry, at, name: entryName } of servicesOf(file, config)) {
          const reporter = entry.reporter_type ?? 'zookeeper';
          if (reporter !== 'zookeeper') {
            notes.push(`${at('reporter_type')} = ${JSON.stringify(reporter)}: only ZooKeeper registrations have a construct; this service is left out`);
            continue;
          }
          if (typeof entry.zk_path !== 'string') throw new ImportError(`${at('zk_path')}: expected the registration path, found ${JSON.stringify(entry.zk_path)}`);
          if (!Number.isInteger(entry.port)) throw new ImportError(`${at('port')}: expected a TCP port, found ${JSON.stringify(entry.port)}`);
          addZookeeper(`${at('zk_hosts')}`, entry.zk_hosts);
          if (typeof entry.host === 'string') {
            if (address !== undefined && address !== entry.host) notes.push(`${at('host')} = ${entry.host}: the host also registers as ${address}; the program uses ${address}`);
            address ??= entry.host;
          }
          if (provides.some((p) => p.discoveryPath === entry.zk_path)) {
            notes.push(`${at('zk_path')} = ${entry.zk_path}: this host already registers that path; the program keeps the first`);
            continue;
          }
          const service = serviceAt(entry.zk_path);
          service.nerveName ??= entryName;
          if (service.port !== undefined && service.port !== entry.port) notes.push(`${at('port')} = ${entry.port}: other hosts register port ${service.port}; a providerOverrides entry keeps this one`);
          service.port ??= entry.port as number;
          service.check ??= checkOf(at, entry, notes);
          provides.push({ discoveryPath: entry.zk_path, port: entry.port as number, weight: typeof entry.weight === 'number' ? entry.weight : undefined });
          Object.keys(entry).filter((k) => !NERVE_SERVICE_KEYS.has(k)).forEach((k) => notes.push(`${at(k)}: no construct equivalent; left out`));
        }
      } else {
        Object.keys(config).filter((k) => !SYNAPSE_TOP_KEYS.has(k)).forEach((k) => notes.push(`${file}: ${k}: the constructs write synapse's and HAProxy's settings themselves; left out`));
        for (const { entry, at, name: entryName } of servicesOf(file, config)) {
          const discovery = entry.discovery;
          if (!isObject(discovery)) throw new ImportError(`${at('discovery')}: expected an object, found ${JSON.stringify(discovery)}`);
          if (discovery.method !== 'zookeeper') {
            notes.push(`${at('discovery.method')} = ${JSON.stringify(discovery.method)}: only ZooKeeper discovery has a construct; this service is left out`);
            continue;
          }
          if (typeof discovery.path !== 'string') throw new ImportError(`${at('discovery.path')}: expected the registration path, found ${JSON.stringify(discovery.path)}`);
          addZookeeper(`${at('discovery.hosts')}`, discovery.hosts);
          const service = serviceAt(discovery.path);
          service.name ??= entryName;
          const port = isObject(entry.haproxy) ? entry.haproxy.port : undefined;
          if (port !== undefined && !Number.isInteger(port)) throw new ImportError(`${at('haproxy.port')}: expected a TCP port, found ${JSON.stringify(port)}`);
          if (port !== undefined && service.localPort !== undefined && service.localPort !== port) notes.push(`${at('haproxy.port')} = ${port}: another host listens on ${service.localPort}; the program uses ${service.localPort}`);
          service.localPort ??= port as number | undefined;
          consumes.push(discovery.path);
          if (entry.default_servers !== undefined) service.defaultServers ??= defaultServersOf(at, entry.default_servers);
          Object.keys(entry).filter((k) => !SYNAPSE_SERVICE_KEYS.has(k)).forEach((k) => notes.push(`${at(k)}: the constructs write it from the service's settings; left out`));
          Object.keys(discovery).filter((k) => !['method', 'path', 'hosts'].includes(k)).forEach((k) => notes.push(`${at(`discovery.${k}`)}: no construct equivalent; left out`));
        }
      }
    }
    name ??= `host${index + 1}`;
    address = addresses[name] ?? address;
    hosts.push({ name, address, provides, consumes });
  });
  const named = new Set<string>();
  for (const h of hosts) {
    if (named.has(h.name)) throw new ImportError(`two hosts are named ${h.name}: give each its own folder or instance_id`);
    named.add(h.name);
  }
  return {
    hosts,
    zookeeper: [...zookeeper.values()],
    services: [...services.entries()].map(([path, s]) => {
      const name = s.name ?? s.nerveName ?? path;
      let port = s.port;
      if (port === undefined && s.defaultServers?.length) {
        port = s.defaultServers[0].port;
        notes.push(`service ${name} (${path}): no nerve file registers it; its port is its first default server's, ${port}`);
      }
      return { name, discoveryPath: path, port, localPort: s.localPort, check: s.check, defaultServers: s.defaultServers ?? [] };
    }),
    notes,
  };
}

function defaultServersOf(at: (key: string) => string, list: unknown): ImportedService['defaultServers'] {
  if (!Array.isArray(list)) throw new ImportError(`${at('default_servers')}: expected a list of {name, host, port}, found ${JSON.stringify(list)}`);
  return list.map((server, i) => {
    if (!isObject(server) || typeof server.host !== 'string' || !Number.isInteger(server.port)) {
      throw new ImportError(`${at(`default_servers[${i}]`)}: expected {name, host, port}, found ${JSON.stringify(server)}`);
    }
    return { name: typeof server.name === 'string' ? server.name : undefined, host: server.host, port: server.port as number };
  });
}

function checkOf(at: (key: string) => string, entry: Json, notes: string[]): ImportedCheck | undefined {
  const checks = entry.checks;
  if (checks === undefined) return undefined;
  if (!Array.isArray(checks)) throw new ImportError(`${at('checks')}: expected a list of checks, found ${JSON.stringify(checks)}`);
  if (checks.length > 1) notes.push(`${at('checks')}: ${checks.length} checks; the program keeps the first (a service has one check)`);
  const c = checks[0] as Json | undefined;
  if (!isObject(c)) return undefined;
  const interval = typeof entry.check_interval === 'number' ? entry.check_interval : undefined;
  const common = {
    intervalSeconds: interval,
    timeoutSeconds: typeof c.timeout === 'number' ? c.timeout : undefined,
    rise: typeof c.rise === 'number' ? c.rise : undefined,
    fall: typeof c.fall === 'number' ? c.fall : undefined,
  };
  if (c.type === 'http') return { type: 'http', path: typeof c.uri === 'string' ? c.uri : '/', ...common };
  if (c.type === 'tcp') return { type: 'tcp', ...common };
  notes.push(`${at('checks[0].type')} = ${JSON.stringify(c.type)}: no construct check of that kind; the program checks the port (tcp)`);
  return { type: 'tcp', ...common };
}
