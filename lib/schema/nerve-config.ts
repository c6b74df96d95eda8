/**
 * `nerve.conf.json` as Airbnb's nerve (v0.9) reads it. The constructs render it, our nerve agent
 * reads it, and the Ruby gem can read the same file. Durations are seconds, as upstream.
 * Not part of the jsii API: snake_case keys are the wire format.
 */
export interface NerveConfig {
  readonly instance_id: string;
  readonly services: { readonly [name: string]: NerveServiceConfig };
  readonly service_conf_dir?: string;
  readonly heartbeat_path?: string;
  /** Our agent's extension: Prometheus metrics on 127.0.0.1:<port>. Upstream ignores unknown keys. */
  readonly metrics_port?: number;
}

export interface NerveServiceConfig {
  readonly host: string;
  /** Upstream accepts a number or a numeric string. */
  readonly port: number | string;
  readonly reporter_type: 'zookeeper';
  readonly zk_hosts: string[];
  readonly zk_path: string;
  /** Seconds between check rounds. Upstream default 0.5. */
  readonly check_interval?: number;
  readonly checks: NerveCheckConfig[];
  readonly weight?: number;
  readonly haproxy_server_options?: string;
  readonly labels?: { readonly [key: string]: string };
  /**
   * Our agent's extension: a ZooKeeper credentials file (see `zookeeper-credentials.ts`). With it
   * the registration is made as that identity, with an ACL, under a path that must already exist.
   */
  readonly zk_auth_file?: string;
  /**
   * Our agent's extension: ZooKeeper ids (`digest:reader:<digest>`) given READ on each registration.
   * Needed with `zk_auth_file`: a registrar may not see the digests in the service path's ACL.
   */
  readonly zk_read_acl?: string[];
}

export interface NerveCheckConfig {
  readonly type: 'http' | 'tcp';
  readonly name?: string;
  /** HTTP path, for `http` checks. */
  readonly uri?: string;
  /** Seconds. Upstream default 0.1. */
  readonly timeout?: number;
  /** Consecutive passes before up. Upstream default 1. */
  readonly rise?: number;
  /** Consecutive failures before down. Upstream default 1. */
  readonly fall?: number;
  /** Text the response body (http) must contain. */
  readonly expect?: string;
  readonly headers?: { readonly [name: string]: string };
  /** Overrides the service's host/port for this check. */
  readonly host?: string;
  readonly port?: number | string;
}
