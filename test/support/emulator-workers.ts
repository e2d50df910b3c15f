import { ChildWorkers } from './child-workers.js';
import type { EmulatorWorkerMessage, EmulatorWorkerSetup } from './emulator-worker.js';

/** Child processes calling the emulator through limiters that share Redis (see emulator-worker.ts). */
export class EmulatorWorkers extends ChildWorkers<EmulatorWorkerSetup, Extract<EmulatorWorkerMessage, { type: 'done' }>> {
  constructor() {
    super(new URL('./emulator-worker.ts', import.meta.url));
  }
}
