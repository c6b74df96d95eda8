import { HealthCheck, HealthCheckType } from '../model/health-check';
import { NerveCheckConfig, NerveConfig, NerveServiceConfig } from '../schema/nerve-config';

/** One service a host provides, already validated. */
export interface ProvidedServiceSpec {
  readonly name: string;
  /** The address nerve registers: the host's private address. */
  readonly host: string;
  readonly port: number;
  readonly zkHosts: string[];
  readonly zkPath: string;
  readonly healthCheck: HealthCheck;
  readonly weight?: number;
  readonly labels?: { readonly [key: string]: string };
  /** The ZooKeeper credentials file nerve registers with, when the ensemble has ACLs. */
  readonly zkAuthFile?: string;
  /** ZooKeeper ids given READ on the registration. */
  readonly zkReadAcl?: string[];
}

/** Everything `nerve.conf.json` says for one host. */
export interface NerveSpec {
  /** The host's name; it becomes each registration's `name` and node prefix. */
  readonly instanceId: string;
  readonly services: ProvidedServiceSpec[];
  /** Our agent's Prometheus port on 127.0.0.1; omitted for the Ruby gem. */
  readonly metricsPort?: number;
}

/** Builds `nerve.conf.json` with upstream keys in a fixed order and services sorted by name. */
export function nerveConfig(spec: NerveSpec): NerveConfig {
  const services: { [name: string]: NerveServiceConfig } = {};
  for (const s of [...spec.services].sort((a, b) => compare(a.name, b.name))) {
    services[s.name] = {
      host: s.host,
      port: s.port,
      reporter_type: 'zookeeper',
      zk_hosts: [...s.zkHosts],
      zk_path: s.zkPath,
      check_interval: s.healthCheck.intervalSeconds,
      checks: [nerveCheck(s.name, s.healthCheck)],
      ...(s.weight !== undefined ? { weight: s.weight } : {}),
      ...(s.labels && Object.keys(s.labels).length > 0 ? { labels: sortedLabels(s.labels) } : {}),
      ...(s.zkAuthFile !== undefined ? { zk_auth_file: s.zkAuthFile } : {}),
      ...(s.zkReadAcl !== undefined ? { zk_read_acl: [...s.zkReadAcl] } : {}),
    };
  }
  return {
    instance_id: spec.instanceId,
    services,
    ...(spec.metricsPort !== undefined ? { metrics_port: spec.metricsPort } : {}),
  };
}

/** The file's text: pretty JSON with a final newline, the same bytes for the same spec. */
export function renderNerveConfig(spec: NerveSpec): string {
  return JSON.stringify(nerveConfig(spec), null, 2) + '\n';
}

function nerveCheck(service: string, check: HealthCheck): NerveCheckConfig {
  const timing = { timeout: check.timeoutSeconds, rise: check.rise, fall: check.fall };
  if (check.type === HealthCheckType.TCP) {
    return { type: 'tcp', name: `${service} tcp`, ...timing };
  }
  return {
    type: 'http',
    name: `${service} http ${check.path}`,
    uri: check.path,
    ...timing,
    ...(check.expectBody !== undefined ? { expect: check.expectBody } : {}),
  };
}

function sortedLabels(labels: { readonly [key: string]: string }): { [key: string]: string } {
  const out: { [key: string]: string } = {};
  for (const key of Object.keys(labels).sort(compare)) out[key] = labels[key];
  return out;
}

/** Code-point order, independent of the machine's locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
