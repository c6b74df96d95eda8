import { describeValue } from './config-error';
import { ConfigReader, JsonObject } from './config-reader';

/**
 * What our agents do with every key of Airbnb's synapse (v0.18.9) and nerve (v0.9.7) config files,
 * in one table: the loaders consult it, the README's compatibility table is rendered from it, and
 * a test holds it against the list of upstream keys.
 *
 * - `implemented`: upstream's meaning (`note` says where we differ on purpose);
 * - `extension`: our own key, which upstream ignores;
 * - `refused`: the agent does not start, with `file: key = value: reason` — unless `harmless(value)`
 *   (a value that asks for what we do anyway);
 * - `warned`: accepted, with one warning at start naming the key and why ignoring it is harmless.
 */
export type KeyUse = 'implemented' | 'extension' | 'refused' | 'warned';

export interface KeyRule {
  readonly use: KeyUse;
  /** What we do, for the README; for `refused` and `warned`, the reason in the message. */
  readonly what: string;
  /** For `refused`: values that ask for nothing we lack. */
  readonly harmless?: (value: unknown) => boolean;
}

/** The keys of one object of a config file. */
export type KeyScope = { readonly [key: string]: KeyRule };

const ok = (what: string): KeyRule => ({ use: 'implemented', what });
const ours = (what: string): KeyRule => ({ use: 'extension', what });
const warned = (what: string): KeyRule => ({ use: 'warned', what });
const refused = (what: string, harmless?: (value: unknown) => boolean): KeyRule => ({ use: 'refused', what, harmless });
const isFalse = (v: unknown): boolean => v === false || v === null;

