/**
 * Registrations read from ZooKeeper are untrusted: whatever bytes arrive, a refused one is skipped,
 * and what reaches HAProxy's runtime socket for an accepted one is one command of the expected
 * form, with no `;`, newline or control character, and the haproxy.cfg synapse would write keeps
 * its directives (HAProxy's own verdict is in injection.real.test.ts).
 */
import * as fc from 'fast-check';
import { Registration } from '../lib/schema/registration';
import { fuzzParameters } from './support/fuzz-parameters';
import { directives } from './support/injection-targets';
import { arrivingRegistration, RUNTIME_COMMAND, synapseOutput } from './support/registration-fuzz';

/** The directives of a config, a run of server lines counting as one (their number follows the registrations). */
function configShape(config: string): string[] {
  return directives(config).filter((d, i, all) => i === 0 || d !== all[i - 1]);
}

test('whatever a registration holds, only well-formed commands and server lines reach HAProxy', async () => {
  const baseline = configShape((await synapseOutput([{ host: '10.0.0.3', port: 80, name: 'app3' }])).config);
  await fc.assert(
    fc.asyncProperty(fc.array(arrivingRegistration, { minLength: 1, maxLength: 3 }), async (arriving) => {
      const accepted: Registration[] = arriving.flatMap((a) => (a.decoded.ok ? [a.decoded.registration] : []));
      const { commands, config } = await synapseOutput(accepted);
      for (const command of commands) {
        expect({ arriving: arriving.map((a) => a.raw), command }).toEqual({ arriving: arriving.map((a) => a.raw), command: expect.stringMatching(RUNTIME_COMMAND) });
      }
      const servers = config.split('\n').filter((l) => l.startsWith('  server '));
      for (const line of servers) expect(line).toMatch(/^ {2}server slot[0-9]+ [0-9A-Fa-f.:]+:[0-9]+( [a-z0-9 -]+)?$/);
      expect(configShape(config)).toEqual(baseline);
    }),
    fuzzParameters(400),
  );
});

test('a refused registration says why; an accepted one is what the payload said', () => {
  fc.assert(
    fc.property(arrivingRegistration, ({ raw, decoded }) => {
      if (!decoded.ok) {
        expect(decoded.reason.length).toBeGreaterThan(0);
        return;
      }
      const r = decoded.registration;
      expect({ raw, host: r.host }).toEqual({ raw, host: expect.stringMatching(/^[0-9A-Za-z.:-]+$/) });
      expect(Number.isInteger(r.port) && r.port >= 1 && r.port <= 65535).toBe(true);
      expect(r.haproxy_server_options ?? '').toMatch(/^[a-z0-9 -]*$/);
      expect(r.name).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    }),
    fuzzParameters(1000),
  );
});
