import { HealthCheck, HealthCheckType } from '../model/health-check';
import { SynapseConfig, SynapseHaproxyConfig, SynapseServiceConfig } from '../schema/synapse-config';

/** A server HAProxy uses while the service has no registrations. */
export interface DefaultServerSpec {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/** One service a host consumes, already validated. */
export interface ConsumedServiceSpec {
  readonly name: string;
  readonly localPort: number;
  /** `http` or `tcp`. */
  readonly mode: string;
  readonly zkHosts: string[];
  readonly zkPath: string;
  /** The ZooKeeper credentials file synapse reads with, when the ensemble has ACLs. */
  readonly zkAuthFile?: string;
  readonly healthCheck: HealthCheck;
  /** An HAProxy balance algorithm, e.g. `roundrobin`. */
  readonly balance: string;
  readonly retries: number;
  readonly redispatch: boolean;
  /** `retry-on` keywords (HTTP mode only); empty for none. */
  readonly retryOn: string[];
  readonly retryNonIdempotent: boolean;
  readonly connectTimeoutMs: number;
  readonly clientTimeoutSeconds: number;
  readonly serverTimeoutSeconds: number;
  readonly queueTimeoutSeconds: number;
  readonly serverSlots: number;
  readonly defaultServers: DefaultServerSpec[];
  readonly keepDefaultServers: boolean;
}

/** The host's HAProxy process: limits, sockets and files. */
export interface SidecarHaproxySpec {
  readonly maxConnections: number;
  /** Stats page and Prometheus exporter on 127.0.0.1. */
  readonly statsPort: number;
  /** The haproxy.cfg synapse writes and HAProxy runs. */
  readonly configFilePath: string;
  readonly adminSocketPath: string;
  readonly masterSocketPath: string;
  /** Where `show servers state` is dumped before a reload, read back by the new workers. */
  readonly serverStateFilePath: string;
  /** synapse's own cache of the backends it has seen (upstream `state_file_path`). */
  readonly synapseStateFilePath: string;
  /** The user synapse runs as; it owns the admin socket. */
  readonly socketOwner: string;
}

/** Everything `synapse.conf.json` says for one host. */
export interface SynapseSpec {
  readonly services: ConsumedServiceSpec[];
  readonly haproxy: SidecarHaproxySpec;
  /** Our agent's Prometheus port on 127.0.0.1; omitted for the Ruby gem. */
  readonly metricsPort?: number;
}

/** The name of the stats section; no service may take it. */
export const STATS_SECTION_NAME = 'haproxy-stats';

/**
 * Builds `synapse.conf.json`: upstream keys in a fixed order, services sorted by name. All HAProxy
 * tuning lives in the `global`, `defaults`, `frontend` and `backend` lines, so the Ruby gem and
 * our agent produce the same haproxy.cfg from it.
 */
export function synapseConfig(spec: SynapseSpec): SynapseConfig {
  const services: { [name: string]: SynapseServiceConfig } = {};
  for (const s of [...spec.services].sort((a, b) => compare(a.name, b.name))) {
    services[s.name] = {
      discovery: { method: 'zookeeper', path: s.zkPath, hosts: [...s.zkHosts], ...(s.zkAuthFile !== undefined ? { auth_file: s.zkAuthFile } : {}) },
      haproxy: {
        port: s.localPort,
        bind_address: '127.0.0.1',
        server_options: serverOptions(s.healthCheck),
        frontend: frontendLines(s),
        backend: backendLines(s),
        server_slots: s.serverSlots,
      },
      ...(s.defaultServers.length > 0
        ? {
          default_servers: s.defaultServers.map((d) => ({ name: d.name, host: d.host, port: d.port })),
          keep_default_servers: s.keepDefaultServers,
        }
        : {}),
      // Keep the last known instances when the path turns up empty: an empty backend is an outage.
      use_previous_backends: true,
    };
  }
  return {
    services,
    haproxy: haproxySection(spec.haproxy),
    ...(spec.metricsPort !== undefined ? { metrics_port: spec.metricsPort } : {}),
  };
}

/** The file's text: pretty JSON with a final newline, the same bytes for the same spec. */
export function renderSynapseConfig(spec: SynapseSpec): string {
  return JSON.stringify(synapseConfig(spec), null, 2) + '\n';
}

/** A duration as HAProxy reads it: whole seconds as `2s`, anything finer in milliseconds. */
export function haproxyDuration(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function haproxySection(h: SidecarHaproxySpec): SynapseHaproxyConfig {
  return {
    global: [
      'master-worker',
      'user haproxy',
      'group haproxy',
      `maxconn ${h.maxConnections}`,
      'log /dev/log local0 notice',
      // Mode 600, owned by synapse: only synapse (and root) may change servers at run time.
      `stats socket ${h.adminSocketPath} mode 600 level admin user ${h.socketOwner}`,
      'stats timeout 30s',
      `server-state-file ${h.serverStateFilePath}`,
      // Old workers finish in-flight requests after a reload, but not forever.
      'hard-stop-after 30s',
    ],
    defaults: [
      'mode http',
      'log global',
      'option dontlognull',
      'timeout connect 1s',
      'timeout client 60s',
      'timeout server 60s',
      'timeout queue 5s',
      'timeout http-request 10s',
      'timeout http-keep-alive 10s',
      'timeout check 2s',
      'load-server-state-from-file global',
      // A server named by host name that does not resolve must not stop HAProxy from starting.
      'default-server init-addr last,libc,none',
    ],
    extra_sections: {
      [`listen ${STATS_SECTION_NAME}`]: [
        `bind 127.0.0.1:${h.statsPort}`,
        'mode http',
        'no log',
        'http-request use-service prometheus-exporter if { path /metrics }',
        'stats enable',
        'stats uri /stats',
        'stats refresh 10s',
      ],
    },
    config_file_path: h.configFilePath,
    // Check before reloading: an unchecked config must never replace a working one.
    reload_command: `/usr/sbin/haproxy -c -q -f ${h.configFilePath} && echo reload | /usr/bin/socat -t 30 stdio unix-connect:${h.masterSocketPath}`,
    socket_file_path: h.adminSocketPath,
    do_writes: true,
    do_reloads: true,
    do_socket: true,
    // Instances carry their weight in the registration; upstream applies it only when asked.
    use_nerve_weights: true,
    state_file_path: h.synapseStateFilePath,
    restart_interval: 2,
    bind_address: '127.0.0.1',
    master_socket_file_path: h.masterSocketPath,
  };
}

/** Active checks on every server; three failed connections in a row take it out at once. */
function serverOptions(check: HealthCheck): string {
  return [
    'check',
    `inter ${haproxyDuration(check.intervalSeconds)}`,
    `rise ${check.rise}`,
    `fall ${check.fall}`,
    'observe layer4 error-limit 3 on-error mark-down',
  ].join(' ');
}

function frontendLines(s: ConsumedServiceSpec): string[] {
  return [`mode ${s.mode}`, `timeout client ${s.clientTimeoutSeconds}s`];
}

function backendLines(s: ConsumedServiceSpec): string[] {
  const lines = [`mode ${s.mode}`, `balance ${s.balance}`];
  // A hash over the source is static unless consistent, and synapse changes weights at run time.
  if (s.balance === 'source') lines.push('hash-type consistent');
  lines.push(`retries ${s.retries}`);
  // `option redispatch 1`: every retry goes to another server, not back to the one that failed.
  lines.push(s.redispatch ? 'option redispatch 1' : 'no option redispatch');
  if (s.mode === 'http' && s.retryOn.length > 0) {
    lines.push(`retry-on ${s.retryOn.join(' ')}`);
    if (!s.retryNonIdempotent) {
      // A failed connection is retried for any method (nothing was sent); anything later only
      // for GET, HEAD and OPTIONS, which the server may see twice without harm.
      lines.push('http-request disable-l7-retry if !METH_GET !METH_OPTIONS');
    }
  }
  const check = s.healthCheck;
  if (check.type === HealthCheckType.HTTP) {
    lines.push(`option httpchk GET ${check.path}`);
    if (check.expectStatus !== undefined) lines.push(`http-check expect status ${check.expectStatus}`);
    if (check.expectBody !== undefined) lines.push(`http-check expect string ${check.expectBody}`);
  }
  lines.push(
    `timeout connect ${haproxyDuration(s.connectTimeoutMs / 1000)}`,
    `timeout server ${s.serverTimeoutSeconds}s`,
    `timeout queue ${s.queueTimeoutSeconds}s`,
    `timeout check ${haproxyDuration(check.timeoutSeconds)}`,
  );
  return lines;
}

/** Code-point order, independent of the machine's locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
