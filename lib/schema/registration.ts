/**
 * The registration payload nerve writes under a service's path and synapse reads: compact JSON
 * with keys in this order: host, port, name, then optional weight, haproxy_server_options, labels.
 */
export interface Registration {
  readonly host: string;
  readonly port: number;
  readonly name: string;
  readonly weight?: number;
  readonly haproxy_server_options?: string;
  /** Upstream writes whatever the config holds; scalars are accepted (compared as text by label filters). */
  readonly labels?: { readonly [key: string]: LabelValue };
}

/** A label's value: upstream's YAML/JSON configs give strings, numbers, booleans or null. */
export type LabelValue = string | number | boolean | null;
