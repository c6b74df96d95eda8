import { decodeChildName, decodeRegistration, encodeChildNamePrefix, encodeRegistration, MAX_REGISTRATION_BYTES } from '../lib/schema/registration-codec';

describe('encodeRegistration', () => {
  test('writes compact JSON in upstream key order, optional keys only when set', () => {
    expect(encodeRegistration({ labels: { az: 'a' }, weight: 2, name: 'app1', port: 8080, host: '10.0.0.1', haproxy_server_options: 'backup' }))
      .toBe('{"host":"10.0.0.1","port":8080,"name":"app1","weight":2,"haproxy_server_options":"backup","labels":{"az":"a"}}');
    expect(encodeRegistration({ host: '10.0.0.1', port: 8080, name: 'app1' })).toBe('{"host":"10.0.0.1","port":8080,"name":"app1"}');
  });
});

describe('decodeRegistration', () => {
  test("reads our payload and the Ruby nerve's, including a string port", () => {
    expect(decodeRegistration('{"host":"10.0.0.1","port":"8080","name":"app1","weight":3}')).toEqual({
      ok: true, registration: { host: '10.0.0.1', port: 8080, name: 'app1', weight: 3 },
    });
  });

  test.each([
    ['{"host":"10.0.0.1\\nserver x","port":80}', 'control character'],
    ['{"host":"10.0.0.1;x","port":80}', "contains ';'"],
    ['{"host":"10.0.0.1","port":0}', 'port 0'],
    ['{"host":"10.0.0.1","port":70000}', 'port 70000'],
    ['{"host":"10.0.0.1","port":"80 "}', 'port "80 "'],
    ['{"port":80}', 'host undefined'],
    ['{"host":"10.0.0.1"}', 'port undefined'],
    ['[1]', 'not a JSON object'],
    ['not json', 'not JSON'],
    ['{"host":"10.0.0.1","port":80,"haproxy_server_options":"check # x"}', "haproxy_server_options"],
    ['{"host":"10.0.0.1","port":80,"weight":1000}', 'weight 1000'],
    [`{"host":"10.0.0.1","port":80,"name":"${'x'.repeat(MAX_REGISTRATION_BYTES)}"}`, 'byte limit'],
  ])('refuses %j', (payload, reason) => {
    const decoded = decodeRegistration(payload);
    expect(decoded.ok).toBe(false);
    expect(decoded.ok ? '' : decoded.reason).toContain(reason);
  });

  test('whatever characters arrive, an accepted host and options carry no newline, ; or #', () => {
    // A fixed-seed generator over an alphabet rich in the characters that matter.
    const alphabet = 'a1.-:;#\n\r\t \u0000"\\/_=é9';
    let seed = 42;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
    const text = (): string => Array.from({ length: random(24) }, () => alphabet[random(alphabet.length)]).join('');
    for (let i = 0; i < 2000; i++) {
      const port = random(2) ? random(80000) : text();
      const decoded = decodeRegistration(JSON.stringify({ host: text(), port, haproxy_server_options: text() }));
      if (!decoded.ok) continue;
      expect(decoded.registration.host).not.toMatch(/[\n\r;#\s\u0000]/);
      expect(decoded.registration.haproxy_server_options ?? '').not.toMatch(/[\n\r;#\u0000]/);
      expect(decoded.registration.port).toBeGreaterThanOrEqual(1);
      expect(decoded.registration.port).toBeLessThanOrEqual(65535);
    }
  });
});

describe('path-encoded child names', () => {
  test('round-trip: base64_<len>_<urlsafe b64>_<seq>', () => {
    const r = { host: '10.0.0.1', port: 8080, name: 'app1', labels: { x: '?>?' } };
    const name = `${encodeChildNamePrefix(r)}0000000042`;
    expect(name).toMatch(/^base64_[0-9]+_[A-Za-z0-9_=-]+_0000000042$/);
    expect(decodeChildName(name)).toEqual({ ok: true, registration: r });
  });

  test('a plain name or a garbled prefix is left to reading the data', () => {
    expect(decodeChildName('app1_0000000001')).toBeUndefined();
    expect(decodeChildName('base64_9999_abc_1')).toBeUndefined();
  });
});
