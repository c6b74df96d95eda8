/**
 * Where the roles put their files on a host: the constructs write there, and `smartstack local`
 * finds them there in the synthesized documents.
 */

/** ZooKeeper member: zoo.cfg, java.env, log4j and the JVM argument file. */
export const ZOOKEEPER_CONFIG_DIR = '/etc/zookeeper/smartstack';
export const ZOO_CFG = `${ZOOKEEPER_CONFIG_DIR}/zoo.cfg`;
/** The synthesized membership, with which the members of a new ensemble start. */
export const ZOO_CFG_DYNAMIC = `${ZOOKEEPER_CONFIG_DIR}/zoo.cfg.dynamic`;
/**
 * Under dataDir: the zoo.cfg ZooKeeper runs from and rewrites, with its dynamic configuration files
 * (it writes them next to the file it was started with).
 */
export const ZOOKEEPER_LIVE_CONFIG_SUBDIR = 'conf';
/** The member's id; the apply copies it into dataDir once the data disk is mounted. */
export const ZOOKEEPER_MYID = `${ZOOKEEPER_CONFIG_DIR}/myid`;
export const ZOOKEEPER_UNIT = 'zookeeper.service';
/** The member's JVM class path: its config folder (log4j) and Debian's ZooKeeper jars. */
export const ZOOKEEPER_CLASSPATH = [ZOOKEEPER_CONFIG_DIR, '/usr/share/java/zookeeper.jar', '/usr/share/java/slf4j-log4j12.jar', '/usr/share/java/log4j-1.2.jar'];
/** The JVM argument file with the digest authentication flags, when the ensemble has ACLs. */
export const ZOOKEEPER_JVM_AUTH_ARGS = `${ZOOKEEPER_CONFIG_DIR}/jvm-auth.args`;

/** Sidecar: the agents' configs, HAProxy's bootstrap config and the ZooKeeper credentials. */
export const SIDECAR_CONFIG_DIR = '/etc/smartstack';
export const NERVE_CONFIG = `${SIDECAR_CONFIG_DIR}/nerve.conf.json`;
export const SYNAPSE_CONFIG = `${SIDECAR_CONFIG_DIR}/synapse.conf.json`;
export const HAPROXY_BOOTSTRAP = `${SIDECAR_CONFIG_DIR}/haproxy-bootstrap.cfg`;
export const CREDENTIALS_DIR = `${SIDECAR_CONFIG_DIR}/credentials`;
export const NERVE_UNIT = 'smartstack-nerve.service';
export const SYNAPSE_UNIT = 'smartstack-synapse.service';
export const HAPROXY_UNIT = 'smartstack-haproxy.service';

/** The script of a document's steps (disks, commands, units), which cloud-init's runcmd runs. */
export const HOST_STEPS = '/usr/lib/smartstack/host-steps.sh';

/** The agents' package: archives by checksum as uploaded, unpacked folders, and the command's link. */
export const AGENTS_ARCHIVE_DIR = '/var/lib/smartstack/agents';
export const AGENTS_DIR = '/usr/lib/smartstack/agents';
export const AGENTS_COMMAND = '/usr/local/bin/smartstack';

/** The file a unit is written to. */
export function unitPath(unit: string): string {
  return `/etc/systemd/system/${unit}`;
}
