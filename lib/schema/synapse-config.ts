/**
 * `synapse.conf.json` as Airbnb's synapse (v0.18) reads it. The constructs render it, our synapse
 * agent reads it, and the Ruby gem can read the same file. Not part of the jsii API.
 */
export interface SynapseConfig {
  readonly services: { readonly [name: string]: SynapseServiceConfig };
  readonly haproxy: SynapseHaproxyConfig;
  /** Our agent's extension: Prometheus metrics on 127.0.0.1:<port>. Upstream ignores unknown keys. */
  readonly metrics_port?: number;
}

export interface SynapseServiceConfig {
  readonly discovery: SynapseDiscoveryConfig;
  readonly haproxy: SynapseServiceHaproxyConfig;
  readonly default_servers?: SynapseServer[];
  readonly keep_default_servers?: boolean;
  /** Keep the last known backends when discovery has none or is down. Upstream default true. */
  readonly use_previous_backends?: boolean;
}

export interface SynapseDiscoveryConfig {
  readonly method: 'zookeeper';
  readonly path: string;
  readonly hosts: string[];
  /** Our agent's extension: a ZooKeeper credentials file to read the path as (see `zookeeper-credentials.ts`). */
  readonly auth_file?: string;
}

export interface SynapseServiceHaproxyConfig {
  /** Local port; the article's example writes it as a string. `null`: the bind address alone (a unix socket). */
  readonly port?: number | string | null;
  readonly bind_address?: string;
  /** Appended to the `bind` line (ssl, crt, accept-proxy, ...). */
  readonly bind_options?: string;
  /** Lines added to the shared frontend (`haproxy.shared_frontend` must exist). */
  readonly shared_frontend?: string[];
  readonly server_options?: string;
  readonly listen?: string[];
  readonly frontend?: string[];
  readonly backend?: string[];
  readonly backend_name?: string;
  /** Our agent's extension: server slots kept in the backend for run-time changes. */
  readonly server_slots?: number;
}

export interface SynapseServer {
  readonly name: string;
  readonly host: string;
  /** Upstream accepts a number or a numeric string. */
  readonly port: number | string;
}

export interface SynapseHaproxyConfig {
  readonly global?: string[];
  readonly defaults?: string[];
  readonly extra_sections?: { readonly [header: string]: string[] };
  readonly config_file_path?: string;
  readonly reload_command?: string;
  readonly socket_file_path?: string;
  readonly do_writes?: boolean;
  readonly do_reloads?: boolean;
  readonly do_socket?: boolean;
  /** Apply the weights of registrations (upstream default false). */
  readonly use_nerve_weights?: boolean;
  readonly state_file_path?: string;
  /** Seconds between reloads at most. Upstream default 2. */
  readonly restart_interval?: number;
  readonly bind_address?: string;
  /** Lines of the `frontend shared-frontend` section, which services add their own lines to. */
  readonly shared_frontend?: string[];
  /** Our agent's extension: the master CLI socket of a master-worker HAProxy. */
  readonly master_socket_file_path?: string;
}
