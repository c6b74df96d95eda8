/**
 * What a rehearsal's samples come to: when every provider was back in service, and for how long
 * it was not. Pure: the rehearsal samples, these judge.
 */

/** One consumer's HAProxy view of one service. */
export interface ConsumerServiceStatus {
  readonly hostname: string;
  readonly service: string;
  /** Servers with an address, from `show servers state`. */
  readonly servers: Array<{ readonly address: string; readonly port: number; readonly up: boolean }>;
  /** Server slots of the backend, empty ones included. */
  readonly slots: number;
  /** Why the admin socket could not be read. */
  readonly error?: string;
}

/** Seconds from `since` until the samples held `holds` for good; null when the last one does not. */
export function lastSince<T extends { at: number }>(samples: readonly T[], since: number, holds: (x: T) => boolean): number | null {
  if (samples.length === 0 || !holds(samples[samples.length - 1])) return null;
  let i = samples.length - 1;
  while (i > 0 && holds(samples[i - 1])) i--;
  return Math.max(0, samples[i].at - since) / 1000;
}

/** Every provider is an up server of the service's backend on every consumer of it. */
export function allInService(service: string, providers: readonly string[], consumers: readonly ConsumerServiceStatus[]): boolean {
  const views = consumers.filter((c) => c.service === service);
  if (views.length === 0 || providers.length === 0) return false;
  return views.every((v) => v.error === undefined && providers.every((p) => v.servers.some((s) => s.up && `${s.address}:${s.port}` === p)));
}

/** From samples of "every provider in service": when it held for good, and for how long it did not. */
export function convergence(samples: ReadonlyArray<{ at: number; ok: boolean }>, since: number): { backInServiceSeconds: number | null; outOfServiceSeconds: number } {
  let out = 0;
  for (let i = 0; i + 1 < samples.length; i++) if (!samples[i].ok) out += samples[i + 1].at - samples[i].at;
  const last = samples[samples.length - 1];
  if (!last || !last.ok) return { backInServiceSeconds: null, outOfServiceSeconds: out / 1000 };
  let i = samples.length - 1;
  while (i > 0 && samples[i - 1].ok) i--;
  const back = i === 0 || samples[i - 1].at < since ? 0 : Math.max(0, samples[i].at - since);
  return { backInServiceSeconds: back / 1000, outOfServiceSeconds: out / 1000 };
}
