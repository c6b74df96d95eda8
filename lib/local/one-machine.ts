/**
 * What running a synthesized mesh on one machine changes in each host's files: ZooKeeper's live
 * configuration, HAProxy without users to switch to, no fixed metrics ports, and the credentials
 * systemd would hand each agent.
 */
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { HAPROXY_BOOTSTRAP, NERVE_CONFIG, SYNAPSE_CONFIG, unitPath, ZOO_CFG, ZOO_CFG_DYNAMIC, ZOOKEEPER_LIVE_CONFIG_SUBDIR } from '../cloud-init/host-paths';
import { NerveConfig } from '../schema/nerve-config';
import { LoopbackHost } from './loopback-host';

/**
 * As the apply of a new ensemble's member does: ZooKeeper runs from a zoo.cfg under dataDir that it
 * may rewrite (reconfigEnabled): the synthesized settings, and the synthesized membership as its
 * dynamic configuration. Returns the file's path.
 */
export function writeLiveZooCfg(host: LoopbackHost): string {
  const zooCfg = host.files.get(ZOO_CFG) ?? '';
  const dataDir = /^dataDir=(.+)$/m.exec(zooCfg)?.[1];
  if (!dataDir) throw new Error(`host ${host.hostname}: its zoo.cfg has no dataDir`);
  const liveDir = join(dataDir, ZOOKEEPER_LIVE_CONFIG_SUBDIR);
  mkdirSync(liveDir, { recursive: true });
  const dynamic = join(liveDir, 'zoo.cfg.dynamic.initial');
  writeFileSync(dynamic, host.files.get(ZOO_CFG_DYNAMIC) ?? '');
  const liveConfig = join(liveDir, 'zoo.cfg');
  writeFileSync(liveConfig, `${zooCfg.replace(/^dynamicConfigFile=.*\n/m, '')}dynamicConfigFile=${dynamic}\n`);
  return liveConfig;
}

export function clientPort(host: LoopbackHost): number {
  return Number(/^clientPort=(\d+)$/m.exec(host.files.get(ZOO_CFG) ?? '')?.[1] ?? 2181);
}

export function providedServices(host: LoopbackHost): Array<[string, number]> {
  const nerve = host.files.get(NERVE_CONFIG);
  if (!nerve) return [];
  const config = JSON.parse(nerve) as NerveConfig;
  return Object.entries(config.services).map(([name, s]) => [name, Number(s.port)]);
}

/**
 * Everything runs as the invoking user on one machine: HAProxy keeps no `user`/`group` to switch to
 * and its sockets no owner, and the agents' metrics ports (one fixed port on 127.0.0.1 per host on
 * real hosts) are left off so that hosts do not collide.
 */
export function adaptForOneMachine(host: LoopbackHost): void {
  const dropPrivileges = (line: string) => !/^\s*(user|group)\s+\S+\s*$/.test(line);
  const unowned = (line: string) => (/^\s*stats socket /.test(line) ? line.replace(/\s+(user|group)\s+\S+/g, '') : line);
  const write = (path: string, content: string) => {
    writeFileSync(host.hostPath(path), content);
    host.files.set(path, content);
  };
  const nerve = host.files.get(NERVE_CONFIG);
  if (nerve) {
    const config = JSON.parse(nerve) as { metrics_port?: number };
    delete config.metrics_port;
    write(NERVE_CONFIG, JSON.stringify(config, null, 2) + '\n');
  }
  const synapse = host.files.get(SYNAPSE_CONFIG);
  if (synapse) {
    const config = JSON.parse(synapse) as { metrics_port?: number; haproxy: { global?: string[] } };
    delete config.metrics_port;
    config.haproxy.global = (config.haproxy.global ?? []).filter(dropPrivileges).map(unowned);
    write(SYNAPSE_CONFIG, JSON.stringify(config, null, 2) + '\n');
  }
  const bootstrap = host.files.get(HAPROXY_BOOTSTRAP);
  if (bootstrap) write(HAPROXY_BOOTSTRAP, bootstrap.split('\n').filter(dropPrivileges).map(unowned).join('\n'));
}

/** What systemd's `LoadCredential=ID:PATH` does: a copy in /run/credentials/<unit>/ that only the agent reads. */
export function loadCredentials(host: LoopbackHost, unit: string): void {
  const unitFile = host.files.get(unitPath(unit)) ?? '';
  for (const [, id, path] of unitFile.matchAll(/^LoadCredential=([^:\n]+):(\S+)$/gm)) {
    const directory = host.hostPath(`/run/credentials/${unit}`);
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    // The unit's text is already mapped: the path is under the host's root.
    copyFileSync(path, join(directory, id));
    chmodSync(join(directory, id), 0o400);
  }
}
