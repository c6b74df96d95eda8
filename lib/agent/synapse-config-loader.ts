import { ConfigError } from '../schema/config-error';
import { readConfigFile, readServiceConfDir } from '../schema/config-file';
import { ConfigReader, JsonObject } from '../schema/config-reader';
import { haproxyUnsafeReason, HaproxyUnsafeValueError } from '../schema/haproxy-safe';
import { SynapseConfig, SynapseHaproxyConfig, SynapseServer, SynapseServiceConfig } from '../schema/synapse-config';
import { auditKeys, SYNAPSE_KEYS } from '../schema/upstream-keys';
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
  /** Registrations must match every filter (`label_filters`, and the deprecated `label_filter`). */
  readonly labelFilters: LabelFilter[];
  /** Every discovered server is used on this port (`backend_port_override`, or `haproxy.server_port_override`). */
  readonly portOverride?: number;
  /** Registration weights are applied (`use_nerve_weights`); otherwise ignored, as upstream. */
  readonly useNerveWeights: boolean;
  /** The order new servers take free slots (`backend_order`; undefined: shuffled with the seed). */
  readonly backendOrder?: 'asc' | 'desc' | 'no_shuffle';
  /** `server_options` with `%{host}`, `%{port}` or `%{name}`: filled in per server, so it is per-instance text. */
  readonly serverOptionsTemplate?: string;
  /** `cookie <value>` on every server line (`cookie_value_method`), when the backend sets a `cookie`. */
  readonly cookie?: 'name' | 'hash';
}

/** One `label_filters` entry. */
export interface LabelFilter {
  readonly label: string;
  readonly value: string;
  readonly condition: 'equals' | 'not-equals';
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
  /** A reload waits up to this fraction of the interval more, at random (`restart_jitter`). */
  readonly restartJitter: number;
  /** Seeds the shuffle of servers when `backend_order` is not set (`server_order_seed`). */
  readonly serverOrderSeed: number;
}

export interface LoadedSynapseConfig {
  /** The file's content with ports as numbers: what {@link renderHaproxyConfig} takes. */
  readonly config: SynapseConfig;
  readonly services: LoadedSynapseService[];
  readonly haproxy: LoadedSynapseHaproxy;
  readonly metricsPort?: number;
  /** `file_output.output_directory`: one `<service>.json` per service with its servers. */
  readonly outputDirectory?: string;
  /** Requested ZooKeeper session timeout (`zk_session_timeout`, seconds; default 36 as upstream). */
  readonly zkSessionTimeoutMs: number;
  /** One line per ignored or unknown key, `file: key = value: reason`, logged at start. */
  readonly warnings: string[];
}

/** Upstream synapse asks for 2 × 18000 ms (zookeeper gem: receive_timeout_msec × 2). */
export const SYNAPSE_DEFAULT_ZK_SESSION_TIMEOUT_MS = 36000;

/**
 * Reads and validates `synapse.conf.json` (JSON, or YAML for other extensions) and the service
 * files of `service_conf_dir`; throws {@link ConfigError} naming the key and value.
 */
export function loadSynapseConfig(path: string): LoadedSynapseConfig {
  const raw = readConfigFile(path);
  const r = new ConfigReader(path);
  const top = r.object('(top level)', raw);
  if (top.service_conf_dir === undefined) return parseSynapseConfig(raw, path);
  const extra = readServiceConfDir(path, r.string('service_conf_dir', top.service_conf_dir));
  return parseSynapseConfig({ ...top, services: { ...(r.optionalObject('services', top.services) ?? {}), ...extra } }, path);
}

/**
 * Validates a parsed `synapse.conf.json`. Accepts upstream files: string ports, unknown keys
 * (ignored), and the single-service form `{ "service": { "name": ..., ... } }`.
 */
