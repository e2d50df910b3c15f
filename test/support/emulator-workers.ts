import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EmulatorWorkerMessage, EmulatorWorkerSetup, EmulatorWorkerStart } from './emulator-worker.js';

const WORKER = fileURLToPath(new URL('./emulator-worker.ts', import.meta.url));
const REGISTER = fileURLToPath(new URL('./ts-register.mjs', import.meta.url));

type Done = Extract<EmulatorWorkerMessage, { type: 'done' }>;

/** Child processes calling the emulator through limiters that share Redis (see emulator-worker.ts). */
export class EmulatorWorkers {
  private readonly children: ChildProcess[] = [];
  private readonly done: Promise<Done>[] = [];

  private start(setup: EmulatorWorkerSetup): Promise<void> {
    const child = fork(WORKER, [JSON.stringify(setup)], {
      execArgv: ['--enable-source-maps', '--import', REGISTER],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.children.push(child);
    let onReady!: () => void;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    const done = new Promise<Done>((resolve, reject) => {
      child.on('message', (message: EmulatorWorkerMessage) => {
        if (message.type === 'ready') onReady();
        else resolve(message);
      });
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`worker ${setup.worker} exited (code ${code}, signal ${signal}) before sending its log`)));
    });
    this.done.push(done);
    // A worker that dies before it is ready fails through `done`.
    return Promise.race([ready, done.then(() => undefined)]);
  }

  /**
   * Starts `count` workers and resolves once all are ready. The first transpiles the library
   * into the shared cache; the others then start from it instead of all compiling at once.
   */
  async startAll(count: number, setup: (worker: number) => EmulatorWorkerSetup): Promise<void> {
    await this.start(setup(0));
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => this.start(setup(i + 1))));
  }

  /** Starts every worker's callers, to stop at `stopAt` (local ms); resolves with their logs. */
  run(stopAt: number): Promise<Done[]> {
    const start: EmulatorWorkerStart = { type: 'start', stopAt };
    for (const child of this.children) child.send(start);
    return Promise.all(this.done);
  }

  /** Kills workers still running (after a failed test). */
  stop(): void {
    for (const child of this.children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    }
  }
}
