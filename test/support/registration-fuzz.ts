/**
 * Registrations as they might arrive from ZooKeeper — anything at all, written by anyone who can
 * write there — and what synapse makes of them: the runtime socket commands it sends and the
 * haproxy.cfg it writes for a reload. Used by the agent injection property tests.
 */
import * as fc from 'fast-check';
import { DesiredServer, planBackend, slotStates } from '../../lib/agent/backend-slots';
import { HaproxyRuntime, HaproxyServerState } from '../../lib/agent/haproxy-runtime';
import { HaproxyServerSlot, renderHaproxyConfig } from '../../lib/render/haproxy-config';
import { isIpAddress } from '../../lib/schema/haproxy-safe';
import { Registration } from '../../lib/schema/registration';
import { decodeChildName, decodeRegistration, DecodedRegistration } from '../../lib/schema/registration-codec';
import { SynapseConfig } from '../../lib/schema/synapse-config';

const ATTACKS = ['\n', '\r', '\0', '\t', ';', '#', ' ', '"', '\\', '$', '{', '}', '/', 'é', 'show servers state', 'set server', 'backup', 'weight', '300', 'crt', '/etc/shadow'];
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.array(fc.constantFrom(...ATTACKS), { maxLength: 6 }).map((parts) => parts.join('')),
);
// Mostly what a registration should hold, often not: each field is valid about two times in three.
const host = fc.oneof(
  { arbitrary: fc.ipV4(), weight: 3 },
  fc.ipV6(),
  fc.domain(),
  { arbitrary: text, weight: 2 },
  fc.tuple(fc.ipV4(), fc.constantFrom(...ATTACKS)).map(([a, b]) => a + b),
);
const port = fc.oneof({ arbitrary: fc.integer({ min: 1, max: 65535 }), weight: 4 }, fc.integer({ min: 1, max: 65535 }).map(String), fc.integer({ min: -5, max: 70000 }), text);
/** Server options near the keywords a registration may set, and ones it may not. */
const options = fc.oneof(
  { arbitrary: fc.array(fc.constantFrom('backup', 'disabled', 'weight 10', 'inter 2s', 'fastinter 500ms', 'rise 3', 'fall 2', 'maxconn 100', 'port 8081', 'slowstart 30s', 'send-proxy'), { minLength: 1, maxLength: 4 }).map((w) => w.join(' ')), weight: 3 },
  fc.array(fc.constantFrom('backup', 'weight', '10', 'inter', '2s', 'check', 'ssl', 'verify', 'none', 'crt', '/etc/shadow', 'addr', '127.0.0.1', 'observe', 'layer7', '0', '99999999', ';', '#', '\n', '"', ''), { minLength: 1, maxLength: 6 })
    .map((words) => words.join(' ')),
  text,
);
const payload = fc.record(
  {
    host,
    port,
    name: fc.oneof({ arbitrary: fc.stringMatching(/^[a-z0-9-]{1,20}$/), weight: 3 }, text),
    weight: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 256 }), weight: 3 }, fc.integer({ min: -2, max: 300 }), text, fc.constant(null)),
    haproxy_server_options: options,
    labels: fc.oneof({ arbitrary: fc.dictionary(text, text, { maxKeys: 3 }), weight: 3 }, text),
  },
  { requiredKeys: ['host', 'port'] },
);

