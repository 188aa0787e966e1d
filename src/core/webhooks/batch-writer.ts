/**
 * Writes items in batches, one statement per batch (group commit): an item waits for the batch
 * being written to finish, and then goes with everything that came in meanwhile. The database
 * cost is per statement, not per row, so under load many items share one statement, while a
 * lone item is written after a single turn of the event loop.
 */
export class BatchWriter<T> {
  private queue: { item: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private writing = false;

  /**
   * @param writeAll writes a batch in one statement.
   * @param opts.maxBatch at most this many items per statement.
   * @param opts.keyOf items with the same key go in different statements (two outcomes of one delivery).
   */
  constructor(
    private readonly writeAll: (items: T[]) => Promise<void>,
    private readonly opts: { maxBatch: number; keyOf: (item: T) => unknown },
  ) {}

  /** Resolves once the item is written; rejects if its statement failed. */
  write(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.writing) {
        this.writing = true;
        void this.drain();
      }
    });
  }

  private async drain() {
    while (this.queue.length > 0) {
      // A batch is formed only after the pending I/O of this turn of the event loop has run, so
      // it takes every item that came in meanwhile (on the embedded database a statement holds
      // the thread while it runs: the answers that came in during it are all waiting).
      await new Promise<void>((resolve) => setImmediate(resolve));
      const batch = this.takeBatch();
      try {
        await this.writeAll(batch.map((b) => b.item));
        for (const b of batch) b.resolve();
      } catch (err) {
        if (batch.length === 1) batch[0]!.reject(err);
        // One item the database refuses must not fail the others: each is tried alone.
        else for (const b of batch) await this.writeAll([b.item]).then(b.resolve, b.reject);
      }
    }
    this.writing = false;
  }

  private takeBatch() {
    const batch: typeof this.queue = [];
    const rest: typeof this.queue = [];
    const keys = new Set<unknown>();
    for (const entry of this.queue) {
      const key = this.opts.keyOf(entry.item);
      const fits = batch.length < this.opts.maxBatch && !keys.has(key);
      if (fits) keys.add(key);
      (fits ? batch : rest).push(entry);
    }
    this.queue = rest;
    return batch;
  }
}
