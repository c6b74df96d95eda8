/**
 * Runs an async step one at a time. A request while the step runs makes it run once more right
 * after, so a burst of events costs at most two runs and the last event is never missed.
 */
export class CoalescedRun {
  private active = false;
  private again = false;
  private stopped = false;

  public constructor(private readonly step: () => Promise<void>) {}

  /** Whether the step is running now. */
  public get running(): boolean {
    return this.active;
  }

  public request(): void {
    if (this.stopped) return;
    if (this.active) {
      this.again = true;
      return;
    }
    this.active = true;
    void this.loop();
  }

  /** No run starts after this; one in progress finishes. */
  public stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.step();
      } while (this.again && !this.stopped);
    } finally {
      this.active = false;
    }
  }
}
