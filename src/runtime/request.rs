//! What a connecting client hands over: its token, from `?token=` or an
//! `Authorization: Bearer` header (the query parameter wins).

/// Pick the token of a connection. Values are any bytes (they come from
/// the network); empty values count as absent; the `Bearer ` prefix is
/// matched case-insensitively.
pub fn token_from<'a>(query_token: Option<&'a [u8]>, authorization: Option<&'a [u8]>) -> Option<&'a [u8]> {
    if let Some(t) = query_token.map(<[u8]>::trim_ascii).filter(|t| !t.is_empty()) {
        return Some(t);
    }
    let header = authorization?.trim_ascii();
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_cases() {
        let cases = [
            (Some("q"), Some("Bearer h"), Some("q")),
            (None, Some("Bearer h"), Some("h")),
            (None, Some("bearer h"), Some("h")),
            (None, Some("BEARER  h "), Some("h")),
            (Some(""), Some("Bearer h"), Some("h")),
            (None, Some("Basic abc"), None),
            (None, Some("Bearer "), None),
            (None, Some("Bear"), None),
            (None, Some("Béarer x"), None),
            (None, None, None),
        ];
        for (q, h, want) in cases {
            let got = token_from(q.map(str::as_bytes), h.map(str::as_bytes));
            assert_eq!(got, want.map(str::as_bytes), "{q:?} {h:?}");
        }
        // Invalid UTF-8 passes through as bytes, to be refused by the verifier.
        assert_eq!(token_from(Some(b"\xff"), None), Some(b"\xff".as_slice()));
        assert_eq!(token_from(None, Some(b"Bearer \xff\xfe")), Some(b"\xff\xfe".as_slice()));
        assert_eq!(token_from(None, Some(b"\xffearer x")), None);
    }
}
