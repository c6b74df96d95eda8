import { HaproxyServerState, isInService } from './haproxy-runtime';
import { slotOptionText } from '../render/haproxy-config';

/** A server synapse wants in a backend; `host` is already an IP address. */
export interface DesiredServer {
  readonly host: string;
  readonly port: number;
  readonly weight?: number;
  /** The registration's `haproxy_server_options` ('' for none): only a slot rendered with them fits. */
  readonly options: string;
  /** For the log: the instance's name or the ZooKeeper child. */
  readonly label: string;
}

/** How the running config file wrote one slot's server line. */
export interface RenderedSlot {
  /** Everything after the address, without ` disabled` and the weight: shared plus per-instance options. */
  readonly options: string;
  /** The line's port is 0, `+N`, `-N` or missing: HAProxy adds the frontend's port to it. */
  readonly portOffset: boolean;
}

/** One `slot<N>` server of a backend as HAProxy has it now. */
export interface SlotState {
  readonly index: number;
  readonly server: string;
  readonly host: string;
  readonly port: number;
  readonly inService: boolean;
  /** `srv_op_state` 2: its health checks pass (or it has none). */
  readonly up: boolean;
  readonly weight: number;
  readonly initialWeight: number;
  /** Its line in the config file HAProxy runs; undefined when that file is not known. */
  readonly rendered?: RenderedSlot;
}

/** A run-time change to one slot. */
export type SlotChange =
  | { readonly kind: 'add'; readonly slot: SlotState; readonly server: DesiredServer; readonly weight: number }
  | { readonly kind: 'weight'; readonly slot: SlotState; readonly server: DesiredServer; readonly weight: number }
  | { readonly kind: 'remove'; readonly slot: SlotState };

/** What it takes to bring a backend to the desired servers. */
export interface BackendPlan {
  /** Run-time changes, adds first so the backend never has fewer servers than needed mid-way. */
  readonly changes: SlotChange[];
  /** Desired servers with no fitting free slot: they go in by a reload, into free slots or new ones. */
  readonly overflow: DesiredServer[];
  /**
   * Why the running config cannot stay as it is (a server kept in a slot rendered with other options,
   * a port-offset slot): a reload that renders the same servers fixes it. Empty when none is needed.
   */
  readonly stale: string[];
  /** Slot index for every server that will be in service after the changes. */
  readonly placement: { readonly slot: number; readonly server: DesiredServer }[];
}

const SLOT_NAME = /^slot([0-9]+)$/;

/** The slots of one backend from `show servers state`; `rendered` maps slot index to its config line. */
export function slotStates(servers: HaproxyServerState[], rendered?: Map<number, RenderedSlot>): SlotState[] {
  return servers
    .map((s) => ({ s, m: SLOT_NAME.exec(s.server) }))
    .filter((x) => x.m !== null)
    .map(({ s, m }) => {
      const index = Number(m![1]);
      return {
        index,
        server: s.server,
        host: s.address,
        port: s.port,
        inService: isInService(s),
        up: s.operationalState === 2,
        weight: s.weight,
        initialWeight: s.initialWeight,
        ...(rendered ? { rendered: rendered.get(index) ?? { options: '', portOffset: false } } : {}),
      };
    })
    .sort((a, b) => a.index - b.index);
}

export function serverKey(s: { host: string; port: number }): string {
  return `${s.host}:${s.port}`;
}

/** The option text a server line gets: the service's `server_options`, then the instance's. */
export function slotOptions(shared: string, instance: string): string {
  return slotOptionText(`${shared} ${instance}`);
}

/**
 * Plans the smallest set of run-time changes from `slots` to `desired`: a server already in a
 * slot stays there (so a synapse restart changes nothing), a new one takes a free slot rendered
 * with its options — the one that last held the same address, or else the lowest — and a departed
 * one is put in maintenance with its address kept. `shared` is the service's `server_options`.
 *
 * A server in service stays in its slot even when the slot was rendered with other options (the
 * health check changed): that needs a reload (`stale`), never a removal.
 */
