import { createHmac, generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';

/** How {@link signJwt} signs: HMAC-SHA256 with a secret, RSA or ECDSA P-256 with a private key, or not at all. */
export type JwtSigner = { alg: 'HS256'; secret: string | Buffer } | { alg: 'RS256' | 'ES256'; privateKey: KeyObject; kid?: string } | { alg: 'none' };

const b64 = (value: Buffer | string) => Buffer.from(value).toString('base64url');

/**
 * A compact JWS (RFC 7515) of `payload`, built with node:crypto only, so that tests can also forge tokens a JWT
 * library would refuse to produce (`alg: none`, HS256 keyed with a public key). `iat` is added when absent.
 */
export function signJwt(payload: Record<string, unknown>, signer: JwtSigner): string {
  const header: Record<string, unknown> = { alg: signer.alg, typ: 'JWT' };
  if ('kid' in signer && signer.kid) header.kid = signer.kid;
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify({ iat: Math.floor(Date.now() / 1000), ...payload }))}`;
  switch (signer.alg) {
    case 'none':
      return `${input}.`;
    case 'HS256':
      return `${input}.${b64(createHmac('sha256', signer.secret).update(input).digest())}`;
    case 'RS256':
      return `${input}.${b64(sign('sha256', Buffer.from(input), signer.privateKey))}`;
    case 'ES256': // JWS wants the raw r||s form (RFC 7518 §3.4), not DER
      return `${input}.${b64(sign('sha256', Buffer.from(input), { key: signer.privateKey, dsaEncoding: 'ieee-p1363' }))}`;
  }
}

/** Seconds since the epoch, `offset` seconds from now. */
export const epoch = (offset = 0) => Math.floor(Date.now() / 1000) + offset;

/** A key pair and its public JWK as a JWKS serves it. */
export interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Generates an RS256 (RSA 2048) or ES256 (P-256) key pair. */
export function testKey(alg: 'RS256' | 'ES256', kid: string): TestKey {
  const pair = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg, ...pair };
}

/** A local HTTP server publishing a JSON Web Key Set (RFC 7517) at `url`; counts the fetches. */
export interface JwksServer {
  url: string;
  fetches: () => number;
  close(): Promise<void>;
}

/** Serves the public halves of `keys` as a JWKS on 127.0.0.1 (a real server, as an identity provider would be). */
export async function startJwksServer(keys: TestKey[]): Promise<JwksServer> {
  let fetches = 0;
  const body = JSON.stringify({
    keys: keys.map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' })),
  });
  const server: Server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    fetches: () => fetches,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
