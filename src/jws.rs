//! JWS signature checks with ring (already in the build through rustls):
//! HMAC-SHA256/384/512, RSASSA-PKCS1-v1_5 with SHA-256 (2048 to 8192-bit
//! keys) and ECDSA P-256 with SHA-256 (JWS's fixed `r || s` form). Public
//! keys come as PEM: `PUBLIC KEY` (SubjectPublicKeyInfo) or
//! `RSA PUBLIC KEY` (PKCS#1); the few DER fields needed are read here.
//!
//! ring rather than jsonwebtoken's pure-Rust backend: it verifies RS256
//! about ten times faster (issue 10), and the claims are decoded once by
//! our own code instead of again by jsonwebtoken.

use data_encoding::BASE64;
use ring::{hmac, signature};

/// A verification key for one pinned algorithm.
pub enum SigKey {
    Hmac(hmac::Key),
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// RSA modulus and exponent (big-endian), as a JWK gives them.
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed P-256 point.
    EcP256(Vec<u8>),
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
            (Label::Pkcs1Rsa, der) => Ok(SigKey::Rsa(der)),
            (Label::Spki, der) => match spki(&der).ok_or("not a SubjectPublicKeyInfo")? {
                (SpkiAlg::Rsa, key) => Ok(SigKey::Rsa(key.to_vec())),
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
            Some("RSA") => Ok((SigKey::RsaComponents { n: field("n")?, e: field("e")? }, "RS256")),
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
            Err(_) => SigKey::ec_pem(pem).map(|k| (k, "ES256")).map_err(|_| "not an RSA or P-256 public key"),
        }
    }

    /// The modulus size in bits of an RSA key (`None` for other keys, or
    /// a PKCS#1 DER that does not start with the modulus).
    pub fn rsa_bits(&self) -> Option<usize> {
        let n: &[u8] = match self {
            SigKey::Rsa(der) => match tlv(der)? {
                (0x30, seq, _) => match tlv(seq)? {
                    (0x02, n, _) => n,
                    _ => return None,
                },
                _ => return None,
            },
            SigKey::RsaComponents { n, .. } => n,
            _ => return None,
        };
        let skip = n.iter().take_while(|&&b| b == 0).count();
        let n = &n[skip..];
        Some(n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize))
    }

    /// Does `sig` sign `message`?
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            SigKey::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            SigKey::Rsa(der) => signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
                .verify(message, sig)
                .is_ok(),
            SigKey::RsaComponents { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
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

    const RSA_PUB: &[u8] = include_bytes!("../tests/fixtures/rsa_public.pem");
    const EC_PUB: &[u8] = include_bytes!("../tests/fixtures/ec_public.pem");

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

    #[test]
    fn hmac_verifies_only_its_own_tags() {
        let k = SigKey::hmac("HS256", b"secret").unwrap();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"secret"), b"msg");
        assert!(k.verify(b"msg", tag.as_ref()));
        assert!(!k.verify(b"msh", tag.as_ref()));
        assert!(SigKey::hmac("RS256", b"x").is_none());
    }
}
