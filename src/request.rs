//! What a connecting client hands over: its token, from `?token=` or an
//! `Authorization: Bearer` header (the query parameter wins).

/// Pick the token of a connection. Empty values count as absent; the
/// `Bearer ` prefix is matched case-insensitively.
pub fn token_from(query_token: Option<&str>, authorization: Option<&str>) -> Option<String> {
    if let Some(t) = query_token.map(str::trim).filter(|t| !t.is_empty()) {
        return Some(t.to_string());
    }
    let header = authorization?.trim();
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    Some(rest.trim()).filter(|t| !t.is_empty()).map(str::to_string)
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
            assert_eq!(token_from(q, h).as_deref(), want, "{q:?} {h:?}");
        }
    }
}
