import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OwnRedisServer } from './redis-server.js';

/** Certificates made for one test run, in PEM. */
export interface TestCertificates {
  readonly dir: string;
  /** The CA that signed the server's certificate. */
  readonly ca: Buffer;
  /** A CA that signed nothing the server has. */
  readonly otherCa: Buffer;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function makeCa(dir: string, name: string): void {
  openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-nodes',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  );
}

/**
 * A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost (and nothing
 * else, so other host names fail verification), plus an unrelated CA. Made with openssl.
 */
export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'llmrl-tls-'));
  makeCa(dir, 'llmrl-test-ca');
  makeCa(dir, 'llmrl-other-ca');
  openssl(
    dir,
    'req',
    '-new',
    '-nodes',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'llmrl-test-ca.crt',
    '-CAkey',
    'llmrl-test-ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'san.cnf',
  );
  return {
    dir,
    ca: readFileSync(join(dir, 'llmrl-test-ca.crt')),
    otherCa: readFileSync(join(dir, 'llmrl-other-ca.crt')),
    caFile: join(dir, 'llmrl-test-ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
  };
}

/** A redis-server that speaks TLS only, with certificates of its own. Stops what it started. */
export class OwnTlsRedis {
  private constructor(
    readonly server: OwnRedisServer,
    readonly certificates: TestCertificates,
  ) {}

  static async start(extraArgs: string[] = []): Promise<OwnTlsRedis> {
    const certificates = makeCertificates();
    try {
      const server = await OwnRedisServer.start(
        [
          '--tls-cert-file',
          certificates.certFile,
          '--tls-key-file',
          certificates.keyFile,
          '--tls-ca-cert-file',
          certificates.caFile,
          '--tls-auth-clients',
          'no',
          ...extraArgs,
        ],
        { tlsOnly: true, pingArgs: ['--tls', '--cacert', certificates.caFile] },
      );
      return new OwnTlsRedis(server, certificates);
    } catch (error) {
      rmSync(certificates.dir, { recursive: true, force: true });
      throw error;
    }
  }

  get port(): number {
    return this.server.port;
  }

  async stop(): Promise<void> {
    await this.server.stop();
    rmSync(this.certificates.dir, { recursive: true, force: true });
  }
}