export function planBackend(slots: SlotState[], desired: DesiredServer[], shared = ''): BackendPlan {
  const wanted = new Map<string, DesiredServer>();
  for (const d of desired) if (!wanted.has(serverKey(d))) wanted.set(serverKey(d), d);
  const renderedFor = (slot: SlotState): string => slot.rendered?.options ?? slotOptions(shared, '');

  const adds: SlotChange[] = [];
  const weights: SlotChange[] = [];
  const removes: SlotChange[] = [];
  const placement: { slot: number; server: DesiredServer }[] = [];
  const stale: string[] = [];
  const kept = new Set<string>();
  const taken = new Set<number>();

  for (const slot of slots) {
    if (slot.rendered?.portOffset) stale.push(`${slot.server} is a port-offset server in the running config`);
    if (!slot.inService) continue;
    const d = wanted.get(serverKey(slot));
    if (d && !kept.has(serverKey(slot))) {
      kept.add(serverKey(slot));
      taken.add(slot.index);
      placement.push({ slot: slot.index, server: d });
      if (renderedFor(slot) !== slotOptions(shared, d.options)) stale.push(`${slot.server} was rendered with other options`);
      const weight = d.weight ?? slot.initialWeight;
      if (weight !== slot.weight) weights.push({ kind: 'weight', slot, server: d, weight });
    } else {
      removes.push({ kind: 'remove', slot });
    }
  }

  const overflow: DesiredServer[] = [];
  for (const d of wanted.values()) {
    if (kept.has(serverKey(d))) continue;
    const free = slots.filter((s) => !s.inService && !taken.has(s.index) && !s.rendered?.portOffset && renderedFor(s) === slotOptions(shared, d.options));
    const slot = free.find((s) => serverKey(s) === serverKey(d)) ?? free[0];
    if (!slot) {
      overflow.push(d);
      continue;
    }
    taken.add(slot.index);
    placement.push({ slot: slot.index, server: d });
    adds.push({ kind: 'add', slot, server: d, weight: d.weight ?? slot.initialWeight });
  }
  placement.sort((a, b) => a.slot - b.slot);
  return { changes: [...adds, ...weights, ...removes], overflow, stale, placement };
}

/**
 * Why a backend discovery has not spoken for yet (its servers stay as HAProxy has them) still needs
 * a reload: a server in a slot rendered before the service's `server_options` changed (a new health
 * check would otherwise never reach HAProxy), or a port-offset slot.
 */
export function staleSlots(slots: SlotState[], shared: string): string[] {
  const common = slotOptions(shared, '');
  const out: string[] = [];
  for (const slot of slots) {
    if (slot.rendered === undefined) continue;
    if (slot.rendered.portOffset) out.push(`${slot.server} is a port-offset server in the running config`);
    else if (slot.inService && slot.rendered.options !== common && !slot.rendered.options.startsWith(`${common} `)) out.push(`${slot.server} was rendered with other options`);
  }
  return out;
}

/**
 * The per-instance options of a slot in service: its rendered options after the shared ones the
 * file was written with — the options of its empty slots, or else today's `server_options`.
 */
export function instanceOptions(slot: SlotState, slots: SlotState[], shared: string): string {
  const rendered = slot.rendered?.options ?? '';
  const empty = slots.find((x) => !x.inService && x.rendered !== undefined && !x.rendered.portOffset);
  for (const common of [empty?.rendered?.options, slotOptions(shared, '')]) {
    if (common === undefined) continue;
    if (rendered === common) return '';
    if (common === '' || rendered.startsWith(`${common} `)) return rendered.slice(common === '' ? 0 : common.length + 1);
  }
  return '';
}

/**
 * The slot count a backend needs for `servers` servers: what it has, unless they do not fit —
 * then twice that, or more if they need more. Config changes and reloads alone never grow it.
 */
export function slotCountFor(current: number, servers: number): number {
  if (servers <= current) return current;
  return Math.max(servers, current * 2);
}

/** What one slot should be after the changes: a server in service, or out of service. */
export type SlotTarget = { readonly host: string; readonly port: number; readonly weight: number } | 'out';

/** One slot that `show servers state` reports otherwise than planned. */
export interface SlotDifference {
  readonly server: string;
  readonly want: SlotTarget;
  readonly have: { readonly host: string; readonly port: number; readonly adminState: number; readonly weight: number };
}

/** Maintenance (0x23) and drain (0x08 forced, 0x10 inherited) bits of `srv_admin_state`. */
const ADMIN_NOT_SERVING = 0x23 | 0x08 | 0x10;

/**
 * Compares HAProxy's servers (read back after a change) with the targets per slot name: address,
 * port, weight and admin state (in service, not drained; or forced into maintenance).
 */
export function slotDifferences(targets: Map<string, SlotTarget>, servers: HaproxyServerState[]): SlotDifference[] {
  const out: SlotDifference[] = [];
  for (const s of servers) {
    const want = targets.get(s.server);
    if (want === undefined) continue;
    const have = { host: s.address, port: s.port, adminState: s.adminState, weight: s.weight };
    const ok = want === 'out'
      ? (s.adminState & 0x01) !== 0
      : s.address === want.host && s.port === want.port && s.weight === want.weight && (s.adminState & ADMIN_NOT_SERVING) === 0;
    if (!ok) out.push({ server: s.server, want, have });
  }
  for (const [server, want] of targets) {
    if (!servers.some((s) => s.server === server)) out.push({ server, want, have: { host: '', port: 0, adminState: -1, weight: -1 } });
  }
  return out;
}