/** One ZooKeeper child: its data (JSON or not), or a path-encoded name, decoded as synapse does. */
export const arrivingRegistration: fc.Arbitrary<{ raw: string; decoded: DecodedRegistration }> = fc.oneof(
  payload.map((p) => JSON.stringify(p)).map((raw) => ({ raw, decoded: decodeRegistration(raw) })),
  fc.string({ unit: 'binary', maxLength: 60 }).map((raw) => ({ raw, decoded: decodeRegistration(raw) })),
  payload.map((p) => {
    const encoded = Buffer.from(JSON.stringify(p)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    const raw = `base64_${encoded.length}_${encoded}_0000000001`;
    return { raw, decoded: decodeChildName(raw) ?? { ok: false as const, reason: 'not path-encoded' } };
  }),
);

/** Records the commands instead of sending them; HAProxy would answer each with silence. */
class RecordingRuntime extends HaproxyRuntime {
  public readonly sent: string[] = [];

  public constructor() {
    super('/nonexistent/admin.sock');
  }

  public override async command(command: string): Promise<string> {
    this.sent.push(command);
    return '';
  }
}

export const FUZZ_BACKEND = 'users';

/** The consumed service: a frontend and four slots, two of them in service. */
export const FUZZ_SYNAPSE_CONFIG: SynapseConfig = {
  services: {
    [FUZZ_BACKEND]: {
      discovery: { method: 'zookeeper', path: '/services/users', hosts: ['127.0.0.1:2181'] },
      haproxy: { port: 3210, server_options: 'check inter 2s', server_slots: 4 },
    },
  },
  haproxy: { global: ['maxconn 100'], defaults: ['mode http', 'timeout connect 1s', 'timeout client 5s', 'timeout server 5s'] },
};

const STATES: HaproxyServerState[] = [
  ['10.0.0.1', 80, 0], ['10.0.0.2', 80, 0], ['0.0.0.0', 0, 1], ['0.0.0.0', 0, 1],
].map(([address, p, adminState], i) => ({
  backend: FUZZ_BACKEND, server: `slot${i + 1}`, address: address as string, port: p as number,
  operationalState: 2, adminState: adminState as number, weight: 1, initialWeight: 1,
}));

/**
 * What synapse does with the accepted registrations: runtime changes through the admin socket
 * (recorded), and the haproxy.cfg a reload would write with every server in a slot.
 * Host names resolve to one test address, as DNS would give some address.
 */
export async function synapseOutput(registrations: Registration[]): Promise<{ commands: string[]; config: string }> {
  const desired: DesiredServer[] = registrations.map((r) => ({
    host: isIpAddress(r.host) ? r.host : '10.9.9.9', port: r.port, weight: r.weight, options: r.haproxy_server_options ?? '', label: r.name,
  }));
  const plan = planBackend(slotStates(STATES), desired);
  const runtime = new RecordingRuntime();
  // The order and calls of Synapse.sync.
  for (const change of plan.changes) {
    const s = change.slot.server;
    if (change.kind === 'add') {
      await runtime.setServerAddress(FUZZ_BACKEND, s, change.server.host, change.server.port);
      if (change.slot.weight !== change.weight) await runtime.setServerWeight(FUZZ_BACKEND, s, change.weight);
      await runtime.setServerState(FUZZ_BACKEND, s, 'ready');
    } else if (change.kind === 'weight') {
      await runtime.setServerWeight(FUZZ_BACKEND, s, change.weight);
    } else {
      await runtime.setServerState(FUZZ_BACKEND, s, 'maint');
    }
  }
  const servers: HaproxyServerSlot[] = [...plan.placement.map((p) => ({ slot: p.slot, server: p.server })), ...plan.overflow.map((server) => ({ slot: undefined, server }))]
    .map(({ slot, server }) => ({
      ...(slot !== undefined ? { slot } : {}),
      host: server.host,
      port: server.port,
      ...(server.weight !== undefined ? { weight: server.weight } : {}),
      ...(server.options !== '' ? { haproxyServerOptions: server.options } : {}),
    }));
  return { commands: runtime.sent, config: renderHaproxyConfig(FUZZ_SYNAPSE_CONFIG, { [FUZZ_BACKEND]: servers }) };
}

/** Every command synapse may send for a backend's slots. */
export const RUNTIME_COMMAND = new RegExp(`^set server ${FUZZ_BACKEND}/slot[0-9]+ (addr [0-9A-Fa-f.:]+ port [0-9]+|state (ready|drain|maint)|weight [0-9]+)$`);
