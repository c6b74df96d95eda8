/** Pure renderers for one ZooKeeper member's files. */

/** Everything that goes into one member's `zoo.cfg`, already validated. */
export interface ZooCfgSpec {
  readonly tickTimeMs: number;
  readonly initLimitTicks: number;
  readonly syncLimitTicks: number;
  readonly dataDir: string;
  readonly dataLogDir: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly maxClientCnxns: number;
  readonly minSessionTimeoutMs: number;
  readonly maxSessionTimeoutMs: number;
  readonly preAllocSizeKiB: number;
  readonly snapCount: number;
  readonly autopurgeIntervalHours: number;
  readonly autopurgeSnapRetainCount: number;
  readonly fourLetterWords: string[];
  /** AdminServer port on 127.0.0.1, or undefined for off. */
  readonly adminServerPort?: number;
  /**
   * Let any client change the membership (`skipACL=yes`): only for an ensemble without ACLs, where
   * there is no superuser to do it.
   */
  readonly skipAcl?: boolean;
}

export interface ZooCfgServer {
  readonly myid: number;
  readonly address: string;
  readonly quorumPort: number;
  readonly electionPort: number;
  readonly clientPort: number;
}

/**
 * The static settings of a member. The membership is not in it: with `reconfigEnabled` it is
 * ZooKeeper's own dynamic configuration, which the ensemble changes with `reconfig`.
 */
export function renderZooCfg(spec: ZooCfgSpec): string {
  const lines = [
    '# Managed by cdktf-smartstack: changes here are overwritten on the next apply.',
    `tickTime=${spec.tickTimeMs}`,
    `initLimit=${spec.initLimitTicks}`,
    `syncLimit=${spec.syncLimitTicks}`,
    '# Snapshots and the transaction log live on separate disks: log fsyncs never queue behind snapshot writes.',
    `dataDir=${spec.dataDir}`,
    `dataLogDir=${spec.dataLogDir}`,
    `clientPortAddress=${spec.clientAddress}`,
    `clientPort=${spec.clientPort}`,
    `maxClientCnxns=${spec.maxClientCnxns}`,
    `minSessionTimeout=${spec.minSessionTimeoutMs}`,
    `maxSessionTimeout=${spec.maxSessionTimeoutMs}`,
    `preAllocSize=${spec.preAllocSizeKiB}`,
    `snapCount=${spec.snapCount}`,
    `autopurge.purgeInterval=${spec.autopurgeIntervalHours}`,
    `autopurge.snapRetainCount=${spec.autopurgeSnapRetainCount}`,
    `4lw.commands.whitelist=${spec.fourLetterWords.join(',')}`,
  ];
  if (spec.adminServerPort === undefined) {
    lines.push('admin.enableServer=false');
  } else {
    lines.push('admin.enableServer=true', 'admin.serverAddress=127.0.0.1', `admin.serverPort=${spec.adminServerPort}`);
  }
  // Each member listens for quorum and election traffic only on its own private address.
  lines.push('quorumListenOnAllIPs=false');
  // Membership changes go through `reconfig`, which only the superuser may run (ZooKeeper 3.8's
  // documented way to add and remove members without a rolling restart).
  lines.push('reconfigEnabled=true');
  if (spec.skipAcl) lines.push('skipACL=yes');
  return lines.join('\n') + '\n';
}

/** One member's line of the dynamic configuration, as ZooKeeper itself writes it. */
export function renderServerLine(s: ZooCfgServer): string {
  return `server.${s.myid}=${s.address}:${s.quorumPort}:${s.electionPort}:participant;${s.address}:${s.clientPort}`;
}

/** The dynamic configuration (membership) of a whole ensemble, in myid order. */
export function renderDynamicConfig(servers: ZooCfgServer[]): string {
  return [...servers].sort((a, b) => a.myid - b.myid).map(renderServerLine).join('\n') + '\n';
}

/** The `myid` file in dataDir. */
export function renderMyid(myid: number): string {
  return `${myid}\n`;
}

/** JVM heap for ZooKeeper from the host's memory: 3/4 of it, leaving at least 1 GiB to the OS. */
export function defaultHeapMiB(memoryMiB: number): number {
  const heap = Math.min(Math.floor(memoryMiB * 0.75), memoryMiB - 1024, 31744);
  return Math.max(256, Math.floor(heap / 64) * 64);
}

/** The JVM flags, as an environment file the systemd unit reads. */
export function renderJavaEnv(heapMiB: number, heapDumpDir: string, extraFlags: string[]): string {
  const flags = [
    `-Xms${heapMiB}m`,
    `-Xmx${heapMiB}m`,
    // Touch the whole heap at start so it is resident up front, not faulted in during a GC pause.
    '-XX:+AlwaysPreTouch',
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=50',
    '-XX:+HeapDumpOnOutOfMemoryError',
    `-XX:HeapDumpPath=${heapDumpDir}`,
    '-XX:+ExitOnOutOfMemoryError',
    ...extraFlags,
  ];
  return `# Managed by cdktf-smartstack.\nJVM_FLAGS="${flags.join(' ')}"\n`;
}
