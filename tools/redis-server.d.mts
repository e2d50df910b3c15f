export declare const INSTALL_HINT: string;

/** A free TCP port on loopback (nothing listens on it once this resolves). */
export declare function freePort(): Promise<number>;

/** Whether redis-server is on PATH. */
export declare function redisServerInstalled(): Promise<boolean>;

/** How to run a server other than the plain default. */
export interface RedisServerOptions {
  /** Port to listen on (default: a free one). */
  readonly port?: number;
  /** A config file, passed first: Sentinel needs one it can rewrite. */
  readonly configFile?: string;
  /** Listen with TLS only, on the port (`--port 0 --tls-port P`); pass the certificates in extraArgs. */
  readonly tlsOnly?: boolean;
  /** Extra redis-cli arguments for the liveness PING (`--tls --cacert ...`). */
  readonly pingArgs?: readonly string[];
  /** In a process group of its own, not holding this process open. */
  readonly detached?: boolean;
}

/** A redis-server process of the caller's own, on loopback. */
export declare class RedisServerProcess {
  readonly port: number;
  static start(extraArgs?: string[], options?: RedisServerOptions): Promise<RedisServerProcess>;
  get url(): string;
  /** The folder the server keeps its files in (removed by `stop`). */
  get directory(): string;
  /** The process id while it runs. */
  get pid(): number | undefined;
  /** Whether the process is alive (a frozen one counts as alive). */
  get alive(): boolean;
  /** (Re)starts the server on the same port and resolves once it answers. */
  startAgain(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  freeze(): void;
  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void;
  /** Kills the server (SIGKILL) and resolves once it is gone. */
  kill(): Promise<void>;
  /** Kills the server and removes its folder. */
  stop(): Promise<void>;
}
