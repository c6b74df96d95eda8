import { DesiredServer, planBackend, slotCountFor, slotDifferences, SlotState, SlotTarget } from '../lib/agent/backend-slots';
import { parseServersState } from '../lib/agent/haproxy-runtime';
import { renderedSlots, renderHaproxyConfig } from '../lib/render/haproxy-config';
import { SynapseConfig } from '../lib/schema/synapse-config';

function slot(index: number, host: string, port: number, inService: boolean, options = '', portOffset = false): SlotState {
  return { index, server: `slot${index}`, host, port, inService, up: inService, weight: 1, initialWeight: 1, rendered: { options, portOffset } };
}

function server(host: string, port: number, extra: Partial<DesiredServer> = {}): DesiredServer {
  return { host, port, options: '', label: host, ...extra };
}

describe('planBackend', () => {
  test('servers already in a slot stay put: a restart plans nothing', () => {
    const slots = [slot(1, '10.0.0.1', 80, true), slot(2, '10.0.0.2', 80, true), slot(3, '127.0.0.1', 1, false)];
    const plan = planBackend(slots, [server('10.0.0.2', 80), server('10.0.0.1', 80)]);
    expect(plan.changes).toEqual([]);
    expect(plan.overflow).toEqual([]);
    expect(plan.placement.map((p) => p.slot)).toEqual([1, 2]);
  });

  test('adds before removes; a returning address gets its old slot back', () => {
    const slots = [slot(1, '10.0.0.1', 80, true), slot(2, '127.0.0.1', 1, false), slot(3, '10.0.0.3', 80, false)];
    const plan = planBackend(slots, [server('10.0.0.3', 80), server('10.0.0.4', 80)]);
    expect(plan.changes.map((c) => `${c.kind} ${c.slot.server}${c.kind === 'remove' ? '' : ` ${c.server.host}`}`)).toEqual([
      'add slot3 10.0.0.3',
      'add slot2 10.0.0.4',
      'remove slot1',
    ]);
  });

  test('weights follow the registration, or fall back to the configured weight', () => {
    const slots = [{ ...slot(1, '10.0.0.1', 80, true), weight: 5, initialWeight: 1 }, slot(2, '127.0.0.1', 1, false)];
    const plan = planBackend(slots, [server('10.0.0.1', 80), server('10.0.0.2', 80, { weight: 20 })]);
    expect(plan.changes.map((c) => (c.kind === 'remove' ? c.kind : `${c.kind} ${c.slot.server} ${c.weight}`))).toEqual(['add slot2 20', 'weight slot1 1']);
  });

  test('servers without a fitting free slot overflow; per-instance options need a slot rendered with them', () => {
    const slots = [slot(1, '127.0.0.1', 1, false), slot(2, '127.0.0.1', 1, false, 'backup')];
    const plan = planBackend(slots, [server('10.0.0.1', 80), server('10.0.0.2', 80), server('10.0.0.3', 80, { options: 'backup' })]);
    expect(plan.changes.map((c) => `${c.kind} ${c.slot.server}`)).toEqual(['add slot1', 'add slot2']);
    expect(plan.overflow.map((s) => s.host)).toEqual(['10.0.0.2']);
  });

  test('a server kept in a slot rendered with other shared options stays in service and asks for a reload', () => {
    // The health check changed: synapse.conf.json says rise 3, the running file still rise 2.
    const slots = [slot(1, '10.0.0.1', 80, true, 'check rise 2'), slot(2, '10.0.0.2', 80, true, 'check rise 2'), slot(3, '127.0.0.1', 1, false, 'check rise 2')];
    const plan = planBackend(slots, [server('10.0.0.1', 80), server('10.0.0.2', 80), server('10.0.0.3', 80)], 'check rise 3');
    expect(plan.changes).toEqual([]);
    expect(plan.placement.map((p) => p.slot)).toEqual([1, 2]);
    expect(plan.overflow.map((s) => s.host)).toEqual(['10.0.0.3']);
    expect(plan.stale).toEqual(['slot1 was rendered with other options', 'slot2 was rendered with other options']);
  });

  test('a port-offset slot is never filled at run time and asks for a reload', () => {
    const plan = planBackend([slot(1, '0.0.0.0', 8080, false, '', true), slot(2, '127.0.0.1', 1, false)], [server('10.0.0.1', 8080)]);
    expect(plan.changes.map((c) => `${c.kind} ${c.slot.server}`)).toEqual(['add slot2']);
    expect(plan.stale).toEqual(['slot1 is a port-offset server in the running config']);
  });

  test('duplicate registrations of one endpoint make one server', () => {
    const plan = planBackend([slot(1, '127.0.0.1', 1, false), slot(2, '127.0.0.1', 1, false)], [server('10.0.0.1', 80), server('10.0.0.1', 80)]);
    expect(plan.changes.length).toBe(1);
  });
});

