//! Benchmarks that print numbers (no assertions): `make bench`.
//!
//! - token verification per login (HS256, RS256, ES256) and the Matrix
//!   pre-UVS checks, in microseconds per call;
//! - the engine that runs Matrix checks: 200 checks that each wait 200 ms
//!   on the network, with 128 in flight vs 8 in flight, to show that
//!   waiting checks overlap on one thread instead of queueing;
//! - one resync decision of a 1,000-member Matrix room (synthetic Synapse
//!   admin-API state): parse, RoomView::new, standing() per occupant.
//!   (examples/bench_resync.mjs times the state read on a real Synapse.)
//!
//! Per-call figures are CPU time of this thread (best of 3 rounds), like
//! `openssl speed`'s, which this runs too for the RS256 ratio: on a shared,
//! loaded machine, wall time would count other processes' turns. Compare
//! ratios within one run; absolute numbers depend on the machine.
//!
//! Prints everything and writes its section of BENCHMARKS.md (only that
//! section is replaced); `--no-md` or BENCH_NO_WRITE=1 leaves the file alone.

use std::hint::black_box;
use std::time::{Duration, Instant};

const SECTION: &str = "## Rust micro-benchmarks (make bench)";
/// RS256 through our verifier may take at most this times `openssl speed
/// rsa2048`'s verification (issue 17).
const RS256_TARGET_RATIO: f64 = 1.3;

use jitsi_security::runtime::login::{AuthOptions, Authenticator};
use jitsi_security::matrix::room::name_for_room_id;
use jitsi_security::standard::token::{KeySource, Verifier, VerifierConfig};
use jitsi_security::runtime::engine::Engine;
use jitsi_security::matrix::verify::Verdict;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

/// CPU time of this thread, in seconds.
fn cpu_now() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: one valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Microseconds of CPU per call: best of 3 rounds of `iters` after a warm-up.
fn per_call(name: &str, iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = cpu_now();
        for _ in 0..iters {
            f();
        }
        best = best.min((cpu_now() - start) * 1e6 / f64::from(iters));
    }
    println!("{name:<40} {best:>10.2} us/call  ({iters} calls, best of 3, CPU time)");
    best
}

/// `openssl speed -seconds 1 rsa2048`, best of 3 runs (ours is the best of
/// 3 rounds): microseconds per verification (its user CPU time), or None
/// when openssl is missing or prints otherwise.
fn openssl_speed_rsa2048() -> Option<(f64, String)> {
    let run = || -> Option<f64> {
        let out = std::process::Command::new("openssl").args(["speed", "-seconds", "1", "rsa2048"]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("rsa 2048 bits"))?;
        // rsa 2048 bits 0.000360s 0.000019s   2781.0  53642.3
        line.split_whitespace().last()?.parse().ok()
    };
    let per_second = (0..3).filter_map(|_| run()).fold(0.0_f64, f64::max);
    let version = std::process::Command::new("openssl").arg("version").output().ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    (per_second > 0.0).then(|| (1e6 / per_second, version))
}

/// Replace (or append) `SECTION` of BENCHMARKS.md, up to the next "## ".
fn write_section(body: &str) -> std::io::Result<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{SECTION}\n\n{body}\n");
    let new = match old.find(&format!("\n{SECTION}\n")) {
        Some(at) => {
            let start = at + 1;
            let rest = &old[start + SECTION.len()..];
            match rest.find("\n## ") {
                Some(end) => format!("{}{section}{}", &old[..start], &rest[end..]),
                None => format!("{}{section}", &old[..start]),
            }
        }
        None => format!("{}\n\n{section}", old.trim_end_matches('\n')),
    };
    std::fs::write(path, new)?;
    Ok(path.into())
}

fn verifier(alg: &str, key: KeySource) -> Verifier {
    Verifier::new(VerifierConfig {
        algorithm: alg.into(),
        key,
        accepted_issuers: vec!["app".into()],
        accepted_audiences: vec!["*".into()],
        require_room_claim: true,
        leeway: 0,
    })
    .unwrap()
}

