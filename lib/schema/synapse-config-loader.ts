import { readFileSync } from 'fs';
import { ConfigError } from './config-error';
import { ConfigReader, JsonObject } from './config-reader';
import { HaproxyUnsafeValueError } from './haproxy-safe';
import { SynapseConfig, SynapseHaproxyConfig, SynapseServer, SynapseServiceConfig } from './synapse-config';
import { DEFAULT_BIND_ADDRESS, DEFAULT_SERVER_SLOTS, renderHaproxyConfig } from '../render/haproxy-config';

/** A consumed service with every default applied. */
export interface LoadedSynapseService {
  readonly name: string;
  readonly zkPath: string;
  readonly zkHosts: string[];
  /** The ZooKeeper credentials file (`discovery.auth_file`), an absolute path. */
  readonly zkAuthFile?: string;
  /** The local port, or undefined for a backend without a frontend. */
  readonly port?: number;
  readonly bindAddress: string;
  readonly backendName: string;
  readonly serverSlots: number;
  readonly defaultServers: { readonly name: string; readonly host: string; readonly port: number }[];
  readonly keepDefaultServers: boolean;
  readonly usePreviousBackends: boolean;
}

/** The `haproxy` section with every default applied. */
export interface LoadedSynapseHaproxy {
  readonly configFilePath?: string;
  readonly reloadCommand?: string;
  readonly socketFilePath?: string;
  readonly masterSocketFilePath?: string;
  readonly doWrites: boolean;
  readonly doReloads: boolean;
  readonly doSocket: boolean;
  /** Minimum time between two reloads. */
  readonly restartIntervalMs: number;
}

export interface LoadedSynapseConfig {
  /** The file's content with ports as numbers: what {@link renderHaproxyConfig} takes. */
  readonly config: SynapseConfig;
  readonly services: LoadedSynapseService[];
  readonly haproxy: LoadedSynapseHaproxy;
  readonly metricsPort?: number;
}

