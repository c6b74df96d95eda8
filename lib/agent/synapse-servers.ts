import { createHash } from 'crypto';
import { BackendPlan, DesiredServer, instanceOptions, slotCountFor, SlotState } from './backend-slots';
import { fillServerOptions, LoadedSynapseService } from './synapse-config-loader';
import { HaproxyServerSlot } from '../render/haproxy-config';
import { Registration } from '../schema/registration';
import { SynapseConfig } from '../schema/synapse-config';

/**
 * The servers synapse wants in each backend, from the registrations it read: which ones (label
 * filters), in what order they take free slots, with what per-server text, and where each one goes.
 * Pure: the loop in synapse.ts reads ZooKeeper and HAProxy and applies what these say.
 */

/**
 * Every backend's servers in their slots: as planned where discovery has spoken, as HAProxy has
 * them where it has not. Servers without a slot take the free ones, lowest first; only when there
 * are none does the backend grow ({@link slotCountFor}).
 */
export function placedBackends(services: LoadedSynapseService[], slots: Map<string, SlotState[]>, plans: Map<string, BackendPlan>, config: SynapseConfig) {
  const backends: { [service: string]: HaproxyServerSlot[] } = {};
  const counts: { [service: string]: number } = {};
  for (const service of services) {
    const current = slots.get(service.name) ?? [];
    const plan = plans.get(service.name);
    const shared = config.services[service.name]?.haproxy?.server_options ?? '';
    const placed = plan
      ? plan.placement.map(({ slot, server }) => ({ slot, host: server.host, port: server.port, weight: server.weight, options: server.options }))
      : current.filter((x) => x.inService).map((x) => ({ slot: x.index, host: x.host, port: x.port, weight: x.weight, options: instanceOptions(x, current, shared) }));
    const taken = new Set(placed.map((p) => p.slot));
    let next = 0;
    const freeSlot = (): number => {
      do next++; while (taken.has(next));
      return next;
    };
    const extra = (plan?.overflow ?? []).map((server) => ({ slot: freeSlot(), host: server.host, port: server.port, weight: server.weight, options: server.options }));
    const all = [...placed, ...extra];
    counts[service.name] = slotCountFor(current.length, Math.max(0, ...all.map((x) => x.slot)));
    backends[service.name] = all.map((x) => ({
      slot: x.slot,
      host: x.host,
      port: x.port,
      ...(x.weight !== undefined ? { weight: x.weight } : {}),
      ...(x.options !== '' ? { haproxyServerOptions: x.options } : {}),
    }));
  }
  return { backends, counts };
}

/** Registrations pass every `label_filters` entry (labels compared as text, a missing one as null). */
export function matchesLabels(service: LoadedSynapseService, r: Registration): boolean {
  return service.labelFilters.every((f) => {
    const value = r.labels?.[f.label];
    const equal = value !== undefined && value !== null && String(value) === f.value;
    return f.condition === 'equals' ? equal : !equal;
  });
}

/**
 * What a registration becomes in the backend: the port override, the weight only with
 * use_nerve_weights (then without `weight` in the options, as upstream), and the per-server text —
 * filled-in `server_options`, `cookie`, the registration's own options — that only a slot
 * rendered with the same text fits.
 */
export function desiredServer(service: LoadedSynapseService, host: string, r: Registration, label: string): DesiredServer {
  const port = service.portOverride ?? r.port;
  const weighted = service.useNerveWeights && r.weight !== undefined;
  const strip = (text: string): string => (weighted ? text.replace(/(^| )weight [0-9]+/g, '').trim() : text);
  // Upstream's server name, which the placeholders and the cookie use.
  const name = r.name ? `${r.name}_${r.host}:${port}` : `${r.host}:${port}`;
  let options = [
    service.serverOptionsTemplate === undefined ? '' : strip(fillServerOptions(service.serverOptionsTemplate, r.host, port, name)),
    service.cookie === undefined ? '' : `cookie ${service.cookie === 'hash' ? createHash('sha1').update(name).digest('hex') : name}`,
    strip(r.haproxy_server_options ?? ''),
  ].filter((p) => p !== '').join(' ');
  let weight = weighted ? r.weight : undefined;
  // A `weight` in the per-server text becomes the slot's weight (HAProxy takes the last one): the
  // renderer writes it at the end of the line, where reading the file back expects it.
  const inText = [...options.matchAll(/(?:^| )weight ([0-9]+)/g)];
  if (inText.length > 0) {
    weight ??= Number(inText[inText.length - 1][1]);
    options = options.replace(/(^| )weight [0-9]+/g, '').trim();
  }
  return { host, port, weight, options, label };
}

/** `backend_order`: the order new servers take free slots; shuffled with the seed when unset. */
export function orderServers(service: LoadedSynapseService, servers: DesiredServer[], seed: number): void {
  const key = (s: DesiredServer): string => `${s.label}_${s.host}:${s.port}`;
  if (service.backendOrder === 'asc') servers.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  else if (service.backendOrder === 'desc') servers.sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0));
  else if (service.backendOrder === undefined) {
    let state = seed >>> 0;
    const random = (): number => {
      // mulberry32: a small seeded generator, so one host's order is the same at every sync.
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    servers.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    for (let i = servers.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [servers[i], servers[j]] = [servers[j], servers[i]];
    }
  }
}