fn main() {
    let write_md = !std::env::args().any(|a| a == "--no-md") && std::env::var_os("BENCH_NO_WRITE").is_none();
    let load_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows: Vec<(String, String)> = Vec::new();
    let now = 1_700_000_000;
    let claims = json!({"iss": "app", "aud": "jitsi", "room": "r", "exp": now + 3600,
                        "context": {"user": {"name": "n"}, "room": {"lobby": true}}});
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let read = |f: &str| std::fs::read(format!("{fixtures}{f}")).unwrap();

    println!("== token verification");
    let hs = verifier("HS256", KeySource::Secret(b"secret".to_vec()));
    let t = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"secret")).unwrap();
    let hs_us = per_call("HS256 verify", 50_000, || {
        black_box(hs.verify(black_box(&t), now).unwrap());
    });
    rows.push(("HS256 verify (Rust only, no Lua tables)".into(), format!("{hs_us:.2} µs/call")));
    let rs = verifier("RS256", KeySource::PublicKeyPem(read("rsa_public.pem")));
    let t = encode(&Header::new(Algorithm::RS256), &claims,
                   &EncodingKey::from_rsa_pem(&read("rsa_private.pem")).unwrap()).unwrap();
    let rs_us = per_call("RS256 verify (2048-bit)", 5_000, || {
        black_box(rs.verify(black_box(&t), now).unwrap());
    });
    rows.push(("RS256 verify, 2048-bit (Rust only)".into(), format!("{rs_us:.2} µs/call")));
    let speed = openssl_speed_rsa2048();
    match &speed {
        Some((us, version)) => {
            let ratio = rs_us / us;
            println!("openssl speed rsa2048 verify ({version}): {us:.2} us; RS256 verify / openssl = {ratio:.2}x (target <= {RS256_TARGET_RATIO}x: {})",
                     if ratio <= RS256_TARGET_RATIO { "met" } else { "NOT met" });
            rows.push((format!("`openssl speed -seconds 1 rsa2048` verify, best of 3 runs, same run ({version})"), format!("{us:.2} µs/call")));
            rows.push(("RS256 verify / openssl speed".into(), format!("{ratio:.2}x (target <= {RS256_TARGET_RATIO}x: {})",
                       if ratio <= RS256_TARGET_RATIO { "met" } else { "NOT met" })));
        }
        None => {
            println!("openssl speed rsa2048: not available");
            rows.push(("`openssl speed rsa2048`".into(), "not available (no openssl binary?)".into()));
        }
    }
    let es = verifier("ES256", KeySource::PublicKeyPem(read("ec_public.pem")));
    let t = encode(&Header::new(Algorithm::ES256), &claims,
                   &EncodingKey::from_ec_pem(&read("ec_private.pem")).unwrap()).unwrap();
    let es_us = per_call("ES256 verify", 5_000, || {
        black_box(es.verify(black_box(&t), now).unwrap());
    });
    rows.push(("ES256 verify (Rust only)".into(), format!("{es_us:.2} µs/call")));

    println!("== Matrix login, local checks before UVS");
    let (auth, _) = Authenticator::new(AuthOptions {
        standard: jitsi_security::standard::token::VerifierOptions { app_id: Some("app".into()), ..Default::default() },
        uvs_base_url: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    })
    .unwrap();
    let room_id = "!qwertyasdfgh:matrix.org";
    let mt = encode(&Header::new(Algorithm::HS256),
                    &json!({"iss": "app", "room": "*", "context": {"matrix": {"token": "o", "room_id": room_id}}}),
                    &EncodingKey::from_secret(b"notused")).unwrap();
    let room = name_for_room_id(room_id);
    let mx_us = per_call("decode + issuer + base32 room check", 50_000, || {
        black_box(auth.begin(black_box(mt.as_bytes()), Some(room.as_bytes()), now, None).unwrap());
    });
    rows.push(("Matrix login, checks before the verifier (decode, issuer, base32 room)".into(), format!("{mx_us:.2} µs/call")));

    println!("== engine: 200 checks that each wait 200 ms (a slow UVS)");
    let run = |in_flight: usize| {
        let mut engine = Engine::<Verdict>::new(in_flight, 1024).unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(60);
        for _ in 0..200 {
            let id = engine.next_id();
            let job = Box::pin(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Verdict::NotInRoom
            });
            engine.submit(id, deadline, job).unwrap();
        }
        let mut done = 0;
        while done < 200 {
            let mut fds = libc::pollfd { fd: engine.fd().unwrap(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut fds, 1, 1000) };
            done += engine.drain().len();
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("{:<40} {ms:>10.1} ms for 200 checks", format!("{in_flight} in flight"));
        ms
    };
    let few = run(8);
    let many = run(128);
    println!("speed-up with 128 in flight: {:.2}x (floor: 2 waves of 200 ms = 400 ms)", few / many);
    rows.push(("engine: 200 checks waiting 200 ms each, 8 in flight (wall)".into(), format!("{few:.0} ms")));
    rows.push(("engine: the same, 128 in flight (wall)".into(),
               format!("{many:.0} ms ({:.2}x; floor 2 waves = 400 ms)", few / many)));

    rows.extend(resync_1000());

    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loads = |l: &str| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let mut md = String::from("| step | CPU time (engine: wall) |\n|---|---:|\n");
    for (name, value) in &rows {
        md.push_str(&format!("| {name} | {value} |\n"));
    }
    md.push_str(&format!(
        "\nPer-call figures: CPU time of the benchmark's thread, best of 3 rounds (as `openssl speed` counts its own \
         CPU time), so the RS256 ratio compares like with like on a loaded machine. Load average {} at the start, {} at the end. \
         Command: `cargo run --release --locked --no-default-features --features vendored --example bench` (make bench).",
        loads(&load_start), loads(&load_end)));
    if write_md {
        match write_section(&md) {
            Ok(path) => println!("(written to {path})"),
            Err(e) => println!("could not write BENCHMARKS.md: {e}"),
        }
    }
}

