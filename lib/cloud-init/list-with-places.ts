/**
 * A list in the order things were added, where a place can be kept for a role that adds later:
 * while the kept place is filled, additions land there, as if they had been added when it was kept.
 */
export class ListWithPlaces<T> {
  /** The items; a nested list is a kept place. */
  private readonly entries: Array<T | T[]> = [];
  /** The place additions go to while it is filled. */
  private filling?: T[];

  public push(item: T): void {
    (this.filling ?? this.entries).push(item);
  }

  /** Keeps the current end of the list; the returned function runs `add` with additions going there. */
  public keepPlace(): (add: () => void) => void {
    const place: T[] = [];
    this.entries.push(place);
    return (add) => {
      const outer = this.filling;
      this.filling = place;
      try {
        add();
      } finally {
        this.filling = outer;
      }
    };
  }

  /** The index the next addition takes in {@link items}. */
  public nextIndex(): number {
    let index = 0;
    for (const entry of this.entries) {
      index += Array.isArray(entry) ? entry.length : 1;
      if (entry === this.filling) break;
    }
    return index;
  }

  /** The items in order, kept places filled in. */
  public items(): T[] {
    return this.entries.flatMap((entry) => (Array.isArray(entry) ? entry : [entry]));
  }
}
