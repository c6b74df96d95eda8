/**
 * The mesh manifest: what a synthesized stack is, as data, written beside its Terraform as
 * `cdktf.out/stacks/<stack>/smartstack.json`. `smartstack local`, `rehearse`, `graph` and the fleet
 * read it, and read a host's documents only where it points. Its JSON schema is
 * `lib/model/manifest.schema.json`; a change of meaning is a new `manifestVersion`.
 */

export const MANIFEST_FILE = 'smartstack.json';
export const MANIFEST_VERSION = 1;

export interface Manifest {
  readonly manifestVersion: number;
  /** The package that synthesized the stack, and its version. */
  readonly generator: { readonly name: string; readonly version: string };
  readonly stack: string;
  /** Hosts sorted by name. */
  readonly hosts: ManifestHost[];
  readonly ensembles: ManifestEnsemble[];
  /** Services sorted by name. */
  readonly services: ManifestService[];
}

/** A host role: a ZooKeeper member, a nerve that registers, a synapse with its HAProxy. */
export type ManifestRole = 'zookeeper-member' | 'nerve' | 'synapse';

export interface ManifestHost {
  readonly name: string;
  /** The VdsNode's construct path. */
  readonly construct: string;
  readonly privateAddress: string;
  /** The private network (CIDR) the address is in. */
  readonly privateNetwork: string;
  readonly memoryMiB: number;
  readonly operatingSystem: string;
  readonly roles: ManifestRole[];
  readonly disks: Array<{ readonly name: string; readonly device: string }>;
  /** How the document reaches the host over SSH; absent when another resource boots it with `userData`. */
  readonly delivery?: ManifestDelivery;
  /** Further scripts Terraform runs on the host (the ACL bootstrap, the membership change). */
  readonly scripts: ManifestScript[];
  /** What the host's agents read and listen on, when it has a sidecar. */
  readonly sidecar?: ManifestSidecar;
  /** What the host's ZooKeeper member reads, when it is one. */
  readonly zookeeper?: ManifestMember;
}

/** How a host's ZooKeeper member runs. */
export interface ManifestMember {
  /** The ensemble's construct path. */
  readonly ensemble: string;
  readonly id: number;
  /** The zoo.cfg the document writes. */
  readonly config: string;
  readonly unit: string;
  /** The JVM's class path, in order. */
  readonly classpath: string[];
  /** JVM argument files (`@file`) the unit passes, before the class path. */
  readonly jvmArgFiles: string[];
}

/** A file a Terraform resource places on a host: its content is that file provisioner's. */
export interface ManifestFile {
  /** The resource's address in the stack's Terraform, `null_resource.<name>`. */
  readonly resource: string;
  /** The destination of the resource's file provisioner that carries it. */
  readonly destination: string;
}

export interface ManifestDelivery {
  readonly sshAddress: string;
  readonly sshUser: string;
  readonly sshPort: number;
  /** The `#cloud-config` document. */
  readonly userData: ManifestFile;
  /** The script that applies it. */
  readonly applyScript: ManifestFile;
}

export interface ManifestScript extends ManifestFile {
  readonly name: string;
}

export interface ManifestSidecar {
  readonly runtime: 'node' | 'ruby';
  readonly nerveConfig?: string;
  readonly synapseConfig?: string;
  readonly haproxyBootstrapConfig?: string;
  /** The haproxy.cfg synapse writes and HAProxy runs. */
  readonly haproxyConfig?: string;
  readonly haproxyAdminSocket?: string;
  readonly haproxyMasterSocket?: string;
  readonly units: string[];
  /** Ports on 127.0.0.1: HAProxy's stats, the agents' metrics. */
  readonly statsPort?: number;
  readonly nerveMetricsPort?: number;
  readonly synapseMetricsPort?: number;
  /** The names of the ZooKeeper credentials files the agents load (never their contents). */
  readonly credentials: string[];
}

export interface ManifestEnsemble {
  /** The construct path. */
  readonly construct: string;
  readonly members: Array<{ readonly host: string; readonly id: number; readonly address: string }>;
  readonly clientPort: number;
  readonly quorumPort: number;
  readonly electionPort: number;
  /** Networks besides the members and sidecar hosts that reach the client port. */
  readonly clientNetworks: string[];
  readonly dataDir: string;
  readonly dataLogDir: string;
  readonly acls: boolean;
}

export interface ManifestService {
  readonly name: string;
  readonly construct: string;
  /** The ensemble's construct path. */
  readonly ensemble: string;
  readonly discoveryPath: string;
  readonly port: number;
  readonly localPort?: number;
  readonly mode: string;
  readonly check: ManifestCheck;
  /** Networks besides the consumers that reach the providers' port. */
  readonly clientNetworks: string[];
  /** In the order they roll out. */
  readonly providers: Array<{ readonly host: string; readonly port: number; readonly weight?: number }>;
  readonly consumers: string[];
  readonly rollout: { readonly maxUnavailableProviders: number };
}

export interface ManifestCheck {
  readonly type: 'http' | 'tcp';
  readonly path?: string;
  readonly expectStatus?: number;
  readonly expectBody?: string;
  readonly intervalSeconds: number;
  readonly timeoutSeconds: number;
  readonly rise: number;
  readonly fall: number;
}

/** Checks what a reader relies on: the version it knows, and the fields it walks. */
export function parseManifest(text: string, source: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not JSON: ${(e as Error).message}`);
  }
  const m = value as Partial<Manifest> | null;
  if (m === null || typeof m !== 'object') throw new Error(`${source}: expected a smartstack manifest object`);
  if (m.manifestVersion !== MANIFEST_VERSION) {
    throw new Error(`${source}: manifestVersion = ${JSON.stringify(m.manifestVersion)}: this version of cdktf-smartstack reads version ${MANIFEST_VERSION}; synthesize the stack again with it`);
  }
  for (const key of ['hosts', 'ensembles', 'services'] as const) {
    if (!Array.isArray(m[key])) throw new Error(`${source}: ${key} = ${JSON.stringify(m[key])}: expected a list`);
  }
  return m as Manifest;
}