/// One Matrix event id or v12 room id body: 43 URL-safe base64 characters
/// (a SHA-256 in unpadded base64), derived from `n`.
fn fake_hash(n: u64) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..43)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            A[(x % 64) as usize] as char
        })
        .collect()
}

/// The body of `GET /_synapse/admin/v1/rooms/{id}/state` for a v12 room
/// with `members` joined users (creator first) and `powered` users in
/// power_levels, shaped like Synapse's answer.
fn synthetic_room_state(members: usize, powered: usize) -> (String, Vec<String>) {
    let hs = "matrix.example.org";
    let room_id = format!("!{}", fake_hash(0));
    let users: Vec<String> = (0..members).map(|i| format!("@user{i:04}:{hs}")).collect();
    let creator = users[0].clone();
    let ts0: u64 = 1_760_000_000_000;
    let mut n = 1;
    let mut event = |kind: &str, key: &str, sender: &str, content: serde_json::Value| {
        n += 1;
        json!({
            "type": kind, "room_id": room_id, "sender": sender, "user_id": sender,
            "state_key": key, "content": content,
            "event_id": format!("${}", fake_hash(n)),
            "origin_server_ts": ts0 + n * 37,
            "unsigned": {"age": 86_400_000 - n * 37},
            "age": 86_400_000 - n * 37,
        })
    };
    let mut levels = serde_json::Map::new();
    for u in users.iter().skip(1).take(powered) {
        levels.insert(u.clone(), json!(if levels.len().is_multiple_of(5) { 50 } else { 10 }));
    }
    let mut state = vec![
        event("m.room.create", "", &creator, json!({"room_version": "12"})),
        event("m.room.power_levels", "", &creator, json!({
            "users": levels, "users_default": 0, "events_default": 0, "state_default": 50,
            "ban": 50, "kick": 50, "redact": 50, "invite": 0,
            "events": {"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
                       "m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 150,
                       "m.room.server_acl": 100, "m.room.encryption": 100},
            "notifications": {"room": 50},
        })),
        event("m.room.join_rules", "", &creator, json!({"join_rule": "public"})),
        event("m.room.history_visibility", "", &creator, json!({"history_visibility": "shared"})),
        event("m.room.guest_access", "", &creator, json!({"guest_access": "can_join"})),
        event("m.room.name", "", &creator, json!({"name": "A large call"})),
    ];
    for (i, u) in users.iter().enumerate() {
        state.push(event("m.room.member", u, u, json!({
            "membership": "join",
            "displayname": format!("User number {i}"),
            "avatar_url": format!("mxc://{hs}/{}", &fake_hash(100_000 + i as u64)[..24]),
        })));
    }
    (json!({ "state": state }).to_string(), users)
}

