/**
 * Test certificates, made at test time with the openssl CLI (Debian package `openssl`): a private CA
 * and leaf certificates it signs for given names. Nothing is committed; each run makes its own.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'

function openssl (args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' })
  if (r.error !== undefined) throw new Error(`the tests need the openssl CLI (Debian package "openssl"): ${r.error.message}`)
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`)
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

export interface Leaf {
  /** PEM file paths */
  cert: string
  key: string
  /** the certificate's serial number (hex), to tell two certificates for the same name apart */
  serial: string
}

export class Pki {
  readonly dir: string
  /** the CA's certificate (PEM file path) */
  readonly ca: string
  private n = 0

  constructor (name = 'claylb test CA') {
    this.dir = mkdtempSync(join(tmpdir(), 'claylb-pki-'))
    openssl(['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], this.dir)
    this.ca = join(this.dir, 'ca.pem')
  }

  get caPem (): string {
    return readFileSync(this.ca, 'utf8')
  }

  /** A certificate for `names` (DNS names or IP addresses), signed by this CA. */
  issue (names: string[], file = `leaf${++this.n}`): Leaf {
    const san = names.map((n) => /^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`).join(',')
    writeFileSync(join(this.dir, `${file}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`)
    openssl(['req', ...EC, '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${names[0]}`], this.dir)
    openssl(['x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${file}.pem`,
      '-days', '2', '-extfile', `${file}.ext`], this.dir)
    const cert = join(this.dir, `${file}.pem`)
    return { cert, key: join(this.dir, `${file}.key`), serial: new X509Certificate(readFileSync(cert)).serialNumber }
  }
}