test('renderedSlots reads back the options the renderer wrote, and finds port-offset slots', () => {
  const text = renderHaproxyConfig({
    services: { users: { discovery: { method: 'zookeeper', path: '/u', hosts: ['127.0.0.1:2181'] }, haproxy: { port: 3210, server_options: 'check inter 2s', server_slots: 3 } } },
    haproxy: {},
  }, { users: [{ slot: 1, host: '10.0.0.1', port: 80, weight: 3 }, { slot: 2, host: '10.0.0.2', port: 80, haproxyServerOptions: 'backup', weight: 2 }] });
  expect([...renderedSlots(text, 'users')]).toEqual([
    [1, { options: 'check inter 2s', portOffset: false }],
    [2, { options: 'check inter 2s backup', portOffset: false }],
    [3, { options: 'check inter 2s', portOffset: false }],
  ]);
  const older = 'backend users\n  server slot1 0.0.0.0:0 check disabled\n  server slot2 10.0.0.1:+80 check\n  server slot3 10.0.0.1 check\n  server slot4 10.0.0.1:80 check\n';
  expect([...renderedSlots(older, 'users')].map(([n, r]) => [n, r.portOffset])).toEqual([[1, true], [2, true], [3, true], [4, false]]);
});

test('a file rendered from the same config fits its servers: no reload for spacing or a weight in the options', () => {
  const shared = 'check  inter 2s';
  const config: SynapseConfig = {
    services: { users: { discovery: { method: 'zookeeper', path: '/u', hosts: ['127.0.0.1:2181'] }, haproxy: { port: 3210, server_options: shared, server_slots: 3 } } },
    haproxy: {},
  };
  const text = renderHaproxyConfig(config, { users: [{ slot: 1, host: '10.0.0.1', port: 80, haproxyServerOptions: 'backup weight 5' }, { slot: 2, host: '10.0.0.2', port: 80, weight: 3 }] });
  const rendered = renderedSlots(text, 'users');
  const slots = [1, 2, 3].map((n) => ({ ...slot(n, n < 3 ? `10.0.0.${n}` : '127.0.0.1', n < 3 ? 80 : 1, n < 3), rendered: rendered.get(n) }));
  const plan = planBackend(slots, [server('10.0.0.1', 80, { options: 'backup weight 5' }), server('10.0.0.2', 80, { weight: 3 }), server('10.0.0.3', 80)], shared);
  expect(plan.stale).toEqual([]);
  expect(plan.overflow).toEqual([]);
  expect(plan.changes.map((c) => `${c.kind} ${c.slot.server}`)).toEqual(['add slot3', 'weight slot2']);
});

test('the slot count grows only when the servers do not fit', () => {
  expect(slotCountFor(16, 2)).toBe(16);
  expect(slotCountFor(16, 16)).toBe(16);
  expect(slotCountFor(16, 17)).toBe(32);
  expect(slotCountFor(4, 40)).toBe(40);
});

test('slotDifferences compares address, port, weight and admin state with what was set', () => {
  const state = (server: string, address: string, port: number, adminState: number, weight = 1) => ({ backend: 'users', server, address, port, operationalState: 2, adminState, weight, initialWeight: 1 });
  const targets = new Map<string, SlotTarget>([
    ['slot1', { host: '10.0.0.1', port: 80, weight: 1 }],
    ['slot2', { host: '10.0.0.2', port: 80, weight: 1 }],
    ['slot3', 'out'],
    ['slot4', { host: '10.0.0.4', port: 80, weight: 5 }],
  ]);
  const diffs = slotDifferences(targets, [
    state('slot1', '10.0.0.1', 80, 4),
    state('slot2', '10.0.0.2', 8080, 0),
    state('slot3', '10.0.0.3', 80, 0),
    state('slot4', '10.0.0.4', 80, 0x08, 5),
  ]);
  expect(diffs.map((d) => d.server)).toEqual(['slot2', 'slot3', 'slot4']);
});

test('parseServersState reads the columns by name', () => {
  const answer = '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_port\n3 users 1 slot1 10.0.0.1 2 0 7 1 8080\n3 users 2 slot2 0.0.0.0 0 5 1 1 0\n\n';
  expect(parseServersState(answer)).toEqual([
    { backend: 'users', server: 'slot1', address: '10.0.0.1', port: 8080, operationalState: 2, adminState: 0, weight: 7, initialWeight: 1 },
    { backend: 'users', server: 'slot2', address: '0.0.0.0', port: 0, operationalState: 0, adminState: 5, weight: 1, initialWeight: 1 },
  ]);
});