export function parseSynapseConfig(raw: unknown, source = 'synapse.conf.json'): LoadedSynapseConfig {
  const r = new ConfigReader(source);
  const top = r.object('(top level)', raw);
  const warnings = auditKeys(r, SYNAPSE_KEYS['(top level)'], top, '');

  const rawServices: { [name: string]: unknown } = {};
  if (top.services !== undefined) Object.assign(rawServices, r.object('services', top.services));
  if (top.service !== undefined) {
    const single = r.object('service', top.service);
    const name = r.safe('service.name', single.name, 'name');
    // `name` names the service here; it is not one of the service's keys.
    rawServices[name] = Object.fromEntries(Object.entries(single).filter(([k]) => k !== 'name'));
  }
  if (Object.keys(rawServices).length === 0) r.fail('services', top.services, 'must name at least one service');

  const services: { [name: string]: SynapseServiceConfig } = {};
  const loaded: LoadedSynapseService[] = [];
  const rawHx = r.optionalObject('haproxy', top.haproxy) ?? {};
  warnings.push(...auditKeys(r, SYNAPSE_KEYS.haproxy, rawHx, 'haproxy'));
  const hx = normalizeHaproxy(r, rawHx, warnings);
  const globalNerveWeights = r.boolean('haproxy.use_nerve_weights', hx.use_nerve_weights, false);
  const globalBind = hx.bind_address === undefined ? DEFAULT_BIND_ADDRESS : r.string('haproxy.bind_address', hx.bind_address);

  for (const name of Object.keys(rawServices).sort()) {
    const key = `services.${name}`;
    r.safe(`${key} (service name)`, name, 'name');
    const s = r.object(key, rawServices[name]);
    warnings.push(...auditKeys(r, SYNAPSE_KEYS['services.*'], s, key));
    const d = r.object(`${key}.discovery`, s.discovery);
    if (d.method !== 'zookeeper') r.fail(`${key}.discovery.method`, d.method, 'must be "zookeeper" (the only discovery method supported)');
    warnings.push(...auditKeys(r, SYNAPSE_KEYS['services.*.discovery'], d, `${key}.discovery`));
    const { hosts: zkHosts, chroot } = r.zkHosts(`${key}.discovery.hosts`, d.hosts);
    const zkPath = chroot + r.zkPath(`${key}.discovery.path`, d.path);
    const zkAuthFile = d.auth_file === undefined ? undefined : r.absolutePath(`${key}.discovery.auth_file`, d.auth_file);
    const labelFilters = loadLabelFilters(r, `${key}.discovery`, d, warnings);

    const rawSh = r.optionalObject(`${key}.haproxy`, s.haproxy) ?? {};
    warnings.push(...auditKeys(r, SYNAPSE_KEYS['services.*.haproxy'], rawSh, `${key}.haproxy`));
    const sh = normalizeServiceHaproxy(r, `${key}.haproxy`, rawSh);
    // `port: null` binds the address alone (a unix socket), as upstream.
    const port = sh.port === null ? undefined : r.optionalPort(`${key}.haproxy.port`, sh.port);
    const override = s.backend_port_override ?? sh.server_port_override;
    const overrideKey = s.backend_port_override !== undefined ? `${key}.backend_port_override` : `${key}.haproxy.server_port_override`;
    const template = typeof sh.server_options === 'string' && /%\{(host|port|name)\}/.test(sh.server_options) ? sh.server_options : undefined;
    if (template !== undefined) {
      const reason = haproxyUnsafeReason(fillServerOptions(template, '192.0.2.1', 65535, 'name_192.0.2.1:65535'), 'line');
      if (reason !== undefined) r.fail(`${key}.haproxy.server_options`, template, reason);
    }
    const cookieMethod = sh.cookie_value_method === undefined ? 'name' : sh.cookie_value_method;
    if (cookieMethod !== 'name' && cookieMethod !== 'hash') r.fail(`${key}.haproxy.cookie_value_method`, sh.cookie_value_method, 'must be "name" or "hash"');
    const order = sh.backend_order;
    if (order !== undefined && order !== 'asc' && order !== 'desc' && order !== 'no_shuffle') {
      r.fail(`${key}.haproxy.backend_order`, order, 'must be "asc", "desc" or "no_shuffle" (or absent: shuffled)');
    }
    for (const [field, lines] of [['frontend', sh.frontend], ['backend', sh.backend], ['listen', sh.listen]] as const) {
      if (lines !== undefined && !Array.isArray(lines)) r.fail(`${key}.haproxy.${field}`, lines, 'must be a list of lines or one string');
    }
    const serverSlots = sh.server_slots === undefined
      ? DEFAULT_SERVER_SLOTS
      : r.integer(`${key}.haproxy.server_slots`, sh.server_slots, 1, 10000);
    const defaultServers = (s.default_servers === undefined ? [] : r.list(`${key}.default_servers`, s.default_servers)).map((v, i) => {
      const dk = `${key}.default_servers[${i}]`;
      const o = r.object(dk, v);
      warnings.push(...auditKeys(r, SYNAPSE_KEYS['services.*.default_servers[]'], o, dk));
      return {
        name: r.string(`${dk}.name`, o.name),
        host: r.safe(`${dk}.host`, o.host, 'host'),
        port: r.port(`${dk}.port`, o.port),
      };
    });

    const serviceHaproxy = {
      ...(sh as object),
      ...(port !== undefined ? { port } : {}),
      // Filled in per server by synapse; the rendered lines carry the result as per-instance text.
      ...(template !== undefined ? { server_options: undefined } : {}),
    } as SynapseServiceConfig['haproxy'];
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
      labelFilters,
      portOverride: override === undefined || override === null ? undefined : r.port(overrideKey, override),
      useNerveWeights: r.boolean(`${key}.haproxy.use_nerve_weights`, sh.use_nerve_weights, globalNerveWeights),
      backendOrder: order as LoadedSynapseService['backendOrder'],
      serverOptionsTemplate: template,
      // A `cookie` directive is what makes HAProxy read the servers' cookies; without one they are not written.
      cookie: setsCookie([sh.backend, sh.listen, hx.defaults]) ? cookieMethod as 'name' | 'hash' : undefined,
    });
  }

  const haproxy = loadHaproxy(r, hx);
  const config: SynapseConfig = {
    services,
    haproxy: hx as SynapseHaproxyConfig,
    ...(top.metrics_port !== undefined ? { metrics_port: r.port('metrics_port', top.metrics_port) } : {}),
  };
  let outputDirectory: string | undefined;
  if (top.file_output !== undefined) {
    const fo = r.object('file_output', top.file_output);
    warnings.push(...auditKeys(r, SYNAPSE_KEYS.file_output, fo, 'file_output'));
    outputDirectory = r.absolutePath('file_output.output_directory', fo.output_directory);
  }
  // Every string bound for haproxy.cfg is checked now, so a bad file fails at start, not at the first reload.
  try {
    renderHaproxyConfig(config, {});
  } catch (e) {
    if (e instanceof HaproxyUnsafeValueError) throw new ConfigError(source, e.field, e.value, e.reason);
    throw e;
  }
  return {
    config,
    services: loaded,
    haproxy,
    metricsPort: config.metrics_port,
    outputDirectory,
    zkSessionTimeoutMs: top.zk_session_timeout === undefined
      ? SYNAPSE_DEFAULT_ZK_SESSION_TIMEOUT_MS
      : r.number('zk_session_timeout', top.zk_session_timeout, 1, 600) * 1000,
    warnings,
  };
}