export const SYNAPSE_KEYS: { readonly [scope: string]: KeyScope } = {
  '(top level)': {
    services: ok('the consumed services'),
    service_conf_dir: ok('`*.json`, `*.yaml` and `*.yml` files, one service each, named after the file'),
    haproxy: ok('the HAProxy section'),
    file_output: ok('`output_directory`: one `<service>.json` per service with its current servers, rewritten atomically'),
    statsd: warned('there is no statsd client; the same figures are served for Prometheus on metrics_port'),
    metrics_port: ours('Prometheus metrics on 127.0.0.1:<port>'),
    zk_session_timeout: ours('ZooKeeper session timeout in seconds; default 36, as the Ruby synapse'),
    service: ours('a single service `{ "name": ..., ... }` beside or instead of `services`'),
  },
  'services.*': {
    discovery: ok('how instances are found (`zookeeper` only)'),
    haproxy: ok('the service\'s HAProxy section'),
    default_servers: ok('servers used while discovery has none'),
    keep_default_servers: ok('default servers stay beside discovered ones'),
    use_previous_backends: ok('keep the last servers when discovery drops them all (default true)'),
    backend_port_override: ok('every discovered server is used on this port'),
    leader_election: refused('leader election (one backend chosen by id) is not supported', isFalse),
    load_test_concurrency: refused('duplicating watchers for load tests is not supported'),
    name: warned('the service is named by its key in `services` (or by its file in service_conf_dir)'),
  },
  'services.*.discovery': {
    method: ok('`zookeeper`; any other method is refused'),
    path: ok('the service\'s ZooKeeper path'),
    hosts: ok('`host:port` list; a chroot suffix (`zk1:2181/smartstack`) prefixes the path'),
    label_filters: ok('`equals` / `not-equals` on registration labels'),
    label_filter: ok('the deprecated single filter, added to `label_filters`'),
    retry_policy: warned('ZooKeeper is retried forever with a growing pause; synapse never gives up'),
    discovery_jitter: warned('changes are read when the watch fires; there is no polling to spread'),
    decode: refused('only nerve registrations are read (serverset decoding is not supported)', (v) => typeof v === 'object' && v !== null && ((v as JsonObject).method ?? 'nerve') === 'nerve' && Object.keys(v).every((k) => k === 'method')),
    generator_config_path: refused('HAProxy settings are never read from ZooKeeper; only `disabled` is accepted', (v) => v === 'disabled'),
    auth_file: ours('a ZooKeeper credentials file to read the path as'),
  },
  'services.*.discovery.label_filters[]': {
    label: ok('the label compared'),
    value: ok('the value compared (as text)'),
    condition: ok('`equals` or `not-equals`'),
  },
  'services.*.default_servers[]': {
    name: ok('the server\'s name'),
    host: ok('host or IP address'),
    port: ok('port'),
  },
  'services.*.haproxy': {
    port: ok('local port; `null` binds the address alone (a unix socket); absent: backend only'),
    bind_address: ok('listen address of this service'),
    bind_options: ok('appended to the `bind` line (ssl, crt, accept-proxy, ...)'),
    server_options: ok('on every server line; `%{host}`, `%{port}`, `%{name}` are filled in per server'),
    server_port_override: ok('deprecated alias of `backend_port_override`'),
    frontend: ok('frontend lines (a list, or one string)'),
    backend: ok('backend lines (a list, or one string)'),
    listen: ok('lines placed in the frontend or backend as they apply'),
    backend_name: ok('the backend\'s name'),
    backend_order: ok('`asc`, `desc`, `no_shuffle` or seeded shuffle: the order new servers take free slots; a server already in a slot keeps it'),
    shared_frontend: ok('lines added to the `shared-frontend` frontend'),
    cookie_value_method: ok('`name` or `hash`: `cookie <value>` on server lines of a backend whose lines set a `cookie`'),
    use_nerve_weights: ok('registration weights are applied only with this set (here or in `haproxy`)'),
    disabled: refused('a service without HAProxy is not supported: remove it or use file_output alone', isFalse),
    server_slots: ours('server slots kept per backend for changes without a reload (default 32)'),
  },
  'haproxy': {
    config_file_path: ok('haproxy.cfg, written at first start and when a reload is needed'),
    reload_command: ok('run to start HAProxy when it is not running, and to reload it without a master socket'),
    socket_file_path: ok('the admin socket; a list is accepted and its first entry used (HAProxy 2.5+ has one process)'),
    do_writes: ok('write config_file_path'),
    do_reloads: ok('run reloads'),
    do_socket: ok('change servers through the admin socket'),
    global: ok('global lines'),
    defaults: ok('defaults lines'),
    extra_sections: ok('extra sections, header to lines'),
    bind_address: ok('default listen address'),
    shared_frontend: ok('lines of the `shared-frontend` frontend'),
    restart_interval: ok('seconds between reloads at least (default 2)'),
    restart_jitter: ok('a reload waits up to this fraction of restart_interval more, at random'),
    server_order_seed: ok('seed of the shuffle when backend_order is not set'),
    use_nerve_weights: ok('as the service key, for every service'),
    do_checks: warned('every config is checked with `haproxy -c` before it replaces the running one'),
    check_command: warned('every config is checked with `haproxy -c` on a temp file'),
    candidate_config_file_path: warned('the checked candidate is a temp file beside config_file_path'),
    state_file_path: warned('names HAProxy\'s server-state file here (loaded at reloads); synapse keeps no JSON cache: HAProxy and ZooKeeper hold the servers across restarts'),
    state_file_ttl: warned('there is no JSON cache of backends to expire'),
    max_server_id: warned('servers are fixed slots (`slot<N>`), whose ids HAProxy assigns once'),
    master_socket_file_path: ours('master CLI socket: reloads through it'),
  },
  'file_output': {
    output_directory: ok('where `<service>.json` files are written'),
  },
};

