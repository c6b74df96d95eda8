import { HaproxyServerState, isInService } from './haproxy-runtime';

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

/** One `slot<N>` server of a backend as HAProxy has it now. */
export interface SlotState {
  readonly index: number;
  readonly server: string;
  readonly host: string;
  readonly port: number;
  readonly inService: boolean;
  readonly weight: number;
  readonly initialWeight: number;
  /** The per-instance options it was rendered with ('' for none). */
  readonly options: string;
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
  /** Desired servers with no fitting free slot: they need a reload with more slots. */
  readonly overflow: DesiredServer[];
  /** Slot index for every server that will be in service after the changes. */
  readonly placement: { readonly slot: number; readonly server: DesiredServer }[];
}

const SLOT_NAME = /^slot([0-9]+)$/;

/** The slots of one backend from `show servers state`; `options` maps slot index to rendered options. */
export function slotStates(servers: HaproxyServerState[], options: Map<number, string> = new Map()): SlotState[] {
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
        weight: s.weight,
        initialWeight: s.initialWeight,
        options: options.get(index) ?? '',
      };
    })
    .sort((a, b) => a.index - b.index);
}

export function serverKey(s: { host: string; port: number }): string {
  return `${s.host}:${s.port}`;
}

/**
 * Plans the smallest set of run-time changes from `slots` to `desired`: a server already in a
 * slot stays there (so a synapse restart changes nothing), a new one takes the free slot that
 * last held the same address or else the lowest free one, and a departed one is put in
 * maintenance with its address kept.
 */
export function planBackend(slots: SlotState[], desired: DesiredServer[]): BackendPlan {
  const wanted = new Map<string, DesiredServer>();
  for (const d of desired) if (!wanted.has(serverKey(d))) wanted.set(serverKey(d), d);

  const adds: SlotChange[] = [];
  const weights: SlotChange[] = [];
  const removes: SlotChange[] = [];
  const placement: { slot: number; server: DesiredServer }[] = [];
  const kept = new Set<string>();
  const taken = new Set<number>();

  for (const slot of slots) {
    if (!slot.inService) continue;
    const d = wanted.get(serverKey(slot));
    if (d && !kept.has(serverKey(slot)) && d.options === slot.options) {
      kept.add(serverKey(slot));
      taken.add(slot.index);
      placement.push({ slot: slot.index, server: d });
      const weight = d.weight ?? slot.initialWeight;
      if (weight !== slot.weight) weights.push({ kind: 'weight', slot, server: d, weight });
    } else {
      removes.push({ kind: 'remove', slot });
    }
  }

  const overflow: DesiredServer[] = [];
  for (const d of wanted.values()) {
    if (kept.has(serverKey(d))) continue;
    const free = slots.filter((s) => !s.inService && !taken.has(s.index) && s.options === d.options);
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
  return { changes: [...adds, ...weights, ...removes], overflow, placement };
}
