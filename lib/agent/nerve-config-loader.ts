import { readConfigFile, readServiceConfDir } from '../schema/config-file';
import { ConfigReader, JsonObject } from '../schema/config-reader';
import { isLabelValue } from '../schema/registration-codec';
import { LabelValue } from '../schema/registration';
import { auditKeys, NERVE_KEYS } from '../schema/upstream-keys';

/** A health check with every default applied; durations in milliseconds. */
export interface LoadedNerveCheck {
  readonly type: 'http' | 'tcp' | 'redis';
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly uri: string;
  readonly timeoutMs: number;
  /** http: HTTPS without certificate verification (`ssl`), as upstream. */
  readonly ssl: boolean;
  /** http: time to connect (`open_timeout`, default 0.2 s). */
  readonly openTimeoutMs: number;
  /** http: time for the answer once connected (`read_timeout`, default `timeout`). */
  readonly readTimeoutMs: number;
  /** http with ssl: time for the TLS handshake (`ssl_timeout`, default 0.2 s). */
  readonly sslTimeoutMs: number;
  readonly rise: number;
  readonly fall: number;
  readonly expect?: string;
  readonly headers: { readonly [name: string]: string };
}

/** A provided service with every default applied. */
export interface LoadedNerveService {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly zkHosts: string[];
  readonly zkPath: string;
  readonly checkIntervalMs: number;
  readonly checks: LoadedNerveCheck[];
  readonly weight?: number;
  readonly haproxyServerOptions?: string;
  readonly labels?: { readonly [key: string]: LabelValue };
  /** Registered without running the checks (`check_mocked`). */
  readonly checkMocked: boolean;
  /** The registration also in the node's name (`use_path_encoding`). */
  readonly usePathEncoding: boolean;
  /** The ZooKeeper credentials file (`zk_auth_file`), an absolute path. */
  readonly zkAuthFile?: string;
  /** ZooKeeper ids (`scheme:id`) that may read each registration (`zk_read_acl`). */
  readonly zkReadAcl?: string[];
}

export interface LoadedNerveConfig {
  /** The file it was read from (SIGHUP reads it again). */
  readonly source: string;
  readonly instanceId: string;
  readonly services: LoadedNerveService[];
  readonly metricsPort?: number;
  /** Touched while nerve makes progress (`heartbeat_path`). */
  readonly heartbeatPath?: string;
  /** Requested ZooKeeper session timeout (`zk_session_timeout`, seconds; default 32 as upstream). */
  readonly zkSessionTimeoutMs: number;
  /** One line per ignored or unknown key, `file: key = value: reason`, logged at start. */
  readonly warnings: string[];
}

/** Upstream nerve asks for 2 × 16000 ms (zookeeper gem: receive_timeout_msec × 2). */
export const NERVE_DEFAULT_ZK_SESSION_TIMEOUT_MS = 32000;

/**
 * Reads and validates `nerve.conf.json` (JSON, or YAML for other extensions) and the service
 * files of `service_conf_dir`, one service each, named after the file, as upstream does.
 * Throws {@link ConfigError}.
 */
export function loadNerveConfig(path: string): LoadedNerveConfig {
  const raw = readConfigFile(path);
  const r = new ConfigReader(path);
  const top = r.object('(top level)', raw);
  const extra = top.service_conf_dir === undefined ? {} : readServiceConfDir(path, r.string('service_conf_dir', top.service_conf_dir));
  return parseNerveConfig(raw, path, extra);
}

/** Validates a parsed `nerve.conf.json`; `extraServices` come from `service_conf_dir`. */
export function parseNerveConfig(raw: unknown, source = 'nerve.conf.json', extraServices: { [name: string]: unknown } = {}): LoadedNerveConfig {
  const r = new ConfigReader(source);
  const top = r.object('(top level)', raw);
  // It prefixes the registration node's name and names the server in HAProxy's view.
  const instanceId = r.safe('instance_id', top.instance_id, 'name');
  const rawServices: { [name: string]: unknown } = { ...(r.optionalObject('services', top.services) ?? {}), ...extraServices };
  const names = Object.keys(rawServices).sort();
  if (names.length === 0) r.fail('services', top.services, 'must name at least one service');
  const warnings = auditKeys(r, NERVE_KEYS['(top level)'], top, '');
  const services = names.map((name) => loadService(r, name, r.object(`services.${name}`, rawServices[name]), warnings));
  return {
    source,
    instanceId,
    services,
    metricsPort: top.metrics_port === undefined ? undefined : r.port('metrics_port', top.metrics_port),
    heartbeatPath: top.heartbeat_path === undefined ? undefined : r.absolutePath('heartbeat_path', top.heartbeat_path),
    zkSessionTimeoutMs: top.zk_session_timeout === undefined
      ? NERVE_DEFAULT_ZK_SESSION_TIMEOUT_MS
      : r.number('zk_session_timeout', top.zk_session_timeout, 1, 600) * 1000,
    warnings,
  };
}

