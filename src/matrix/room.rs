//! Jitsi room names <-> Matrix room ids. Element names a Jitsi room after
//! the base32 (RFC 4648, no padding) of the Matrix room id; Jitsi lower-cases
//! room names, so decoding ignores case.

use data_encoding::BASE32_NOPAD;

use crate::error::{Error, Result};
use crate::text::Untrusted;

/// The Jitsi room name (lower case, as Jitsi uses it) for a Matrix room id.
pub fn name_for_room_id(room_id: &str) -> String {
    BASE32_NOPAD.encode(room_id.as_bytes()).to_ascii_lowercase()
}

/// Decode a Jitsi room name (any bytes) into the Matrix room id it
/// encodes. The name must be the canonical encoding: no padding, no stray
/// trailing bits.
pub fn room_id_for_name(name: impl AsRef<[u8]>) -> Result<String> {
    let name = name.as_ref();
    let undecodable = || Error::RoomNameUndecodable(Untrusted::new(name));
    if name.is_empty() {
        return Err(Error::RoomMissing);
    }
    let upper = name.to_ascii_uppercase();
    let bytes = BASE32_NOPAD.decode(&upper).map_err(|_| undecodable())?;
    let id = String::from_utf8(bytes).map_err(|_| undecodable())?;
    if BASE32_NOPAD.encode(id.as_bytes()).as_bytes() != upper {
        return Err(undecodable());
    }
    Ok(id)
}

/// Check that the Jitsi room `name` is the encoding of `room_id`, byte for byte.
pub fn check_room(name: impl AsRef<[u8]>, room_id: &str) -> Result<()> {
    let name = name.as_ref();
    let decoded = room_id_for_name(name)?;
    if decoded != room_id {
        return Err(Error::RoomMismatch { room: Untrusted::new(name), room_id: room_id.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "!qwertyasdfgh:matrix.org";

    #[test]
    fn name_round_trips_any_case() {
        let name = name_for_room_id(ID);
        assert_eq!(name, "efyxozlsor4wc43emztwqotnmf2he2lyfzxxezy");
        assert_eq!(room_id_for_name(&name).unwrap(), ID);
        assert_eq!(room_id_for_name(name.to_uppercase()).unwrap(), ID);
        assert!(check_room(&name, ID).is_ok());
    }

    #[test]
    fn room_checks_refuse_bad_names() {
        let name = name_for_room_id(ID);
        let cases: Vec<(&str, String, Error)> = vec![
            ("empty", String::new(), Error::RoomMissing),
            ("padded", format!("{name}="), Error::RoomNameUndecodable(format!("{name}=").as_str().into())),
            ("not base32", "hello-world".into(), Error::RoomNameUndecodable("hello-world".into())),
            ("digit 1 not in alphabet", "1abc".into(), Error::RoomNameUndecodable("1abc".into())),
            // Same bytes but non-zero trailing bits: not the canonical encoding.
            ("trailing bits", "mf".into(), Error::RoomNameUndecodable("mf".into())),
            ("not utf-8", "74".into(), Error::RoomNameUndecodable("74".into())),
        ];
        for (what, n, want) in cases {
            assert_eq!(room_id_for_name(&n).unwrap_err(), want, "{what}");
        }
    }

    #[test]
    fn room_refusals_escape_hostile_names() {
        let e = room_id_for_name(b"ab\x00\ncd\xff".as_slice()).unwrap_err();
        assert!(!e.to_string().contains('\n') && !e.to_string().contains('\0'), "{e}");
        let e = room_id_for_name([b'a', 0, b'\n', 0xff]).unwrap_err();
        assert_eq!(e.to_string(), "room name 'a\\x00\\x0a\\xff' is not a base32 encoded Matrix room id");
    }

    #[test]
    fn check_room_refuses_other_room_ids() {
        let name = name_for_room_id("!other:matrix.org");
        assert_eq!(
            check_room(&name, ID).unwrap_err(),
            Error::RoomMismatch { room: name.as_str().into(), room_id: ID.into() }
        );
        // A prefix of the id is a different room.
        assert!(check_room(name_for_room_id("!qwerty"), ID).is_err());
    }
}
