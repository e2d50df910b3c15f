import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Child processes that share a limiter through Redis, for the tests that need real processes
// (test/core/multi-process.spec.ts, the emulator specs). A worker script takes its setup as JSON
// on the command line, connects, tells its parent `{ type: 'ready' }`, waits for
// `{ type: 'start', stopAt }`, works until then and sends its log as `{ type: 'done', ... }`.

const REGISTER = fileURLToPath(new URL('./ts-register.mjs', import.meta.url));

/** What the parent sends to start every worker's callers, once all are ready. */
export interface WorkerStart {
  readonly type: 'start';
  /** Local epoch ms at which the callers stop. */
  readonly stopAt: number;
}

/** For a worker script: sends `message` to the parent, resolving once it is handed over. */
export function tellParent(message: unknown): Promise<void> {
  return new Promise<void>((resolve, reject) => process.send!(message, (error: Error | null) => (error ? reject(error) : resolve())));
}

export class ChildWorkers<Setup extends { readonly worker: number }, Done extends { readonly type: 'done' }> {
  private readonly script: string;
  private readonly children: ChildProcess[] = [];
  private readonly done: Promise<Done>[] = [];

  /** `script`: the worker's .ts file, run through the test's TypeScript loader. */
  constructor(script: URL) {
    this.script = fileURLToPath(script);
  }

  private start(setup: Setup): Promise<void> {
    const child = fork(this.script, [JSON.stringify(setup)], {
      execArgv: ['--enable-source-maps', '--import', REGISTER],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.children.push(child);
    let onReady!: () => void;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    const done = new Promise<Done>((resolve, reject) => {
      child.on('message', (message: { type: 'ready' } | Done) => {
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
  async startAll(count: number, setup: (worker: number) => Setup): Promise<void> {
    await this.start(setup(0));
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => this.start(setup(i + 1))));
  }

  /** Starts every worker's callers, to stop at `stopAt` (local ms); resolves with their logs. */
  run(stopAt: number): Promise<Done[]> {
    const start: WorkerStart = { type: 'start', stopAt };
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