export const NERVE_KEYS: { readonly [scope: string]: KeyScope } = {
  '(top level)': {
    instance_id: ok('names the registrations'),
    services: ok('the provided services'),
    service_conf_dir: ok('`*.json`, `*.yaml` and `*.yml` files, one service each, named after the file'),
    heartbeat_path: ok('touched every 10 s while nerve runs'),
    max_repeated_report_failures: warned('a failed report is retried with a growing pause; nerve never gives up on a service'),
    statsd: warned('there is no statsd client; the same figures are served for Prometheus on metrics_port'),
    metrics_port: ours('Prometheus metrics on 127.0.0.1:<port>'),
    zk_session_timeout: ours('ZooKeeper session timeout in seconds; default 32, as the Ruby nerve'),
  },
  'services.*': {
    host: ok('registered host'),
    port: ok('registered port'),
    reporter_type: ok('`zookeeper`; `etcd` is refused'),
    zk_hosts: ok('`host:port` list; a chroot suffix (`zk1:2181/smartstack`) prefixes the path'),
    zk_path: ok('the service\'s ZooKeeper path'),
    check_interval: ok('seconds between check rounds (default 0.5); the registration\'s existence is checked every round'),
    checks: ok('all must pass'),
    check_mocked: ok('`true`: registered without running the checks'),
    weight: ok('registration weight 0-256'),
    haproxy_server_options: ok('per-instance server options, refused at start unless synapse would accept them'),
    labels: ok('registration labels'),
    use_path_encoding: ok('the registration also in the node name (`base64_<len>_<payload>_`)'),
    node_type: refused('only ephemeral sequential nodes are made (a persistent node outlives nerve)', (v) => v === 'ephemeral_sequential'),
    ttl_seconds: warned('upstream renews only persistent nodes; ours are ephemeral, so it has no effect in either'),
    rate_limiting: warned('registration changes are not rate limited (upstream\'s default shadow mode only logs)'),
    max_repeated_report_failures: warned('a failed report is retried with a growing pause; nerve never gives up on a service'),
    load_test_concurrency: refused('registering copies for load tests is not supported'),
    etcd_host: refused('the etcd reporter is not supported'),
    etcd_port: refused('the etcd reporter is not supported'),
    etcd_path: refused('the etcd reporter is not supported'),
    zk_auth_file: ours('ZooKeeper credentials file: register as that identity, with an ACL'),
    zk_read_acl: ours('ids given READ on each registration'),
  },
  'services.*.checks[]': {
    type: ok('`http`, `tcp` or `redis`; others are refused'),
    name: ok('the check\'s name in logs'),
    host: ok('checked host (default the service\'s)'),
    port: ok('checked port (default the service\'s)'),
    timeout: ok('seconds (default 0.1)'),
    rise: ok('passes in a row before up (default 1)'),
    fall: ok('failures in a row before down (default 1)'),
    uri: ok('http: the path'),
    ssl: ok('http: HTTPS without certificate verification, as upstream'),
    headers: ok('http: request headers'),
    expect: ok('http: text the body must contain'),
    open_timeout: ok('http: seconds to connect (default 0.2)'),
    read_timeout: ok('http: seconds to answer (default timeout)'),
    ssl_timeout: ok('http: seconds for the TLS handshake (default 0.2)'),
    module: refused('external Ruby check modules cannot be loaded'),
    username: refused('only for rabbitmq checks, which are not supported'),
    password: refused('only for rabbitmq checks, which are not supported'),
  },
};

/**
 * Applies a scope's rules to `object`: throws for a refused key, and returns one warning per
 * ignored or unknown key, each `file: key = value: reason`.
 */
export function auditKeys(r: ConfigReader, scope: KeyScope, object: JsonObject, prefix: string): string[] {
  const warnings: string[] = [];
  for (const key of Object.keys(object)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const value = object[key];
    const rule = Object.prototype.hasOwnProperty.call(scope, key) ? scope[key] : undefined;
    if (rule === undefined) {
      warnings.push(`${r.source}: ${path} = ${describeValue(value)}: unknown key, ignored`);
    } else if (rule.use === 'refused' && !rule.harmless?.(value)) {
      r.fail(path, value, rule.what);
    } else if (rule.use === 'warned') {
      warnings.push(`${r.source}: ${path} = ${describeValue(value)}: ignored: ${rule.what}`);
    }
  }
  return warnings;
}

/** The README's compatibility table of one agent, rendered from its rules. */
export function compatibilityTable(keys: { readonly [scope: string]: KeyScope }): string {
  const label: { [use in KeyUse]: string } = { implemented: 'as upstream', extension: 'ours', refused: 'refused at start', warned: 'warned, ignored' };
  const rows = ['| key | here | what it does |', '| --- | --- | --- |'];
  for (const [scope, rules] of Object.entries(keys)) {
    for (const [key, rule] of Object.entries(rules)) {
      const path = scope === '(top level)' ? key : `${scope}.${key}`;
      const use = rule.use === 'refused' && rule.harmless ? 'refused unless harmless' : label[rule.use];
      rows.push(`| \`${path}\` | ${use} | ${rule.what.replace(/\|/g, '\\|')} |`);
    }
  }
  return rows.join('\n');
}
