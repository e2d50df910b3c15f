import { connect as netConnect } from 'node:net';
import { type ConnectionOptions as TlsOptions, connect as tlsConnect } from 'node:tls';
import { RedisConfigurationError } from '../core/errors.js';
import { hintFor, isTlsError, messageOf } from './redis-errors.js';

/**
 * A TLS handshake with host:port: `'ok'`, the handshake's error, or `'none'` when nothing
 * answered in time. Without options it accepts any certificate (is TLS spoken at all?).
 */
function handshake(host: string, port: number, options: TlsOptions | undefined, timeoutMs: number): Promise<'ok' | 'none' | Error> {
  return new Promise((resolve) => {
    const servername = /^[\d.:]+$/.test(host) ? undefined : host;
    const socket = tlsConnect({ host, port, servername, ...(options ?? { rejectUnauthorized: false }) });
    let answered = false;
    const finish = (answer: 'ok' | 'none' | Error) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish('none'), timeoutMs);
    socket.once('secureConnect', () => finish('ok'));
    // `on`, not `once`: a refused certificate can be followed by the server's alert as a second
    // error, which would otherwise be thrown as unhandled.
    socket.on('error', (error: Error) => finish(error));
  });
}

/** Whether a plain-text Redis answers on host:port (so a TLS connection was the mistake). */
function speaksPlainRedis(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    const finish = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    // Any RESP reply, +PONG or an -ERR/-NOAUTH, means a plain-text Redis.
    socket.once('data', (data) => finish(data[0] === 0x2b || data[0] === 0x2d));
    socket.on('error', () => finish(false));
  });
}

/**
 * Why a server the limiter could not reach refused it, when the cause is TLS: the server expects
 * TLS and the limiter speaks plain text, the handshake fails (a certificate, a protocol), or the
 * server speaks plain text to a TLS client. Throws a `RedisConfigurationError` that says which;
 * returns when none of these is the cause.
 */
export async function explainUnreachable(
  endpoint: { readonly host: string; readonly port: number; readonly tls?: TlsOptions },
  error: unknown,
): Promise<void> {
  const { host, port } = endpoint;
  if (!endpoint.tls && (await handshake(host, port, undefined, 1000)) === 'ok') {
    throw new RedisConfigurationError(
      `verify: ${host}:${port} expects TLS but the limiter connects in plain text: use a rediss:// URL or the tls option`,
      { cause: error },
    );
  }
  // A Cluster hides its nodes' TLS errors (they happen on its internal connections): ask.
  const attempt = endpoint.tls ? await handshake(host, port, endpoint.tls, 1000) : 'ok';
  // Compared by value, not `instanceof Error`: socket errors may come from another realm.
  if (attempt !== 'ok' && attempt !== 'none' && isTlsError(attempt)) {
    throw new RedisConfigurationError(`verify: the TLS handshake with ${host}:${port} failed: ${messageOf(attempt)}. ${hintFor(attempt)}`, {
      cause: attempt,
    });
  }
  if (endpoint.tls && (await speaksPlainRedis(host, port, 1000))) {
    throw new RedisConfigurationError(
      `verify: ${host}:${port} speaks plain text but the limiter connects with TLS (the TLS handshake failed: no answer): use a redis:// URL and no tls option, or the server's TLS port`,
      { cause: error },
    );
  }
}
