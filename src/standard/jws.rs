//! JWS signature checks: HMAC-SHA256/384/512 and ECDSA P-256 with SHA-256
//! (JWS's fixed `r || s` form) with ring (already in the build through
//! rustls); RSASSA-PKCS1-v1_5 with SHA-256 (2048 to 8192-bit keys) with
//! the system's OpenSSL (libcrypto 3), each key parsed once. Public keys
//! come as PEM: `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY`
//! (PKCS#1), or as JWK components; the few DER fields needed are read here.
//!
//! ring rather than jsonwebtoken's pure-Rust backend: it verifies about ten
//! times faster (issue 10), and the claims are decoded once by our own code
//! instead of again by jsonwebtoken. OpenSSL for RSA (issue 17): ring 0.17
//! has no parsed RSA public key, so every verification parsed the modulus
//! again and recomputed its Montgomery constants, a third of the cost
//! (callgrind: 404k instructions per 2048-bit verification with ring,
//! 134k of them in `from_modulus_and_exponent`; 293k with OpenSSL and the
//! key and its verify context kept; CPU time 26 us vs 20 us, where
//! `openssl speed rsa2048` verifies in 19 us). The checks stay ring's:
//! modulus of 2048 to 8192 bits, odd; public exponent odd, 3 to 2^33 - 1;
//! a signature exactly as long as the modulus; PKCS#1 v1.5 padding with a
//! SHA-256 DigestInfo (OpenSSL compares the whole encoding).

use std::sync::Mutex;

use data_encoding::BASE64;
use openssl::bn::BigNum;
use openssl::pkey::{PKey, Public};
use openssl::pkey_ctx::PkeyCtx;
use ring::{digest, hmac, signature};

/// A verification key for one pinned algorithm.
pub enum SigKey {
    Hmac(hmac::Key),
    /// An RSA public key, parsed once (RS256).
    Rsa(RsaKey),
    /// Uncompressed P-256 point.
    EcP256(Vec<u8>),
}

/// RSA key sizes accepted, in bits (as ring's `RSA_PKCS1_2048_8192_SHA256`).
const RSA_MIN_BITS: u32 = 2048;
const RSA_MAX_BITS: u32 = 8192;

/// An RSA public key checked and parsed once, with an OpenSSL verify
/// context set up for PKCS#1 v1.5 + SHA-256 (kept: setting one up costs
/// about as much as the hash of a token).
pub struct RsaKey {
    /// Locked for one verification at a time (a context is not shareable).
    ctx: Mutex<PkeyCtx<Public>>,
    /// Modulus length in bytes: the only signature length accepted.
    len: usize,
}

impl RsaKey {
    /// From the big-endian modulus and public exponent, or why not.
    fn from_components(n: &[u8], e: &[u8]) -> Result<RsaKey, &'static str> {
        let n = BigNum::from_slice(n).map_err(|_| "an RSA modulus OpenSSL cannot read")?;
        let e = BigNum::from_slice(e).map_err(|_| "an RSA exponent OpenSSL cannot read")?;
        let bits = n.num_bits().max(0) as u32;
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err("an RSA key of fewer than 2048 or more than 8192 bits");
        }
        if !n.is_bit_set(0) {
            return Err("an RSA modulus that is even");
        }
        if !e.is_bit_set(0) || e.num_bits() > 33 || e.num_bits() < 2 {
            return Err("an RSA public exponent that is even, below 3 or above 2^33 - 1");
        }
        let len = (bits as usize).div_ceil(8);
        let rsa = openssl::rsa::Rsa::from_public_components(n, e).map_err(|_| "an RSA key OpenSSL refuses")?;
        let pkey = PKey::from_rsa(rsa).map_err(|_| "an RSA key OpenSSL refuses")?;
        let ctx = (|| {
            let mut ctx = PkeyCtx::new(&pkey)?;
            ctx.verify_init()?;
            ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1)?;
            ctx.set_signature_md(openssl::md::Md::sha256())?;
            Ok::<_, openssl::error::ErrorStack>(ctx)
        })()
        .map_err(|_| "an RSA key OpenSSL cannot verify with")?;
        Ok(RsaKey { ctx: Mutex::new(ctx), len })
    }

    /// From PKCS#1 `RSAPublicKey` DER: SEQUENCE { INTEGER n, INTEGER e }.
    fn from_pkcs1(der: &[u8]) -> Result<RsaKey, &'static str> {
        let bad = "not a PKCS#1 RSA public key";
        let (0x30, body, rest) = tlv(der).ok_or(bad)? else { return Err(bad) };
        let (0x02, n, after_n) = tlv(body).ok_or(bad)? else { return Err(bad) };
        let (0x02, e, after_e) = tlv(after_n).ok_or(bad)? else { return Err(bad) };
        if !rest.is_empty() || !after_e.is_empty() {
            return Err(bad);
        }
        // DER INTEGERs are signed: a modulus or exponent is positive.
        if n.first().is_none_or(|b| b & 0x80 != 0) || e.first().is_none_or(|b| b & 0x80 != 0) {
            return Err(bad);
        }
        RsaKey::from_components(n, e)
    }

    /// Does `sig` sign `message` (RSASSA-PKCS1-v1_5, SHA-256)?
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        if sig.len() != self.len {
            return false;
        }
        let hash = digest::digest(&digest::SHA256, message);
        let mut ctx = self.ctx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // `verify` drains OpenSSL's error queue of this thread on failure,
        // which the host's TLS (the same libcrypto) also reads.
        matches!(ctx.verify(hash.as_ref(), sig), Ok(true))
    }
}

