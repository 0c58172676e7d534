//! Benchmarks that print numbers (no assertions): `make bench`.
//!
//! - token verification per login (HS256, RS256, ES256) and the Matrix
//!   pre-UVS checks, in microseconds per call;
//! - the engine that runs Matrix checks: 200 checks that each wait 200 ms
//!   on the network, with 128 in flight vs 8 in flight, to show that
//!   waiting checks overlap on one thread instead of queueing.
//!
//! Compare ratios within one run; absolute numbers depend on the machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jitsi_security::auth::{AuthOptions, Authenticator};
use jitsi_security::room::name_for_room_id;
use jitsi_security::token::{KeySource, Verifier, VerifierConfig};
use jitsi_security::engine::Engine;
use jitsi_security::verify::Verdict;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

fn per_call(name: &str, iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    println!("{name:<40} {us:>10.2} us/call  ({iters} calls)");
    us
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
    let now = 1_700_000_000;
    let claims = json!({"iss": "app", "aud": "jitsi", "room": "r", "exp": now + 3600,
                        "context": {"user": {"name": "n"}, "room": {"lobby": true}}});
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let read = |f: &str| std::fs::read(format!("{fixtures}{f}")).unwrap();

    println!("== token verification");
    let hs = verifier("HS256", KeySource::Secret(b"secret".to_vec()));
    let t = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"secret")).unwrap();
    per_call("HS256 verify", 50_000, || {
        black_box(hs.verify(black_box(&t), now).unwrap());
    });
    let rs = verifier("RS256", KeySource::PublicKeyPem(read("rsa_public.pem")));
    let t = encode(&Header::new(Algorithm::RS256), &claims,
                   &EncodingKey::from_rsa_pem(&read("rsa_private.pem")).unwrap()).unwrap();
    per_call("RS256 verify (2048-bit)", 5_000, || {
        black_box(rs.verify(black_box(&t), now).unwrap());
    });
    let es = verifier("ES256", KeySource::PublicKeyPem(read("ec_public.pem")));
    let t = encode(&Header::new(Algorithm::ES256), &claims,
                   &EncodingKey::from_ec_pem(&read("ec_private.pem")).unwrap()).unwrap();
    per_call("ES256 verify", 5_000, || {
        black_box(es.verify(black_box(&t), now).unwrap());
    });

    println!("== Matrix login, local checks before UVS");
    let (auth, _) = Authenticator::new(AuthOptions {
        standard: jitsi_security::token::VerifierOptions { app_id: Some("app".into()), ..Default::default() },
        uvs_base_url: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    })
    .unwrap();
    let room_id = "!qwertyasdfgh:matrix.org";
    let mt = encode(&Header::new(Algorithm::HS256),
                    &json!({"iss": "app", "room": "*", "context": {"matrix": {"token": "o", "room_id": room_id}}}),
                    &EncodingKey::from_secret(b"notused")).unwrap();
    let room = name_for_room_id(room_id);
    per_call("decode + issuer + base32 room check", 50_000, || {
        black_box(auth.begin(black_box(mt.as_bytes()), Some(room.as_bytes()), now, None).unwrap());
    });

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
}
