import { Balance, HealthCheck, HealthCheckType, ServiceMode, SmartStackService, SmartStackServiceProps } from '../lib';
import { meshFixture, thrownMessage } from './support/sidecar-fixtures';

function service(props: Partial<SmartStackServiceProps> = {}, id = 'user-service') {
  const f = meshFixture();
  const s = new SmartStackService(f.stack, id, { ensemble: f.zk, port: 8080, localPort: 3210, ...props });
  return { ...f, service: s };
}

describe('SmartStackService', () => {
  test('has production defaults that hide a dying instance', () => {
    const { service: s } = service();
    expect(s.serviceName).toBe('user-service');
    expect(s.discoveryPath).toBe('/services/user-service');
    expect(s.mode).toBe(ServiceMode.HTTP);
    expect(s.healthCheck.type).toBe(HealthCheckType.TCP);
    expect(s.balance).toBe(Balance.ROUND_ROBIN);
    expect(s.retries).toBe(3);
    expect(s.redispatch).toBe(true);
    expect(s.retryOn).toEqual(['conn-failure', 'empty-response', 'response-timeout']);
    expect(s.retryNonIdempotent).toBe(false);
    expect(s.connectTimeoutMs).toBe(1000);
    expect(s.serverSlots).toBe(16);
    expect(s.weight).toBeUndefined();
    expect(s.defaultServers).toEqual([]);
  });

  test('HealthCheck factories fill in the article timing', () => {
    const http = HealthCheck.http({ path: '/health' });
    expect(http).toMatchObject({ type: HealthCheckType.HTTP, path: '/health', intervalSeconds: 2, timeoutSeconds: 1, rise: 3, fall: 2 });
    expect(HealthCheck.tcp({ intervalSeconds: 0.5, timeoutSeconds: 0.25 })).toMatchObject({ type: HealthCheckType.TCP, intervalSeconds: 0.5, timeoutSeconds: 0.25 });
  });

  test('a TCP service retries only failed connections', () => {
    expect(service({ mode: ServiceMode.TCP }).service.retryOn).toEqual([]);
    expect(service({ mode: ServiceMode.TCP, retryOn: ['conn-failure'] }).service.retryOn).toEqual([]);
    expect(service({ retryOn: ['none'] }).service.retryOn).toEqual([]);
  });

  test('default servers get names', () => {
    const { service: s } = service({ defaultServers: [{ host: '127.0.0.1', port: 8080 }, { name: 'legacy', host: 'users.legacy.internal', port: 80 }] });
    expect(s.defaultServers).toEqual([
      { name: 'default-1', host: '127.0.0.1', port: 8080 },
      { name: 'legacy', host: 'users.legacy.internal', port: 80 },
    ]);
  });

  // Each bad input: [description, props, field, value as shown].
  const bad: Array<[string, Partial<SmartStackServiceProps>, string, string]> = [
    ['a name with a space', { serviceName: 'user service' }, 'serviceName', '"user service"'],
    ['a name with a newline', { serviceName: 'users\nlisten evil' }, 'serviceName', '"users\\nlisten evil"'],
    ['a name with a semicolon', { serviceName: 'users;x' }, 'serviceName', '"users;x"'],
    ['an upper-case name', { serviceName: 'Users' }, 'serviceName', '"Users"'],
    ['the stats section name', { serviceName: 'haproxy-stats' }, 'serviceName', '"haproxy-stats"'],
    ['port 0', { port: 0 }, 'port', '0'],
    ['port 70000', { port: 70000 }, 'port', '70000'],
    ['a fractional local port', { localPort: 3210.5 }, 'localPort', '3210.5'],
    ['a relative discovery path', { discoveryPath: 'services/users' }, 'discoveryPath', '"services/users"'],
    ['a discovery path with ..', { discoveryPath: '/services/../users' }, 'discoveryPath', '"/services/../users"'],
    ['a discovery path with a trailing /', { discoveryPath: '/services/users/' }, 'discoveryPath', '"/services/users/"'],
    ['a check path without /', { healthCheck: HealthCheck.http({ path: 'health' }) }, 'healthCheck.path', '"health"'],
    ['a check path with ;', { healthCheck: HealthCheck.http({ path: '/health;reload' }) }, 'healthCheck.path', '"/health;reload"'],
    ['a check path with a newline', { healthCheck: HealthCheck.http({ path: '/health\nbind :80' }) }, 'healthCheck.path', '"/health\\nbind :80"'],
    ['a check path with a space', { healthCheck: HealthCheck.http({ path: '/health check' }) }, 'healthCheck.path', '"/health check"'],
    ['a check path with #', { healthCheck: HealthCheck.http({ path: '/health#x' }) }, 'healthCheck.path', '"/health#x"'],
    ['an expected status nerve never passes', { healthCheck: HealthCheck.http({ path: '/h', expectStatus: 503 }) }, 'healthCheck.expectStatus', '503'],
    ['an expected body with a space', { healthCheck: HealthCheck.http({ path: '/h', expectBody: 'all good' }) }, 'healthCheck.expectBody', '"all good"'],
    ['an expected body with ;', { healthCheck: HealthCheck.http({ path: '/h', expectBody: 'ok;x' }) }, 'healthCheck.expectBody', '"ok;x"'],
    ['a zero interval', { healthCheck: HealthCheck.tcp({ intervalSeconds: 0 }) }, 'healthCheck.intervalSeconds', '0'],
    ['a timeout longer than the interval', { healthCheck: HealthCheck.tcp({ intervalSeconds: 1, timeoutSeconds: 2 }) }, 'healthCheck.timeoutSeconds', '2'],
    ['rise 0', { healthCheck: HealthCheck.tcp({ rise: 0 }) }, 'healthCheck.rise', '0'],
    ['a fractional fall', { healthCheck: HealthCheck.tcp({ fall: 1.5 }) }, 'healthCheck.fall', '1.5'],
    ['an unknown retry-on keyword', { retryOn: ['conn-failure', 'always'] }, 'retryOn[1]', '"always"'],
    ['none with other retry-on keywords', { retryOn: ['none', 'conn-failure'] }, 'retryOn', '["none","conn-failure"]'],
    ['HTTP retry-on on a TCP service', { mode: ServiceMode.TCP, retryOn: ['response-timeout'] }, 'retryOn', '["response-timeout"]'],
    ['an unknown mode', { mode: 'udp' as ServiceMode }, 'mode', '"udp"'],
    ['an unknown balance', { balance: 'fastest' as Balance }, 'balance', '"fastest"'],
    ['negative retries', { retries: -1 }, 'retries', '-1'],
    ['a zero connect timeout', { connectTimeoutMs: 0 }, 'connectTimeoutMs', '0'],
    ['no server slots', { serverSlots: 0 }, 'serverSlots', '0'],
    ['weight 300', { weight: 300 }, 'weight', '300'],
    ['a label key with a space', { labels: { 'az name': 'oslo-1' } }, 'labels', '"az name"'],
    ['a label value with ;', { labels: { az: 'oslo;1' } }, 'labels.az', '"oslo;1"'],
    ['a label value with a newline', { labels: { az: 'oslo\n1' } }, 'labels.az', '"oslo\\n1"'],
    ['a default server host with ;', { defaultServers: [{ host: '10.0.0.1;shutdown', port: 80 }] }, 'defaultServers[0].host', '"10.0.0.1;shutdown"'],
    ['a default server host with a newline', { defaultServers: [{ host: '10.0.0.1\nserver x', port: 80 }] }, 'defaultServers[0].host', '"10.0.0.1\\nserver x"'],
    ['a default server name with a space', { defaultServers: [{ name: 'old box', host: '10.0.0.1', port: 80 }] }, 'defaultServers[0].name', '"old box"'],
    ['a default server on port 0', { defaultServers: [{ host: '10.0.0.1', port: 0 }] }, 'defaultServers[0].port', '0'],
    [
      'two default servers with one name',
      { defaultServers: [{ name: 'a', host: '10.0.0.1', port: 80 }, { name: 'a', host: '10.0.0.2', port: 80 }] },
      'defaultServers[1].name',
      '"a"',
    ],
    ['keeping default servers there are none of', { keepDefaultServers: true }, 'keepDefaultServers', 'true'],
  ];

  test.each(bad)('rejects %s, naming the construct, the field and the value', (_, props, field, shown) => {
    const message = thrownMessage(() => service(props));
    expect(message).toContain("SmartStackService 'test/user-service'");
    expect(message).toContain(`${field} = ${shown}:`);
  });

  test('rejects a provider host listed twice', () => {
    const f = meshFixture();
    const app1 = f.host('app1', 55);
    const message = thrownMessage(() => new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, providers: [app1, app1] }));
    expect(message).toContain("SmartStackService 'test/users': providers[1] = \"app1\": the same host as providers[0]");
  });

  test('rejects a second service with the same name, discovery path or local port in the stack', () => {
    const f = meshFixture();
    new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, localPort: 3210 });
    expect(thrownMessage(() => new SmartStackService(f.stack, 'users2', { ensemble: f.zk, serviceName: 'users', port: 8080 }))).toContain(
      "SmartStackService 'test/users2': serviceName = \"users\": already the name of test/users",
    );
    expect(thrownMessage(() => new SmartStackService(f.stack, 'orders', { ensemble: f.zk, port: 8081, discoveryPath: '/services/users' }))).toContain(
      "SmartStackService 'test/orders': discoveryPath = \"/services/users\": already the discovery path of test/users",
    );
    expect(thrownMessage(() => new SmartStackService(f.stack, 'carts', { ensemble: f.zk, port: 8082, localPort: 3210 }))).toContain(
      "SmartStackService 'test/carts': localPort = 3210: already the local port of test/users (users)",
    );
  });
});