impl SigKey {
    pub fn hmac(algorithm: &str, secret: &[u8]) -> Option<SigKey> {
        let alg = match algorithm {
            "HS256" => hmac::HMAC_SHA256,
            "HS384" => hmac::HMAC_SHA384,
            "HS512" => hmac::HMAC_SHA512,
            _ => return None,
        };
        Some(SigKey::Hmac(hmac::Key::new(alg, secret)))
    }

    /// An RSA public key from PEM, or why not.
    pub fn rsa_pem(pem: &[u8]) -> Result<SigKey, &'static str> {
        match pem_der(pem)? {
            (Label::Pkcs1Rsa, der) => RsaKey::from_pkcs1(&der).map(SigKey::Rsa),
            (Label::Spki, der) => match spki(&der).ok_or("not a SubjectPublicKeyInfo")? {
                (SpkiAlg::Rsa, key) => RsaKey::from_pkcs1(key).map(SigKey::Rsa),
                _ => Err("not an RSA key"),
            },
        }
    }

    /// A P-256 public key from PEM, or why not.
    pub fn ec_pem(pem: &[u8]) -> Result<SigKey, &'static str> {
        match pem_der(pem)? {
            (Label::Spki, der) => match spki(&der).ok_or("not a SubjectPublicKeyInfo")? {
                (SpkiAlg::EcP256, point) => Ok(SigKey::EcP256(point.to_vec())),
                (SpkiAlg::EcOther, _) => Err("an EC key on another curve than P-256"),
                _ => Err("not an EC key"),
            },
            _ => Err("not an EC key"),
        }
    }

    /// A key from one JWK (RFC 7517): `kty` RSA (`n`, `e`) or EC P-256
    /// (`x`, `y`); the algorithm it verifies (RS256 or ES256), or why not.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<(SigKey, &'static str), &'static str> {
        use data_encoding::BASE64URL_NOPAD;
        let field = |name: &str| -> Result<Vec<u8>, &'static str> {
            let v = jwk.get(name).and_then(|v| v.as_str()).ok_or("a JWK field is missing")?;
            BASE64URL_NOPAD.decode(v.trim_end_matches('=').as_bytes()).map_err(|_| "a JWK field is not base64url")
        };
        match jwk.get("kty").and_then(|v| v.as_str()) {
            Some("RSA") => Ok((SigKey::Rsa(RsaKey::from_components(&field("n")?, &field("e")?)?), "RS256")),
            Some("EC") => {
                if jwk.get("crv").and_then(|v| v.as_str()) != Some("P-256") {
                    return Err("an EC JWK on another curve than P-256");
                }
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("an EC JWK with coordinates of the wrong size");
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Ok((SigKey::EcP256(point), "ES256"))
            }
            _ => Err("a JWK of another type than RSA or EC"),
        }
    }

    /// A public key from PEM, RSA or P-256, with the algorithm it verifies.
    pub fn public_pem(pem: &[u8]) -> Result<(SigKey, &'static str), &'static str> {
        match SigKey::rsa_pem(pem) {
            Ok(k) => Ok((k, "RS256")),
            // An RSA key refused for what it is (too small...) says so.
            Err(why) if why.starts_with("an RSA") => Err(why),
            Err(_) => SigKey::ec_pem(pem).map(|k| (k, "ES256")).map_err(|_| "not an RSA or P-256 public key"),
        }
    }

    /// The modulus size of an RSA key, in bits rounded up to whole bytes
    /// (`None` for other keys). Keys outside 2048..=8192 bits are refused
    /// when they are parsed.
    pub fn rsa_bits(&self) -> Option<usize> {
        match self {
            SigKey::Rsa(k) => Some(k.len * 8),
            _ => None,
        }
    }

    /// Does `sig` sign `message`?
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            SigKey::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            SigKey::Rsa(key) => key.verify(message, sig),
            SigKey::EcP256(point) => signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

enum Label {
    Spki,
    Pkcs1Rsa,
}

/// The DER inside the first `PUBLIC KEY` or `RSA PUBLIC KEY` PEM block.
fn pem_der(pem: &[u8]) -> Result<(Label, Vec<u8>), &'static str> {
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text")?;
    for (label, begin, end) in [
        (Label::Spki, "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"),
        (Label::Pkcs1Rsa, "-----BEGIN RSA PUBLIC KEY-----", "-----END RSA PUBLIC KEY-----"),
    ] {
        if let Some(start) = text.find(begin) {
            let body = &text[start + begin.len()..];
            let body = &body[..body.find(end).ok_or("PEM block has no end line")?];
            let b64: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            let der = BASE64.decode(&b64).map_err(|_| "PEM body is not base64")?;
            return Ok((label, der));
        }
    }
    Err("no PUBLIC KEY PEM block")
}