/// What `Resync::drain` does with one answer: parse the body into the
/// state list, index it (RoomView::new), then one standing() per tracked
/// occupant. Each step timed on its own, then the whole.
fn resync_1000() -> Vec<(String, String)> {
    use jitsi_security::matrix::verify::state::RoomView;
    use serde_json::Value;

    println!("== resync decision of a 1,000-member room");
    let (body, users) = synthetic_room_state(1_000, 50);
    let body = body.into_bytes();
    let count = serde_json::from_slice::<Value>(&body).unwrap()["state"].as_array().map_or(0, Vec::len);
    println!("synthetic admin-API state: {count} events, {} bytes ({:.0} KiB), 50 users in power_levels",
             body.len(), body.len() as f64 / 1024.0);

    let parse = |b: &[u8]| -> Vec<Value> {
        match serde_json::from_slice::<Value>(b) {
            Ok(Value::Object(mut o)) => match o.remove("state") {
                Some(Value::Array(events)) => events,
                _ => panic!("no state list"),
            },
            _ => panic!("not an object"),
        }
    };
    let decide = |view: &RoomView, occupants: &[String]| -> usize {
        let mut kicks_or_owners = 0;
        for u in occupants {
            let s = view.standing(black_box(u));
            kicks_or_owners += usize::from(!s.joined()) + usize::from(s.is_owner());
        }
        kicks_or_owners
    };

    let events = parse(&body);
    let view = RoomView::new(&events);
    let owners = decide(&view, &users);
    println!("check: {} occupants, {} joined, {} owners (creator + power >= 50)",
             users.len(), users.iter().filter(|u| view.standing(u).joined()).count(), owners);
    drop(view);

    let iters = 200;
    let parse_us = per_call("parse body -> state list (incl. drop)", iters, || {
        black_box(parse(black_box(&body)));
    });
    let view_us = per_call("RoomView::new (1,006 events)", iters, || {
        black_box(RoomView::new(black_box(&events)));
    });
    let view = RoomView::new(&events);
    let all_us = per_call("standing() x 1,000 occupants", iters * 5, || {
        black_box(decide(&view, black_box(&users)));
    });
    let few_us = per_call("standing() x 50 occupants", iters * 50, || {
        black_box(decide(&view, black_box(&users[..50])));
    });
    let whole_us = per_call("whole resync, 1,000 occupants", iters, || {
        let events = parse(black_box(&body));
        let view = RoomView::new(&events);
        black_box(decide(&view, &users));
    });
    let whole50_us = per_call("whole resync, 50 occupants", iters, || {
        let events = parse(black_box(&body));
        let view = RoomView::new(&events);
        black_box(decide(&view, &users[..50]));
    });
    println!("sum of steps, 1,000 occupants: {:.0} us per resync (parse {:.0}%, view {:.0}%, standings {:.0}%); measured whole: {:.0} us",
             parse_us + view_us + all_us,
             100.0 * parse_us / (parse_us + view_us + all_us),
             100.0 * view_us / (parse_us + view_us + all_us),
             100.0 * all_us / (parse_us + view_us + all_us),
             whole_us);
    println!("sum of steps, 50 occupants:    {:.0} us per resync; measured whole: {:.0} us",
             parse_us + view_us + few_us, whole50_us);
    vec![
        (format!("resync of a 1,000-member room: parse {} KiB of state (background thread)", body.len() / 1024), format!("{parse_us:.0} µs")),
        (format!("resync: RoomView over {count} events (Prosody's thread)"), format!("{view_us:.0} µs")),
        ("resync: standing of 1,000 occupants (Prosody's thread)".into(), format!("{all_us:.0} µs")),
        ("resync: whole decision, 1,000 occupants".into(), format!("{whole_us:.0} µs")),
        ("resync: whole decision, 50 occupants".into(), format!("{whole50_us:.0} µs")),
    ]
}
