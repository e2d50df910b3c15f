import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on loopback (nothing listens on it once this resolves). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function ping(port: number, extra: readonly string[] = []): boolean {
  const r = spawnSync('redis-cli', ['-p', String(port), ...extra, 'ping'], { encoding: 'utf8', timeout: 2000 });
  return r.stdout?.trim() === 'PONG' || r.stdout?.includes('NOAUTH') === true;
}

/** How to run a server other than the plain default. */
export interface OwnRedisServerOptions {
  /** Port to listen on (default: a free one). */
  readonly port?: number;
  /** A config file, passed first: Sentinel needs one it can rewrite. */
  readonly configFile?: string;
  /** Listen with TLS only, on the port (`--port 0 --tls-port P`); pass the certificates in extraArgs. */
  readonly tlsOnly?: boolean;
  /** Extra redis-cli arguments for the liveness PING (`--tls --cacert ...`). */
  readonly pingArgs?: readonly string[];
}

/**
 * A redis-server of a test's own, for tests that stop, restart or reconfigure it. Stops exactly
 * what it started.
 */
export class OwnRedisServer {
  private child?: ChildProcess;
  private readonly dir = mkdtempSync(join(tmpdir(), 'llmrl-own-redis-'));

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
    private readonly options: OwnRedisServerOptions = {},
  ) {}

  static async start(extraArgs: string[] = [], options: OwnRedisServerOptions = {}): Promise<OwnRedisServer> {
    const server = new OwnRedisServer(options.port ?? (await freePort()), extraArgs, options);
    await server.startAgain();
    return server;
  }

  /** The folder the server keeps its files in (removed by `stop`). */
  get directory(): string {
    return this.dir;
  }

  /** The server's process id while it runs. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** Whether the server process is alive (a stopped one with SIGSTOP counts as alive). */
  get alive(): boolean {
    return this.running;
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  freeze(): void {
    if (this.running) this.child!.kill('SIGSTOP');
  }

  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void {
    if (this.running) this.child!.kill('SIGCONT');
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** (Re)starts the server on the same port and resolves once it answers. */
  async startAgain(): Promise<void> {
    if (this.running) return;
    const { configFile, tlsOnly, pingArgs } = this.options;
    const listen = tlsOnly ? ['--port', '0', '--tls-port', String(this.port)] : ['--port', String(this.port)];
    const child = spawn(
      'redis-server',
      [...(configFile ? [configFile] : []), ...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.extraArgs],
      { stdio: 'ignore' },
    );
    this.child = child;
    const until = Date.now() + 5000;
    while (!ping(this.port, pingArgs)) {
      if (child.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited with ${child.exitCode}`);
      if (Date.now() > until) throw new Error(`redis-server on port ${this.port} did not answer within 5 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Kills the server (SIGKILL: no goodbye to clients) and resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
