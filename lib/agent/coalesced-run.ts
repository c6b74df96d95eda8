/**
 * Runs an async step one at a time, with one time for the next run. Every reason to run — an
 * event, a retry, a rate limit running out, a periodic check — asks for a run within some delay;
 * the earliest time asked for wins, and every ask before it is served by that one run. An ask
 * while the step runs makes it run once more right after, so a burst of events costs at most two
 * runs and the last event is never missed.
 */
export class CoalescedRun {
  private active = false;
  private again = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private nextAt?: number;

  /**
   * @param step what to run
   * @param idleMs when set, a run is asked for this long after each run at the latest (a periodic
   * check that any other ask brings forward)
   */
  public constructor(private readonly step: () => Promise<void>, private readonly idleMs?: number) {}

  /** Whether the step is running now. */
  public get running(): boolean {
    return this.active;
  }

  /** When the next run is due (epoch ms), if one is waiting for its time. */
  public get nextRunAt(): number | undefined {
    return this.nextAt;
  }

  /** Asks for a run now. */
  public request(): void {
    this.requestWithin(0);
  }

  /** Asks for a run within `ms`: sooner if something else asks for an earlier one. */
  public requestWithin(ms: number): void {
    if (this.stopped) return;
    if (ms <= 0 && this.active) {
      this.again = true;
      return;
    }
    const at = Date.now() + Math.max(0, ms);
    if (this.nextAt !== undefined && this.nextAt <= at) return;
    clearTimeout(this.timer);
    this.nextAt = at;
    if (ms <= 0) {
      this.fire();
      return;
    }
    this.timer = setTimeout(() => this.fire(), ms);
  }

  /** No run starts after this; one in progress finishes. */
  public stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.nextAt = undefined;
  }

  private fire(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.nextAt = undefined;
    if (this.stopped) return;
    if (this.active) {
      this.again = true;
      return;
    }
    this.active = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.step();
      } while (this.again && !this.stopped);
    } finally {
      this.active = false;
      if (this.idleMs !== undefined) this.requestWithin(this.idleMs);
    }
  }
}
