import { ValidationError } from './model/validation-error';
import { PACKAGE } from './package-info';
import { configSafe } from './schema/config-safe';

/** The implementations of nerve and synapse a sidecar can run. */
export enum AgentRuntimeKind {
  /** This package's Node agents (`smartstack nerve`, `smartstack synapse`). */
  NODE = 'node',
  /** Airbnb's Ruby gems, as the article runs them. */
  RUBY = 'ruby',
}

/** Options of the Node agents. */
export interface NodeAgentRuntimeOptions {
  /**
   * Install the agents with npm from this registry (where you publish this package) instead of
   * uploading them with the delivery. The hosts then need the registry and the `npm` package.
   * @default - the agents' package of the library that synthesizes the stack is uploaded by
   * Terraform with each host's delivery and installed without any network
   */
  readonly npmRegistry?: string;
  /**
   * Where a host not delivered over SSH (`deliverOverSsh: false`, booted from `userData`) fetches
   * the agents' package of the version that synthesizes the stack: an `http://` or `https://` URL,
   * or a `file:///` path your image places. The host checks it against the package's SHA-256, which
   * its document carries, before it unpacks anything; a host delivered over SSH has it uploaded
   * with its delivery instead. Publish the file `lib/agents-package-<version>.tgz` of this package.
   * @default - none: a sidecar on a host not delivered over SSH is refused at synth
   */
  readonly packageUrl?: string;
  /**
   * Version of this package to install from `npmRegistry`. Without a registry it can only be the
   * version that synthesizes the stack: that is the package uploaded.
   * @default the version of this package that synthesizes the stack
   */
  readonly version?: string;
  /**
   * Port on 127.0.0.1 where nerve serves Prometheus metrics.
   * @default 3213
   */
  readonly nerveMetricsPort?: number;
  /**
   * Port on 127.0.0.1 where synapse serves Prometheus metrics.
   * @default 3214
   */
  readonly synapseMetricsPort?: number;
}

/** Options of the Ruby agents. */
export interface RubyAgentRuntimeOptions {
  /** @default '0.9.7' */
  readonly nerveVersion?: string;
  /** @default '0.18.9' */
  readonly synapseVersion?: string;
}

/**
 * Which nerve and synapse run on a host. Both read the same rendered files; the Node agents add
 * Prometheus metrics and run-time server updates without reloads.
 */
export class AgentRuntime {
  /**
   * This package's Node agents: by default the very package that synthesizes the stack, uploaded
   * with each host's delivery; or a version from an npm registry of yours.
   */
  public static node(options: NodeAgentRuntimeOptions = {}): AgentRuntime {
    const fail = (field: string, value: unknown, reason: string) => new ValidationError(undefined, 'AgentRuntime.node', field, value, reason);
    const version = options.version ?? PACKAGE.version;
    if (options.npmRegistry !== undefined) configSafe(fail, 'npmRegistry', options.npmRegistry, 'registryUrl');
    else if (version !== PACKAGE.version) {
      throw fail('version', version, `the uploaded agents are this package's own version ${PACKAGE.version}; to install another version, publish it and set npmRegistry`);
    }
    if (options.packageUrl !== undefined) {
      configSafe(fail, 'packageUrl', options.packageUrl, 'fileUrl');
      if (options.npmRegistry !== undefined) throw fail('packageUrl', options.packageUrl, 'the agents come either from npmRegistry or from packageUrl: set one');
    }
    configSafe(fail, 'version', version, 'packageVersion');
    return new AgentRuntime(AgentRuntimeKind.NODE, version, version, options.nerveMetricsPort ?? 3213, options.synapseMetricsPort ?? 3214, options.npmRegistry, options.packageUrl);
  }

  /** Airbnb's Ruby gems, installed with gem at pinned versions. */
  public static ruby(options: RubyAgentRuntimeOptions = {}): AgentRuntime {
    return new AgentRuntime(AgentRuntimeKind.RUBY, options.nerveVersion ?? '0.9.7', options.synapseVersion ?? '0.18.9');
  }

  public readonly kind: AgentRuntimeKind;
  /** The pinned version of the nerve agent (for Node: of this package). */
  public readonly nerveVersion: string;
  /** The pinned version of the synapse agent (for Node: of this package). */
  public readonly synapseVersion: string;
  /** Metrics port of nerve, Node agents only. */
  public readonly nerveMetricsPort?: number;
  /** Metrics port of synapse, Node agents only. */
  public readonly synapseMetricsPort?: number;
  /** The npm registry the Node agents are installed from; undefined when they are uploaded. */
  public readonly npmRegistry?: string;
  /** Where a host not delivered over SSH fetches the Node agents' package. */
  public readonly packageUrl?: string;

  private constructor(kind: AgentRuntimeKind, nerveVersion: string, synapseVersion: string, nerveMetricsPort?: number, synapseMetricsPort?: number, npmRegistry?: string, packageUrl?: string) {
    this.kind = kind;
    this.npmRegistry = npmRegistry;
    this.packageUrl = packageUrl;
    this.nerveVersion = nerveVersion;
    this.synapseVersion = synapseVersion;
    this.nerveMetricsPort = nerveMetricsPort;
    this.synapseMetricsPort = synapseMetricsPort;
  }
}