/// One DER TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

enum SpkiAlg {
    Rsa,
    EcP256,
    EcOther,
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// SubjectPublicKeyInfo: the key's algorithm and its BIT STRING bytes.
fn spki(der: &[u8]) -> Option<(SpkiAlg, &[u8])> {
    let (0x30, body, _) = tlv(der)? else { return None };
    let (0x30, alg_id, rest) = tlv(body)? else { return None };
    let (0x03, bits, _) = tlv(rest)? else { return None };
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    let (0x06, oid, params) = tlv(alg_id)? else { return None };
    let alg = if oid == OID_RSA {
        SpkiAlg::Rsa
    } else if oid == OID_EC {
        match tlv(params) {
            Some((0x06, curve, _)) if curve == OID_P256 => SpkiAlg::EcP256,
            _ => SpkiAlg::EcOther,
        }
    } else {
        return None;
    };
    Some((alg, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PUB: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");
    const EC_PUB: &[u8] = include_bytes!("../../tests/fixtures/ec_public.pem");

    #[test]
    fn pem_keys_are_read_by_type() {
        assert!(matches!(SigKey::rsa_pem(RSA_PUB), Ok(SigKey::Rsa(_))));
        assert!(matches!(SigKey::ec_pem(EC_PUB), Ok(SigKey::EcP256(_))));
        assert_eq!(SigKey::rsa_pem(EC_PUB).err(), Some("not an RSA key"));
        assert_eq!(SigKey::ec_pem(RSA_PUB).err(), Some("not an EC key"));
        assert_eq!(SigKey::rsa_pem(b"nope").err(), Some("no PUBLIC KEY PEM block"));
        assert!(SigKey::rsa_pem(b"-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----").is_err());
        assert!(SigKey::rsa_pem(b"-----BEGIN PUBLIC KEY-----\nMAMCAQA=\n-----END PUBLIC KEY-----").is_err());
    }

    #[test]
    fn der_lengths_never_overrun() {
        for input in [&[0x30, 0x82, 0xff][..], &[0x30, 0x85, 1, 2, 3, 4, 5], &[0x30, 0x05, 1], &[0x30], &[]] {
            assert!(tlv(input).is_none(), "{input:?}");
        }
        assert_eq!(tlv(&[0x04, 0x81, 0x01, 0xaa, 0xbb]), Some((0x04, &[0xaa][..], &[0xbb][..])));
    }

    /// RS256 signature of `message` with the fixture's private key.
    fn rs256(message: &[u8]) -> Vec<u8> {
        let key = openssl::pkey::PKey::private_key_from_pem(include_bytes!("../../tests/fixtures/rsa_private.pem")).unwrap();
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
        signer.sign_oneshot_to_vec(message).unwrap()
    }

    fn fixture_components() -> (Vec<u8>, Vec<u8>) {
        let rsa = openssl::rsa::Rsa::public_key_from_pem(RSA_PUB).unwrap();
        (rsa.n().to_vec(), rsa.e().to_vec())
    }

    #[test]
    fn rsa_keys_verify_again_and_again_after_failures() {
        let key = SigKey::rsa_pem(RSA_PUB).unwrap();
        let sig = rs256(b"header.payload");
        assert!(key.verify(b"header.payload", &sig));
        let mut flipped = sig.clone();
        flipped[100] ^= 1;
        assert!(!key.verify(b"header.payload", &flipped));
        assert!(!key.verify(b"header.payloae", &sig));
        assert!(!key.verify(b"header.payload", &sig[1..]), "shorter than the modulus");
        assert!(!key.verify(b"header.payload", &[sig.as_slice(), &[0]].concat()), "longer than the modulus");
        assert!(!key.verify(b"header.payload", &[]));
        // The kept context still verifies, and no OpenSSL error is left
        // behind for the host's TLS to find.
        assert!(key.verify(b"header.payload", &sig));
        assert!(openssl::error::ErrorStack::get().errors().is_empty());
        // A PKCS#1 SHA-512 signature is not an RS256 one.
        let private = openssl::pkey::PKey::private_key_from_pem(include_bytes!("../../tests/fixtures/rsa_private.pem")).unwrap();
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha512(), &private).unwrap();
        assert!(!key.verify(b"header.payload", &signer.sign_oneshot_to_vec(b"header.payload").unwrap()));
    }

    #[test]
    fn rsa_keys_from_jwk_components_and_pkcs1_agree() {
        let (n, e) = fixture_components();
        let sig = rs256(b"m");
        let jwk = serde_json::json!({"kty": "RSA", "n": data_encoding::BASE64URL_NOPAD.encode(&n),
                                     "e": data_encoding::BASE64URL_NOPAD.encode(&e)});
        let (key, alg) = SigKey::from_jwk(&jwk).unwrap();
        assert_eq!(alg, "RS256");
        assert!(key.verify(b"m", &sig));
        let pkcs1 = openssl::rsa::Rsa::public_key_from_pem(RSA_PUB).unwrap().public_key_to_pem_pkcs1().unwrap();
        assert!(String::from_utf8_lossy(&pkcs1).contains("BEGIN RSA PUBLIC KEY"));
        assert!(SigKey::rsa_pem(&pkcs1).unwrap().verify(b"m", &sig));
    }

    #[test]
    fn rsa_keys_as_strict_as_ring() {
        let (n, e) = fixture_components();
        let small = openssl::rsa::Rsa::generate(1024).unwrap();
        let pem = openssl::pkey::PKey::from_rsa(small).unwrap().public_key_to_pem().unwrap();
        assert_eq!(SigKey::rsa_pem(&pem).err(), Some("an RSA key of fewer than 2048 or more than 8192 bits"));
        let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            ("exponent 65536", n.clone(), vec![1, 0, 0]),
            ("exponent 1", n.clone(), vec![1]),
            ("exponent 2^34 + 1", n.clone(), vec![4, 0, 0, 0, 1]),
            ("even modulus", { let mut m = n.clone(); *m.last_mut().unwrap() &= 0xfe; m }, e.clone()),
            ("8200-bit modulus", [vec![0xff], n.clone(), vec![0xff; 768]].concat(), e.clone()),
            ("2047-bit modulus", { let mut m = n.clone(); m[0] = 0x7f; m }, e.clone()),
        ];
        for (name, n, e) in cases {
            assert!(RsaKey::from_components(&n, &e).is_err(), "{name}");
        }
        assert!(RsaKey::from_components(&n, &[3]).is_ok(), "exponent 3 is accepted, as ring did");
        // A negative DER INTEGER is not a modulus.
        assert_eq!(RsaKey::from_pkcs1(&[0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x03]).err(), Some("not a PKCS#1 RSA public key"));
    }

    #[test]
    fn hmac_verifies_only_its_own_tags() {
        let k = SigKey::hmac("HS256", b"secret").unwrap();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"secret"), b"msg");
        assert!(k.verify(b"msg", tag.as_ref()));
        assert!(!k.verify(b"msh", tag.as_ref()));
        assert!(SigKey::hmac("RS256", b"x").is_none());
    }
}
