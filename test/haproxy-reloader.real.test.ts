import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { HaproxyReloader, ReloadError } from '../lib/agent/haproxy-reloader';
import { isInService } from '../lib/agent/haproxy-runtime';
import { Logger } from '../lib/agent/log';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { parseSynapseConfig } from '../lib/agent/synapse-config-loader';
import { freePort, startHaproxy } from './support/haproxy-process';

const quiet = new Logger({}, 'error', () => undefined);

function synapseFile(port: number, configPath: string, extra: object = {}): object {
  return {
    services: { users: { discovery: { method: 'zookeeper', path: '/u', hosts: ['127.0.0.1:2181'] }, haproxy: { port, server_options: 'check', server_slots: 2 } } },
    haproxy: { config_file_path: configPath, do_socket: false, ...extra },
  };
}

describe('HaproxyReloader', () => {
  test('a config haproxy -c rejects never replaces the running one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reloader-'));
    try {
      const path = join(dir, 'haproxy.cfg');
      writeFileSync(path, 'the running config\n');
      // use_backend names a backend that does not exist: every string is safe, the config is not.
      const config = parseSynapseConfig(synapseFile(await freePort(), path, { extra_sections: { 'frontend extra': ['bind 127.0.0.1:1', 'use_backend nowhere'] } }));
      const reloader = new HaproxyReloader(config, undefined, undefined, quiet);
      const error = await reloader.reload({ users: [{ host: '10.0.0.1', port: 80 }] }, {}).catch((e: Error) => e);
      expect(error).toBeInstanceOf(ReloadError);
      expect((error as ReloadError).stage).toBe('check');
      expect((error as Error).message).toContain('nowhere');
      expect(readFileSync(path, 'utf8')).toBe('the running config\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('writes, dumps the server state and reloads a master-worker haproxy through its master CLI', async () => {
    const port = await freePort();
    let file: object = {};
    const haproxy = await startHaproxy((p) => {
      file = synapseFile(port, p.configPath, { do_socket: true, socket_file_path: p.adminSocket, master_socket_file_path: p.masterSocket, state_file_path: p.stateFile });
      return renderHaproxyConfig(parseSynapseConfig(file).config, {});
    });
    try {
      const config = parseSynapseConfig(file);
      const reloader = new HaproxyReloader(config, haproxy.runtime, haproxy.master, quiet);
      await reloader.reload({ users: [{ slot: 1, host: '10.0.0.1', port: 80 }, { slot: 3, host: '10.0.0.3', port: 80 }] }, { users: 4 });
      expect((await haproxy.processes()).reloads).toBe(1);
      expect(readFileSync(haproxy.stateFile, 'utf8')).toMatch(/^1\n# be_id/);
      const servers = await haproxy.runtime.serversState('users');
      expect(servers.map((s) => `${s.server} ${s.address}`)).toEqual(['slot1 10.0.0.1', 'slot2 127.0.0.1', 'slot3 10.0.0.3', 'slot4 127.0.0.1']);
    } finally {
      await haproxy.stop();
    }
  });

  test('a slot the new file leaves empty does not come back in service from the server-state file', async () => {
    const port = await freePort();
    let file: object = {};
    const haproxy = await startHaproxy((p) => {
      file = synapseFile(port, p.configPath, { do_socket: true, socket_file_path: p.adminSocket, master_socket_file_path: p.masterSocket, state_file_path: p.stateFile });
      return renderHaproxyConfig(parseSynapseConfig(file).config, {});
    });
    try {
      // slot2 is in service at run time; the new file places only slot1.
      await haproxy.runtime.setServerAddress('users', 'slot2', '10.0.0.2', 8080);
      await haproxy.runtime.setServerState('users', 'slot2', 'ready');
      const reloader = new HaproxyReloader(parseSynapseConfig(file), haproxy.runtime, haproxy.master, quiet);
      await reloader.reload({ users: [{ slot: 1, host: '10.0.0.1', port: 80 }] }, { users: 2 });
      const servers = await haproxy.runtime.serversState('users');
      expect(servers.map((s) => [s.server, `${s.address}:${s.port}`, isInService(s)])).toEqual([
        ['slot1', '10.0.0.1:80', true],
        ['slot2', '127.0.0.1:1', false],
      ]);
    } finally {
      await haproxy.stop();
    }
  });
});