/** Upstream's `server_options % {host:, port:, name:}`. */
export function fillServerOptions(template: string, host: string, port: number, name: string): string {
  return template.replace(/%\{(host|port|name)\}/g, (_, key: string) => (key === 'host' ? host : key === 'port' ? String(port) : name));
}

function setsCookie(sections: unknown[]): boolean {
  return sections.some((lines) => Array.isArray(lines) && lines.some((l) => typeof l === 'string' && /^cookie\s/.test(l.trim())));
}

/** Sections given as one string become a list of its lines (blank lines dropped). */
function lines(value: unknown): unknown {
  return typeof value === 'string' ? value.split('\n').map((l) => l.trim()).filter((l) => l !== '') : value;
}

function normalizeServiceHaproxy(r: ConfigReader, key: string, sh: JsonObject): JsonObject {
  const out: { [k: string]: unknown } = { ...sh };
  for (const field of ['frontend', 'backend', 'listen', 'shared_frontend']) {
    if (sh[field] !== undefined) out[field] = lines(sh[field]);
  }
  if (sh.bind_options !== undefined && sh.bind_options !== null) r.safe(`${key}.bind_options`, sh.bind_options, 'line');
  return out;
}

/** The top `haproxy` section: string sections as lists, a list of stats sockets as its first. */
function normalizeHaproxy(r: ConfigReader, hx: JsonObject, warnings: string[]): JsonObject {
  const out: { [k: string]: unknown } = { ...hx };
  for (const field of ['global', 'defaults', 'shared_frontend']) {
    if (hx[field] !== undefined) out[field] = lines(hx[field]);
  }
  if (Array.isArray(hx.socket_file_path)) {
    const paths = hx.socket_file_path;
    if (paths.length === 0) r.fail('haproxy.socket_file_path', paths, 'must name at least one socket');
    out.socket_file_path = paths[0];
    if (paths.length > 1) {
      warnings.push(`${r.source}: haproxy.socket_file_path = ${JSON.stringify(paths)}: only the first is used: HAProxy 2.5+ runs one process, which every socket reaches`);
    }
  }
  return out;
}

function loadLabelFilters(r: ConfigReader, key: string, d: JsonObject, warnings: string[]): LabelFilter[] {
  const raw: [string, unknown][] = [];
  if (d.label_filter !== undefined) raw.push([`${key}.label_filter`, d.label_filter]);
  if (d.label_filters !== undefined) r.list(`${key}.label_filters`, d.label_filters).forEach((f, i) => raw.push([`${key}.label_filters[${i}]`, f]));
  return raw.map(([k, value]) => {
    const f = r.object(k, value);
    warnings.push(...auditKeys(r, SYNAPSE_KEYS['services.*.discovery.label_filters[]'], f, k));
    if (f.condition !== 'equals' && f.condition !== 'not-equals') r.fail(`${k}.condition`, f.condition, 'must be "equals" or "not-equals"');
    const v = f.value;
    if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') r.fail(`${k}.value`, v, 'must be a string, number, boolean or null');
    return { label: r.string(`${k}.label`, f.label), value: v === null ? '' : String(v), condition: f.condition };
  });
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
    restartJitter: hx.restart_jitter === undefined ? 0 : r.number('haproxy.restart_jitter', hx.restart_jitter, 0, 10),
    serverOrderSeed: hx.server_order_seed === undefined ? Math.floor(Math.random() * 2000) : r.integer('haproxy.server_order_seed', hx.server_order_seed, -(2 ** 31), 2 ** 31),
  };
}
