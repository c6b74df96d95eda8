/** The bounded load a rehearsal sends while a change applies, unless told otherwise. */
export const REHEARSAL_LOAD_DEFAULTS = {
  /** Requests per consumer and service, at most. */
  loadRequests: 20000,
  /** Seconds of load, at most. */
  loadSeconds: 900,
  /** Seconds the providers have after the change to be back in service. */
  settleSeconds: 120,
  /** Seconds every provider must stay in service to count as back. */
  stableSeconds: 20,
} as const;
