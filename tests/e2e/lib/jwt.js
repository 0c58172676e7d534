// A small JWT signer for tests (node:crypto only).
//
//   sign({ iss: 'app', room: '*' }, { alg: 'HS256', key: 'secret' })
//   sign(payload, { alg: 'RS256', key: rsa.privateKey })
//   sign(payload, { alg: 'ES256', key: ec.privateKey })   // JOSE r||s signature
//   sign(payload, { alg: 'none' })                         // empty signature
//   sign(payload, { alg: 'HS256', key, header: { alg: 'RS256' } })  // lie in the header

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { recordSecret } from './secrets.js';

export function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

const HMAC = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
const RSA = { RS256: 'sha256', RS384: 'sha384', RS512: 'sha512' };
const EC = { ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' };

/** Sign `payload` as a compact JWS. `header` entries override the generated header. */
export function sign(payload, { alg = 'HS256', key, header = {} } = {}) {
  const head = { alg, typ: 'JWT', ...header };
  const input = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(payload))}`;
  let sig;
  if (alg === 'none') {
    sig = Buffer.alloc(0);
  } else if (HMAC[alg]) {
    if (key === undefined) throw new Error(`${alg} needs a key`);
    sig = crypto.createHmac(HMAC[alg], key).update(input).digest();
  } else if (RSA[alg]) {
    sig = crypto.sign(RSA[alg], Buffer.from(input), key);
  } else if (EC[alg]) {
    sig = crypto.sign(EC[alg], Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  } else {
    throw new Error(`unsupported alg ${alg}`);
  }
  const token = `${input}.${b64url(sig)}`;
  // Secret hygiene (lib/secrets.js): no log may ever show a token or its signature.
  recordSecret(token);
  recordSecret(b64url(sig));
  return token;
}

/** Decode without verifying (for assertions on what we built). */
export function decode(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()),
  };
}

export const now = () => Math.floor(Date.now() / 1000);

/** RSA key pair as PEM strings ({ publicKey: SPKI, privateKey: PKCS#8 }). */
export function rsaKeyPair(modulusLength = 2048) {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** EC key pair as PEM strings; P-256 for ES256. */
export function ecKeyPair(namedCurve = 'prime256v1') {
  return crypto.generateKeyPairSync('ec', {
    namedCurve,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** Write a PEM (or any text) to a fresh temp file; returns { path, cleanup }. */
export function writeKeyFile(pem, name = 'public.pem') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-key-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, pem);
  return { path: file, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
