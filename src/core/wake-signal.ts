import { EventEmitter } from 'node:events';

/** Lets the workers of this process know that new work may be due (an outbox row was written). */
export class WakeSignal {
  private readonly emitter = new EventEmitter().setMaxListeners(0);

  /** Tells this process's workers that something may be due. */
  wake() {
    this.emitter.emit('wake');
  }

  onWake(fn: () => void): () => void {
    this.emitter.on('wake', fn);
    return () => this.emitter.off('wake', fn);
  }
}
