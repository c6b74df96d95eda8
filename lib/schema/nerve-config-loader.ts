import { readdirSync, readFileSync } from 'fs';
import { join } from 'path';
import { ConfigError } from './config-error';
import { ConfigReader, JsonObject } from './config-reader';

/** A health check with every default applied; durations in milliseconds. */
export interface LoadedNerveCheck {
  readonly type: 'http' | 'tcp';
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly uri: string;
  readonly timeoutMs: number;
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
  readonly labels?: { readonly [key: string]: string };
  /** The ZooKeeper credentials file (`zk_auth_file`), an absolute path. */
  readonly zkAuthFile?: string;
  /** ZooKeeper ids (`scheme:id`) that may read each registration (`zk_read_acl`). */
  readonly zkReadAcl?: string[];
}

export interface LoadedNerveConfig {
  readonly instanceId: string;
  readonly services: LoadedNerveService[];
  readonly metricsPort?: number;
}

/**
 * Reads and validates `nerve.conf.json` (and the `*.json` service files of `service_conf_dir`,
 * one service each, named after the file, as upstream does). Throws {@link ConfigError}.
 */
export function loadNerveConfig(path: string): LoadedNerveConfig {
  const raw = readJson(path);
  const r = new ConfigReader(path);
  const top = r.object('(top level)', raw);
  const extra: { [name: string]: unknown } = {};
  if (top.service_conf_dir !== undefined) {
    const dir = r.string('service_conf_dir', top.service_conf_dir);
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
    } catch (e) {
      return r.fail('service_conf_dir', dir, `cannot be read: ${(e as Error).message}`);
    }
    for (const file of files) extra[file.slice(0, -'.json'.length)] = readJson(join(dir, file));
  }
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
  const services = names.map((name) => loadService(r, name, r.object(`services.${name}`, rawServices[name])));
  return {
    instanceId,
    services,
    metricsPort: top.metrics_port === undefined ? undefined : r.port('metrics_port', top.metrics_port),
  };
}

function loadService(r: ConfigReader, name: string, s: JsonObject): LoadedNerveService {
  const key = `services.${name}`;
  r.safe(`${key} (service name)`, name, 'name');
  if (s.reporter_type !== undefined && s.reporter_type !== 'zookeeper') {
    r.fail(`${key}.reporter_type`, s.reporter_type, 'must be "zookeeper" (the only reporter supported)');
  }
  const host = r.safe(`${key}.host`, s.host, 'host');
  const port = r.port(`${key}.port`, s.port);
  const zkHosts = r.list(`${key}.zk_hosts`, s.zk_hosts).map((h, i) => r.hostPort(`${key}.zk_hosts[${i}]`, h));
  if (zkHosts.length === 0) r.fail(`${key}.zk_hosts`, s.zk_hosts, 'must list at least one ZooKeeper host:port');
  const checks = r.list(`${key}.checks`, s.checks).map((c, i) => loadCheck(r, `${key}.checks[${i}]`, r.object(`${key}.checks[${i}]`, c), host, port));
  if (checks.length === 0) r.fail(`${key}.checks`, s.checks, 'must list at least one check');
  let labels: { [k: string]: string } | undefined;
  if (s.labels !== undefined) {
    const o = r.object(`${key}.labels`, s.labels);
    labels = {};
    for (const k of Object.keys(o)) labels[k] = typeof o[k] === 'string' ? (o[k] as string) : r.fail(`${key}.labels.${k}`, o[k], 'must be a string');
  }
  return {
    name,
    host,
    port,
    zkHosts,
    zkPath: r.zkPath(`${key}.zk_path`, s.zk_path),
    checkIntervalMs: s.check_interval === undefined ? 500 : r.number(`${key}.check_interval`, s.check_interval, 0.05, 3600) * 1000,
    checks,
    weight: s.weight === undefined ? undefined : r.integer(`${key}.weight`, s.weight, 0, 256),
    haproxyServerOptions: s.haproxy_server_options === undefined ? undefined : r.safe(`${key}.haproxy_server_options`, s.haproxy_server_options, 'line'),
    labels,
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
  if (c.type !== 'http' && c.type !== 'tcp') r.fail(`${key}.type`, c.type, 'must be "http" or "tcp"');
  const uri = c.type === 'http' ? r.string(`${key}.uri`, c.uri) : '';
  if (c.type === 'http' && !uri.startsWith('/')) r.fail(`${key}.uri`, c.uri, 'must be a path starting with /');
  const headers: { [name: string]: string } = {};
  const h = r.optionalObject(`${key}.headers`, c.headers) ?? {};
  for (const name of Object.keys(h)) headers[name] = r.string(`${key}.headers.${name}`, h[name]);
  return {
    type: c.type,
    name: c.name === undefined ? `${c.type}-${port}` : r.string(`${key}.name`, c.name),
    host: c.host === undefined ? host : r.safe(`${key}.host`, c.host, 'host'),
    port: c.port === undefined ? port : r.port(`${key}.port`, c.port),
    uri,
    timeoutMs: c.timeout === undefined ? 100 : r.number(`${key}.timeout`, c.timeout, 0.001, 600) * 1000,
    rise: c.rise === undefined ? 1 : r.integer(`${key}.rise`, c.rise, 1, 1000),
    fall: c.fall === undefined ? 1 : r.integer(`${key}.fall`, c.fall, 1, 1000),
    expect: c.expect === undefined ? undefined : r.string(`${key}.expect`, c.expect),
    headers,
  };
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, '(file)', path, `cannot be read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, '(file)', path, `is not valid JSON: ${(e as Error).message}`);
  }
}
