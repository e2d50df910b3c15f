import { type ChildProcess, fork, type Serializable } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Child processes that share a limiter through Redis, for the tests that need real processes
// (test/core/multi-process.spec.ts, the emulator specs). A worker script takes its setup as JSON
// on the command line, connects, tells its parent `{ type: 'ready' }`, waits for
// `{ type: 'start', stopAt }`, works until then and sends its log as `{ type: 'done', ... }`.
// Any other message goes to the parent's `onMessage`.

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
  /** Messages other than ready and done, by worker index. */
  onMessage: (worker: number, message: unknown) => void = () => undefined;

  /** `script`: the worker's .ts file, run through the test's TypeScript loader. */
  constructor(script: URL) {
    this.script = fileURLToPath(script);
  }

  private start(setup: Setup): Promise<void> {
    const child = fork(this.script, [JSON.stringify(setup)], {
      execArgv: ['--enable-source-maps', '--import', REGISTER],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const index = this.children.length;
    this.children.push(child);
    let onReady!: () => void;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    const done = new Promise<Done>((resolve, reject) => {
      child.on('message', (message: { type: string }) => {
        if (message.type === 'ready') onReady();
        else if (message.type === 'done') resolve(message as Done);
        else this.onMessage(index, message);
      });
      child.once('error', reject);
      child.once('exit', (code, signal) =>
        reject(new Error(`worker ${setup.worker} exited (code ${code}, signal ${signal}) before sending its log`)),
      );
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
    this.begin(stopAt);
    return Promise.all(this.done);
  }

  /** Starts every worker's callers, to stop at `stopAt` (local ms) unless told to stop sooner. */
  begin(stopAt: number): void {
    const start: WorkerStart = { type: 'start', stopAt };
    for (const child of this.children) child.send(start);
  }

  /** Worker `worker`'s log, once it sends it. */
  finished(worker: number): Promise<Done> {
    return this.done[worker];
  }

  /** Sends `message` to worker `worker`. */
  tell(worker: number, message: Serializable): void {
    this.children[worker].send(message);
  }

  /** Kills worker `worker` at once (SIGKILL: no cleanup runs); resolves once it has exited. */
  async kill(worker: number): Promise<void> {
    const child = this.children[worker];
    // Its log will never come: that is the point.
    this.done[worker].catch(() => undefined);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills workers still running (after a failed test), and forgets every worker for the next test. */
  stop(): void {
    for (const done of this.done.splice(0)) done.catch(() => undefined);
    for (const child of this.children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    }
    this.onMessage = () => undefined;
  }
}
