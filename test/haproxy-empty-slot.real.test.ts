/**
 * Empty server slots against the real HAProxy 2.6: a slot written as `0.0.0.0:0` is a port-offset
 * server (HAProxy connects to the frontend's port plus the server's port). Once a reload restored a
 * port onto it from the server-state file, `set server … addr A port P` answers "no need to change the
 * port" and traffic went to frontend port + P. No slot we render may be such a server.
 */
import { writeFileSync } from 'fs';
import { createServer, Server } from 'http';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { SynapseConfig } from '../lib/schema/synapse-config';
import { eventually } from './support/eventually';
import { HaproxyProcess, startHaproxy } from './support/haproxy-process';

/** The numbers: local port 3210, provider port 8080, offset target 3210 + 8080. */
const FRONTEND = { host: '127.0.12.1', port: 3210 };
const PROVIDER = { host: '127.0.12.2', port: 8080 };
const OFFSET_PORT = FRONTEND.port + PROVIDER.port;

function config(paths: { configPath: string; adminSocket: string; stateFile: string }, slots = 2): SynapseConfig {
  return {
    services: {
      users: {
        discovery: { method: 'zookeeper', path: '/services/users', hosts: ['127.0.0.1:2181'] },
        haproxy: {
          port: FRONTEND.port,
          bind_address: FRONTEND.host,
          server_options: 'check inter 200ms rise 1 fall 1',
          listen: ['mode http', 'option httpchk GET /health'],
          server_slots: slots,
        },
      },
    },
    haproxy: { config_file_path: paths.configPath, socket_file_path: paths.adminSocket, state_file_path: paths.stateFile },
  };
}

/** An HTTP server that answers with its name and counts what it served. */
async function listener(host: string, port: number, name: string): Promise<{ server: Server; served: () => number }> {
  let served = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/health') served += 1;
    res.writeHead(200).end(`${name}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, served: () => served };
}

async function get(): Promise<string> {
  const res = await fetch(`http://${FRONTEND.host}:${FRONTEND.port}/`);
  return `${res.status} ${(await res.text()).trim()}`;
}

describe('empty server slots', () => {
  test('no server line we render is a port-offset server', () => {
    const paths = { configPath: '/x/haproxy.cfg', adminSocket: '/x/admin.sock', stateFile: '/x/state' };
    const base = config(paths, 3);
    const withDefaults: SynapseConfig = {
      ...base,
      services: { users: { ...base.services.users, default_servers: [{ name: 'fallback', host: '10.0.0.9', port: '8080' }] } },
    };
    const texts = [
      renderHaproxyConfig(base, {}),
      renderHaproxyConfig(withDefaults, {}),
      renderHaproxyConfig(base, { users: [{ slot: 2, host: '10.0.0.1', port: 80 }] }),
    ];
    for (const text of texts) {
      const servers = text.split('\n').filter((l) => /^\s*server\s/.test(l));
      expect(servers.length).toBeGreaterThanOrEqual(3);
      for (const line of servers) expect(line).toMatch(/^\s*server slot[0-9]+ [^\s:]+:[1-9][0-9]*( |$)/);
    }
  });

  describe('with a real HAProxy', () => {
    let haproxy: HaproxyProcess;
    let provider: Awaited<ReturnType<typeof listener>>;
    let offset: Awaited<ReturnType<typeof listener>>;

    beforeAll(async () => {
      provider = await listener(PROVIDER.host, PROVIDER.port, 'provider');
      // Where a port-offset slot sends traffic.
      offset = await listener(PROVIDER.host, OFFSET_PORT, 'offset');
      haproxy = await startHaproxy((paths) => renderHaproxyConfig(config(paths), {}));
    });

    afterAll(async () => {
      await haproxy?.stop();
      provider?.server.close();
      offset?.server.close();
    });

    test('a slot filled again after a reload that restored its port sends traffic to the provider port', async () => {
      const rt = haproxy.runtime;
      // synapse fills slot1 at run time; the file on disk still has the slot empty.
      await rt.setServerAddress('users', 'slot1', PROVIDER.host, PROVIDER.port);
      await rt.setServerState('users', 'slot1', 'ready');
      await eventually('the provider to answer', async () => ((await get()) === '200 provider' ? true : undefined), 10000);

      // A reload, as the unit's ExecReload does it: dump the state, then reload. The file's slot is empty.
      writeFileSync(haproxy.stateFile, await rt.serversStateFile());
      await haproxy.master.reload();
      await rt.setServerAddress('users', 'slot1', PROVIDER.host, PROVIDER.port);
      await rt.setServerState('users', 'slot1', 'ready');
      await eventually('slot1 up again', async () => ((await get()).startsWith('200') ? true : undefined), 10000);

      const answers: string[] = [];
      for (let i = 0; i < 20; i++) answers.push(await get());
      expect(offset.served()).toBe(0);
      expect(new Set(answers)).toEqual(new Set(['200 provider']));
      const [slot1] = await rt.serversState('users');
      expect([slot1.address, slot1.port]).toEqual([PROVIDER.host, PROVIDER.port]);
    });
  });
});