/** Reads and validates `synapse.conf.json`; throws {@link ConfigError} naming the key and value. */
export function loadSynapseConfig(path: string): LoadedSynapseConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, '(file)', path, `cannot be read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, '(file)', path, `is not valid JSON: ${(e as Error).message}`);
  }
  return parseSynapseConfig(raw, path);
}

/**
 * Validates a parsed `synapse.conf.json`. Accepts upstream files: string ports, unknown keys
 * (ignored), and the single-service form `{ "service": { "name": ..., ... } }`.
 */
export function parseSynapseConfig(raw: unknown, source = 'synapse.conf.json'): LoadedSynapseConfig {
  const r = new ConfigReader(source);
  const top = r.object('(top level)', raw);

  const rawServices: { [name: string]: unknown } = {};
  if (top.services !== undefined) Object.assign(rawServices, r.object('services', top.services));
  if (top.service !== undefined) {
    const single = r.object('service', top.service);
    const name = r.safe('service.name', single.name, 'name');
    rawServices[name] = single;
  }
  if (Object.keys(rawServices).length === 0) r.fail('services', top.services, 'must name at least one service');

  const services: { [name: string]: SynapseServiceConfig } = {};
  const loaded: LoadedSynapseService[] = [];
  const hx = r.optionalObject('haproxy', top.haproxy) ?? {};
  const globalBind = hx.bind_address === undefined ? DEFAULT_BIND_ADDRESS : r.string('haproxy.bind_address', hx.bind_address);

  for (const name of Object.keys(rawServices).sort()) {
    const key = `services.${name}`;
    r.safe(`${key} (service name)`, name, 'name');
    const s = r.object(key, rawServices[name]);
    const d = r.object(`${key}.discovery`, s.discovery);
    if (d.method !== 'zookeeper') r.fail(`${key}.discovery.method`, d.method, 'must be "zookeeper" (the only discovery method supported)');
    const zkPath = r.zkPath(`${key}.discovery.path`, d.path);
    const zkHosts = r.list(`${key}.discovery.hosts`, d.hosts).map((h, i) => r.hostPort(`${key}.discovery.hosts[${i}]`, h));
    if (zkHosts.length === 0) r.fail(`${key}.discovery.hosts`, d.hosts, 'must list at least one ZooKeeper host:port');
    const zkAuthFile = d.auth_file === undefined ? undefined : r.absolutePath(`${key}.discovery.auth_file`, d.auth_file);

    const sh = r.optionalObject(`${key}.haproxy`, s.haproxy) ?? {};
    const port = r.optionalPort(`${key}.haproxy.port`, sh.port);
    const serverSlots = sh.server_slots === undefined
      ? DEFAULT_SERVER_SLOTS
      : r.integer(`${key}.haproxy.server_slots`, sh.server_slots, 1, 10000);
    const defaultServers = (s.default_servers === undefined ? [] : r.list(`${key}.default_servers`, s.default_servers)).map((v, i) => {
      const dk = `${key}.default_servers[${i}]`;
      const o = r.object(dk, v);
      return {
        name: r.string(`${dk}.name`, o.name),
        host: r.safe(`${dk}.host`, o.host, 'host'),
        port: r.port(`${dk}.port`, o.port),
      };
    });

    const serviceHaproxy = { ...(sh as object), ...(port !== undefined ? { port } : {}) } as SynapseServiceConfig['haproxy'];
    services[name] = {
      ...(s as object),
      discovery: { method: 'zookeeper', path: zkPath, hosts: zkHosts, ...(zkAuthFile !== undefined ? { auth_file: zkAuthFile } : {}) },
      haproxy: serviceHaproxy,
      ...(defaultServers.length > 0 ? { default_servers: defaultServers as SynapseServer[] } : {}),
    } as SynapseServiceConfig;
    loaded.push({
      name,
      zkPath,
      zkHosts,
      zkAuthFile,
      port,
      bindAddress: sh.bind_address === undefined ? globalBind : r.string(`${key}.haproxy.bind_address`, sh.bind_address),
      backendName: sh.backend_name === undefined ? name : r.safe(`${key}.haproxy.backend_name`, sh.backend_name, 'name'),
      serverSlots,
      defaultServers,
      keepDefaultServers: r.boolean(`${key}.keep_default_servers`, s.keep_default_servers, false),
      usePreviousBackends: r.boolean(`${key}.use_previous_backends`, s.use_previous_backends, true),
    });
  }

  const haproxy = loadHaproxy(r, hx);
  const config: SynapseConfig = {
    services,
    haproxy: hx as SynapseHaproxyConfig,
    ...(top.metrics_port !== undefined ? { metrics_port: r.port('metrics_port', top.metrics_port) } : {}),
  };
  // Every string bound for haproxy.cfg is checked now, so a bad file fails at start, not at the first reload.
  try {
    renderHaproxyConfig(config, {});
  } catch (e) {
    if (e instanceof HaproxyUnsafeValueError) throw new ConfigError(source, e.field, e.value, e.reason);
    throw e;
  }
  return { config, services: loaded, haproxy, metricsPort: config.metrics_port };
}

function loadHaproxy(r: ConfigReader, hx: JsonObject): LoadedSynapseHaproxy {
  const path = (key: string): string | undefined => {
    const v = r.optionalString(`haproxy.${key}`, hx[key]);
    if (v !== undefined && !v.startsWith('/')) r.fail(`haproxy.${key}`, v, 'must be an absolute path');
    return v;
  };
  return {
    configFilePath: path('config_file_path'),
    reloadCommand: r.optionalString('haproxy.reload_command', hx.reload_command),
    socketFilePath: path('socket_file_path'),
    masterSocketFilePath: path('master_socket_file_path'),
    doWrites: r.boolean('haproxy.do_writes', hx.do_writes, true),
    doReloads: r.boolean('haproxy.do_reloads', hx.do_reloads, true),
    doSocket: r.boolean('haproxy.do_socket', hx.do_socket, true),
    restartIntervalMs: hx.restart_interval === undefined ? 2000 : r.number('haproxy.restart_interval', hx.restart_interval, 0, 3600) * 1000,
  };
}