function loadService(r: ConfigReader, name: string, s: JsonObject, warnings: string[]): LoadedNerveService {
  const key = `services.${name}`;
  r.safe(`${key} (service name)`, name, 'name');
  if (s.reporter_type !== undefined && s.reporter_type !== 'zookeeper') {
    r.fail(`${key}.reporter_type`, s.reporter_type, 'must be "zookeeper" (the only reporter supported)');
  }
  warnings.push(...auditKeys(r, NERVE_KEYS['services.*'], s, key));
  const host = r.safe(`${key}.host`, s.host, 'host');
  const port = r.port(`${key}.port`, s.port);
  const { hosts: zkHosts, chroot } = r.zkHosts(`${key}.zk_hosts`, s.zk_hosts);
  const checkMocked = r.boolean(`${key}.check_mocked`, s.check_mocked, false);
  const checks = r.list(`${key}.checks`, s.checks).map((c, i) => {
    const o = r.object(`${key}.checks[${i}]`, c);
    warnings.push(...auditKeys(r, NERVE_KEYS['services.*.checks[]'], o, `${key}.checks[${i}]`));
    return loadCheck(r, `${key}.checks[${i}]`, o, host, port);
  });
  if (checks.length === 0 && !checkMocked) r.fail(`${key}.checks`, s.checks, 'must list at least one check');
  let labels: { [k: string]: LabelValue } | undefined;
  if (s.labels !== undefined) {
    const o = r.object(`${key}.labels`, s.labels);
    labels = {};
    for (const k of Object.keys(o)) {
      labels[k] = isLabelValue(o[k]) ? o[k] as LabelValue : r.fail(`${key}.labels.${k}`, o[k], 'must be a string, number, boolean or null of at most 256 characters');
    }
  }
  return {
    name,
    host,
    port,
    zkHosts,
    zkPath: chroot + r.zkPath(`${key}.zk_path`, s.zk_path),
    checkIntervalMs: s.check_interval === undefined ? 500 : r.number(`${key}.check_interval`, s.check_interval, 0.05, 3600) * 1000,
    checks,
    weight: s.weight === undefined ? undefined : r.integer(`${key}.weight`, s.weight, 0, 256),
    // The whitelist synapse applies to registrations: what it would refuse is refused here, at start.
    haproxyServerOptions: s.haproxy_server_options === undefined ? undefined : r.safe(`${key}.haproxy_server_options`, s.haproxy_server_options, 'serverOptions'),
    labels,
    checkMocked,
    usePathEncoding: r.boolean(`${key}.use_path_encoding`, s.use_path_encoding, false),
    zkAuthFile: s.zk_auth_file === undefined ? undefined : r.absolutePath(`${key}.zk_auth_file`, s.zk_auth_file),
    zkReadAcl: s.zk_read_acl === undefined ? undefined : r.list(`${key}.zk_read_acl`, s.zk_read_acl).map((id, i) => aclId(r, `${key}.zk_read_acl[${i}]`, id)),
  };
}

/** A ZooKeeper ACL id, `scheme:id`, such as `digest:reader:<base64 digest>` or `world:anyone`. */
function aclId(r: ConfigReader, key: string, value: unknown): string {
  const id = r.string(key, value);
  if (!/^(digest:[A-Za-z0-9][A-Za-z0-9_.-]{0,99}:[A-Za-z0-9+/]+={0,2}|world:anyone|ip:[0-9./]+)$/.test(id)) {
    r.fail(key, id, 'expected a ZooKeeper ACL id such as "digest:reader:<base64 digest>", "world:anyone" or "ip:10.0.0.0/8"');
  }
  return id;
}

function loadCheck(r: ConfigReader, key: string, c: JsonObject, host: string, port: number): LoadedNerveCheck {
  if (c.type !== 'http' && c.type !== 'tcp' && c.type !== 'redis') r.fail(`${key}.type`, c.type, 'must be "http", "tcp" or "redis" (the check types supported)');
  const uri = c.type === 'http' ? r.string(`${key}.uri`, c.uri) : '';
  if (c.type === 'http' && !uri.startsWith('/')) r.fail(`${key}.uri`, c.uri, 'must be a path starting with /');
  const seconds = (name: string, fallback: number): number => (c[name] === undefined ? fallback : r.number(`${key}.${name}`, c[name], 0.001, 600) * 1000);
  const timeoutMs = seconds('timeout', 100);
  const headers: { [name: string]: string } = {};
  const h = r.optionalObject(`${key}.headers`, c.headers) ?? {};
  for (const name of Object.keys(h)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) r.fail(`${key}.headers`, name, 'is not an HTTP header name');
    const value = typeof h[name] === 'number' ? String(h[name]) : r.string(`${key}.headers.${name}`, h[name]);
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) r.fail(`${key}.headers.${name}`, value, 'must not hold control characters');
    headers[name] = value;
  }
  return {
    type: c.type,
    name: c.name === undefined ? `${c.type}-${port}` : r.string(`${key}.name`, c.name),
    host: c.host === undefined ? host : r.safe(`${key}.host`, c.host, 'host'),
    port: c.port === undefined ? port : r.port(`${key}.port`, c.port),
    uri,
    timeoutMs,
    ssl: r.boolean(`${key}.ssl`, c.ssl, false),
    openTimeoutMs: seconds('open_timeout', 200),
    readTimeoutMs: seconds('read_timeout', timeoutMs),
    sslTimeoutMs: seconds('ssl_timeout', 200),
    rise: c.rise === undefined ? 1 : r.integer(`${key}.rise`, c.rise, 1, 1000),
    fall: c.fall === undefined ? 1 : r.integer(`${key}.fall`, c.fall, 1, 1000),
    expect: c.expect === undefined ? undefined : r.string(`${key}.expect`, c.expect),
    headers,
  };
}
