import { DesiredServer, planBackend, SlotState } from '../lib/agent/backend-slots';
import { parseServersState } from '../lib/agent/haproxy-runtime';
import { renderedSlotOptions, renderHaproxyConfig } from '../lib/render/haproxy-config';

function slot(index: number, host: string, port: number, inService: boolean, options = ''): SlotState {
  return { index, server: `slot${index}`, host, port, inService, weight: 1, initialWeight: 1, options };
}

function server(host: string, port: number, extra: Partial<DesiredServer> = {}): DesiredServer {
  return { host, port, options: '', label: host, ...extra };
}

describe('planBackend', () => {
  test('servers already in a slot stay put: a restart plans nothing', () => {
    const slots = [slot(1, '10.0.0.1', 80, true), slot(2, '10.0.0.2', 80, true), slot(3, '0.0.0.0', 0, false)];
    const plan = planBackend(slots, [server('10.0.0.2', 80), server('10.0.0.1', 80)]);
    expect(plan.changes).toEqual([]);
    expect(plan.overflow).toEqual([]);
    expect(plan.placement.map((p) => p.slot)).toEqual([1, 2]);
  });

  test('adds before removes; a returning address gets its old slot back', () => {
    const slots = [slot(1, '10.0.0.1', 80, true), slot(2, '0.0.0.0', 0, false), slot(3, '10.0.0.3', 80, false)];
    const plan = planBackend(slots, [server('10.0.0.3', 80), server('10.0.0.4', 80)]);
    expect(plan.changes.map((c) => `${c.kind} ${c.slot.server}${c.kind === 'remove' ? '' : ` ${c.server.host}`}`)).toEqual([
      'add slot3 10.0.0.3',
      'add slot2 10.0.0.4',
      'remove slot1',
    ]);
  });

  test('weights follow the registration, or fall back to the configured weight', () => {
    const slots = [{ ...slot(1, '10.0.0.1', 80, true), weight: 5, initialWeight: 1 }, slot(2, '0.0.0.0', 0, false)];
    const plan = planBackend(slots, [server('10.0.0.1', 80), server('10.0.0.2', 80, { weight: 20 })]);
    expect(plan.changes.map((c) => (c.kind === 'remove' ? c.kind : `${c.kind} ${c.slot.server} ${c.weight}`))).toEqual(['add slot2 20', 'weight slot1 1']);
  });

  test('servers without a fitting free slot overflow; per-instance options need a slot rendered with them', () => {
    const slots = [slot(1, '0.0.0.0', 0, false), slot(2, '0.0.0.0', 0, false, 'backup')];
    const plan = planBackend(slots, [server('10.0.0.1', 80), server('10.0.0.2', 80), server('10.0.0.3', 80, { options: 'backup' })]);
    expect(plan.changes.map((c) => `${c.kind} ${c.slot.server}`)).toEqual(['add slot1', 'add slot2']);
    expect(plan.overflow.map((s) => s.host)).toEqual(['10.0.0.2']);
  });

  test('duplicate registrations of one endpoint make one server', () => {
    const plan = planBackend([slot(1, '0.0.0.0', 0, false), slot(2, '0.0.0.0', 0, false)], [server('10.0.0.1', 80), server('10.0.0.1', 80)]);
    expect(plan.changes.length).toBe(1);
  });
});

test('renderedSlotOptions reads back the per-instance options the renderer wrote', () => {
  const text = renderHaproxyConfig({
    services: { users: { discovery: { method: 'zookeeper', path: '/u', hosts: ['127.0.0.1:2181'] }, haproxy: { port: 3210, server_options: 'check inter 2s', server_slots: 3 } } },
    haproxy: {},
  }, { users: [{ slot: 1, host: '10.0.0.1', port: 80, weight: 3 }, { slot: 2, host: '10.0.0.2', port: 80, haproxyServerOptions: 'backup', weight: 2 }] });
  expect([...renderedSlotOptions(text, 'users', 'check inter 2s')]).toEqual([[2, 'backup']]);
});

test('parseServersState reads the columns by name', () => {
  const answer = '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_port\n3 users 1 slot1 10.0.0.1 2 0 7 1 8080\n3 users 2 slot2 0.0.0.0 0 5 1 1 0\n\n';
  expect(parseServersState(answer)).toEqual([
    { backend: 'users', server: 'slot1', address: '10.0.0.1', port: 8080, operationalState: 2, adminState: 0, weight: 7, initialWeight: 1 },
    { backend: 'users', server: 'slot2', address: '0.0.0.0', port: 0, operationalState: 0, adminState: 5, weight: 1, initialWeight: 1 },
  ]);
});
