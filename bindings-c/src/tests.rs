//! Tests of the guard, the flags and the version constants that C cannot reach.

use std::ffi::CStr;
use std::sync::{Arc, Barrier};

use super::*;
use crate::guard::{with_handle, Access};

fn engine() -> *mut wl_engine {
    let policy = "\"iam\"";
    let mut e = std::ptr::null_mut();
    let st = unsafe {
        wl_engine_new(
            policy.as_ptr().cast(),
            policy.len(),
            1,
            &mut e,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, wl_status::Ok);
    e
}

fn blank_error() -> wl_error {
    wl_error {
        status: wl_status::Ok,
        usage: wl_usage::None,
        path_len: 0,
        message_len: 0,
        path: [0; WL_ERROR_PATH_CAP],
        message: [0; WL_ERROR_MESSAGE_CAP],
    }
}

fn message(e: &wl_error) -> String {
    unsafe { CStr::from_ptr(e.message.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn version_constants_match_cargo_toml() {
    assert_eq!(WL_VERSION, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        WL_VERSION_MAJOR.to_string(),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        WL_VERSION_MINOR.to_string(),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        WL_VERSION_PATCH.to_string(),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    let v = unsafe { CStr::from_ptr(wl_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert_eq!(wl_abi_version(), WL_ABI_VERSION);
    assert_eq!(writelane_core::VERSION, env!("CARGO_PKG_VERSION"));
}

#[test]
fn status_table_matches_the_committed_file() {
    let table: Vec<(u32, String)> = include_str!("../status-codes.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (v, n) = l.split_once(' ').unwrap();
            (v.parse().unwrap(), n.to_string())
        })
        .collect();
    let ours: Vec<(u32, String)> = wl_status::ALL
        .iter()
        .map(|s| (*s as u32, s.name().trim_end_matches('\0').to_string()))
        .collect();
    assert_eq!(table, ours);
    for (v, n) in &table {
        let name = unsafe { CStr::from_ptr(wl_status_name(*v)) }
            .to_str()
            .unwrap();
        assert_eq!(name, n);
    }
    let unknown = unsafe { CStr::from_ptr(wl_status_name(9999)) };
    assert_eq!(unknown.to_str().unwrap(), "WL_STATUS_UNKNOWN");
    for (i, u) in wl_usage::ALL.iter().enumerate() {
        assert_eq!(*u as usize, i);
    }
}

#[test]
fn a_panic_poisons_only_its_handle() {
    let a = engine();
    let b = engine();
    let st = unsafe {
        with_handle(a, Access::Normal, |_| -> Result<(), Fail> {
            panic!("injected by the test")
        })
    };
    assert_eq!(st, wl_status::Panicked);
    let mut has = false;
    let mut at = 0;
    assert_eq!(
        unsafe { wl_engine_poll_timeout(a, &mut has, &mut at) },
        wl_status::Poisoned
    );
    let entity = "role/x";
    let mut op = 0;
    let st = unsafe {
        wl_engine_submit(
            a,
            entity.as_ptr().cast(),
            entity.len(),
            0,
            std::ptr::null(),
            &mut op,
        )
    };
    assert_eq!(st, wl_status::Poisoned);
    let mut err = blank_error();
    assert_eq!(unsafe { wl_engine_last_error(a, &mut err) }, wl_status::Ok);
    assert_eq!(err.status, wl_status::Panicked);
    assert!(
        message(&err).contains("injected by the test"),
        "{}",
        message(&err)
    );
    // The other handle is untouched.
    let st = unsafe {
        wl_engine_submit(
            b,
            entity.as_ptr().cast(),
            entity.len(),
            0,
            std::ptr::null(),
            &mut op,
        )
    };
    assert_eq!(st, wl_status::Ok);
    assert_eq!(op, 1);
    unsafe {
        wl_engine_free(a);
        wl_engine_free(b);
    }
}

#[test]
fn a_second_thread_gets_busy_while_a_call_is_in_progress() {
    struct Ptr(*mut wl_engine);
    unsafe impl Send for Ptr {}
    let e = engine();
    let inside = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let p = Ptr(e);
    let (i2, r2) = (inside.clone(), release.clone());
    let t = std::thread::spawn(move || {
        let p = p;
        unsafe {
            with_handle(p.0, Access::Normal, |_| {
                i2.wait();
                r2.wait();
                Ok(())
            })
        }
    });
    inside.wait();
    let mut has = true;
    let mut at = 7;
    assert_eq!(
        unsafe { wl_engine_poll_timeout(e, &mut has, &mut at) },
        wl_status::Busy
    );
    assert_eq!((has, at), (true, 7), "a refused call writes nothing");
    let mut err = blank_error();
    assert_eq!(
        unsafe { wl_engine_last_error(e, &mut err) },
        wl_status::Busy
    );
    release.wait();
    assert_eq!(t.join().unwrap(), wl_status::Ok);
    assert_eq!(
        unsafe { wl_engine_poll_timeout(e, &mut has, &mut at) },
        wl_status::Ok
    );
    assert!(!has);
    unsafe { wl_engine_free(e) };
}

#[test]
fn errors_are_cut_at_a_character_boundary_with_the_full_length_reported() {
    let long = format!("{{\"preset\": \"{}\"}}", "é".repeat(800));
    let mut e = std::ptr::null_mut();
    let mut err = blank_error();
    let st = unsafe { wl_engine_new(long.as_ptr().cast(), long.len(), 0, &mut e, &mut err) };
    assert_eq!(st, wl_status::InvalidPolicy);
    assert!(e.is_null());
    assert!(err.message_len >= WL_ERROR_MESSAGE_CAP);
    let m = message(&err);
    assert!(m.len() < WL_ERROR_MESSAGE_CAP && m.len() > WL_ERROR_MESSAGE_CAP - 4);
    assert!(std::str::from_utf8(m.as_bytes()).is_ok());
}

/// Random calls with random arguments never panic and never poison the handle: every
/// call returns OK or a typed error.
#[test]
fn random_calls_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let texts: [&[u8]; 17] = [
        b"role/a",
        b"role/b",
        b"",
        b"\xff\xfe",
        b"ConcurrentModification",
        b"Throttling",
        b"12",
        b"v1",
        br#"{"reply":"done"}"#,
        br#"{"reply":"found","record":null}"#,
        br#"{"reply":"refused","current":{"owner":"other","epoch":3,"rvn":9,"lease_ms":400,"committed_token":null,"holder":"ci"}}"#,
        br#"{"reply":"lost"}"#,
        br#"{"reply":"unavailable"}"#,
        br#"[{"op":1,"applied":true}]"#,
        br#"[{"op":1,"applied":true},{"op":2,"applied":false,"code":"ValueError"}]"#,
        br#"[{"op":2,"applied":true},{"op":3,"applied":true},{"op":4,"applied":false}]"#,
        b"[]",
    ];
    let pick = |r: u64| -> wl_str {
        match r % 10 {
            0 => wl_str::ABSENT,
            1 => wl_str {
                ptr: std::ptr::null(),
                len: 3,
            },
            _ => {
                let t = texts[((r / 10) as usize) % texts.len()];
                wl_str {
                    ptr: t.as_ptr().cast(),
                    len: t.len(),
                }
            }
        }
    };
    for policy in [
        "\"iam\"",
        "\"aws-standard\"",
        r#"{"lanes":{"mode":"none"},"spike":{"threshold":1}}"#,
        r#"{"lanes":{"mode":"shared"},"lease":{"lease_ms":400,"renew_ms":150,"lock_delay_ms":100,"poll_ms":100,"unavailable_ms":300,"max_write_ms":100}}"#,
    ] {
        let mut e = std::ptr::null_mut();
        let owner = "host-a";
        let st = unsafe {
            wl_engine_new_with_owner(
                policy.as_ptr().cast(),
                policy.len(),
                5,
                owner.as_ptr().cast(),
                owner.len(),
                &mut e,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(st, wl_status::Ok);
        let mut now = 0u64;
        let mut token = wl_retry_token::default();
        for _ in 0..20_000 {
            let r = rnd();
            if r % 5 == 0 {
                now += rnd() % 3000;
            }
            let at = if r % 97 == 0 {
                now.saturating_sub(10)
            } else {
                now
            };
            let failure = wl_failure {
                code: pick(rnd()),
                http_status: [0u16, 409, 429, 500, 503, 404][(rnd() % 6) as usize],
                has_retry_after: rnd() % 4 == 0,
                retry_after_ms: rnd() % 100_000,
                retry_after_header: if rnd() % 8 == 0 {
                    pick(rnd())
                } else {
                    wl_str::ABSENT
                },
                outcome_unknown: rnd() % 6 == 0,
                intended_token: pick(rnd()),
            };
            let mut c = wl_command::NONE;
            let st = unsafe {
                match r % 9 {
                    0 | 1 => {
                        let s = pick(rnd());
                        let mut op = 0;
                        let opts = wl_submit_options {
                            expected: pick(rnd()),
                            has_deadline: rnd() % 3 == 0,
                            deadline_ms: rnd() % 10_000,
                            holder: pick(rnd()),
                            no_read: rnd() % 4 == 0,
                        };
                        if rnd() % 2 == 0 {
                            wl_engine_submit_update(e, s.ptr, s.len, at, &opts, &mut op)
                        } else {
                            wl_engine_submit(e, s.ptr, s.len, at, &opts, &mut op)
                        }
                    }
                    2 | 3 => {
                        let input = wl_input {
                            kind: (rnd() % 8) as u32,
                            op: rnd() % 12,
                            token: pick(rnd()),
                            failure,
                            reply: pick(rnd()),
                        };
                        wl_engine_handle(e, at, &input)
                    }
                    4 => wl_engine_handle_timeout(e, at),
                    5 if rnd() % 2 == 0 => wl_engine_poll_action(e, &mut c),
                    5 => wl_engine_poll_command(e, &mut c),
                    6 if rnd() % 2 == 0 => wl_engine_poll_action_for(e, rnd() % 12, &mut c),
                    6 => wl_engine_poll_command_for(e, rnd() % 12, &mut c),
                    7 => {
                        let mut d = wl_retry_decision {
                            retry: false,
                            delay_ms: 0,
                            cost: 0,
                            error_class: wl_error_class::None,
                            refusal: wl_refusal::None,
                        };
                        if rnd() % 3 == 0 {
                            wl_engine_retry_acquire(e, "s".as_ptr().cast(), 1, at, &mut token)
                        } else if rnd() % 2 == 0 {
                            wl_engine_retry_refresh(e, &mut token, &failure, at, &mut d)
                        } else {
                            wl_engine_retry_delay(e, (rnd() % 20) as u32, &failure, at, &mut d)
                        }
                    }
                    _ if rnd() % 2 == 0 => {
                        let ops = [rnd() % 12, rnd() % 12, rnd()];
                        let mut at = [0u64; 3];
                        wl_engine_poll_timeouts_for(
                            e,
                            ops.as_ptr(),
                            (rnd() % 4) as usize,
                            at.as_mut_ptr(),
                        )
                    }
                    _ => {
                        let mut s = wl_str::ABSENT;
                        wl_engine_poll_event(e, &mut s)
                    }
                }
            };
            assert!(
                !matches!(
                    st,
                    wl_status::Panicked | wl_status::Poisoned | wl_status::Busy
                ),
                "{st:?}"
            );
        }
        unsafe { wl_engine_free(e) };
    }
}

/// Call a buffer-filling export with a buffer large enough (asking for the length first).
fn text_of(
    mut call: impl FnMut(*mut std::os::raw::c_char, usize, &mut usize) -> wl_status,
) -> (wl_status, String) {
    let mut len = 0usize;
    let st = call(std::ptr::null_mut(), 0, &mut len);
    if st != wl_status::BufferTooSmall {
        return (st, String::new());
    }
    let mut buf = vec![0u8; len + 1];
    let st = call(buf.as_mut_ptr().cast(), buf.len(), &mut len);
    assert_eq!(buf[len], 0, "the text is NUL-terminated");
    buf.truncate(len);
    (st, String::from_utf8(buf).expect("UTF-8"))
}

/// The lane-driver vectors of kinds `force_release` and `owner_id` (tests/vectors-lane),
/// replayed through the C functions a C host would use: plan, the compare-and-swap on a
/// memory store with the vector's fault, finish; and the owner id of a host, pid and draw.
#[test]
fn lane_vectors_for_force_release_and_owner_ids() {
    use serde_json::{json, Value};
    use writelane_core::lease::{LeaseRecord, MemoryStore, StoreOp, StoreReply};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors-lane");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/vectors-lane exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut releases, mut owners) = (0, 0);
    for file in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let name = file.display();
        match v["kind"].as_str() {
            Some("owner_id") => {
                owners += 1;
                let host = v["host"].as_str().unwrap();
                let (st, owner) = text_of(|buf, cap, len| unsafe {
                    wl_owner_id(
                        host.as_ptr().cast(),
                        host.len(),
                        v["pid"].as_u64().unwrap() as u32,
                        v["entropy"].as_u64().unwrap(),
                        buf,
                        cap,
                        len,
                        std::ptr::null_mut(),
                    )
                });
                assert_eq!(st, wl_status::Ok, "{name}");
                assert_eq!(owner, v["expect"]["owner"].as_str().unwrap(), "{name}");
            }
            Some("force_release") => {
                releases += 1;
                let key = v["key"].as_str().unwrap();
                let record: Option<LeaseRecord> =
                    serde_json::from_value(v["record"].clone()).unwrap();
                let mut store = MemoryStore::new();
                store.set(key, record.clone());
                let found = record.as_ref().map(LeaseRecord::to_json);
                let expected = v["expected_rvn"].as_u64();
                let mut swap = false;
                let (st, text) = text_of(|buf, cap, len| unsafe {
                    wl_force_release_plan(
                        key.as_ptr().cast(),
                        key.len(),
                        found
                            .as_ref()
                            .map_or(std::ptr::null(), |f| f.as_ptr().cast()),
                        found.as_ref().map_or(0, String::len),
                        expected.is_some(),
                        expected.unwrap_or(0),
                        v["entropy"].as_u64().unwrap(),
                        &mut swap,
                        buf,
                        cap,
                        len,
                        std::ptr::null_mut(),
                    )
                });
                assert_eq!(st, wl_status::Ok, "{name}");
                let result: Value = if swap {
                    let op: StoreOp = serde_json::from_str(&text).unwrap();
                    let reply = match v["fault"].as_str() {
                        None => store.apply(op),
                        Some("lost") => {
                            store.apply(op);
                            StoreReply::Lost
                        }
                        Some("dropped") => StoreReply::Lost,
                        Some("unavailable") => StoreReply::Unavailable,
                        Some("retried") => {
                            store.apply(op);
                            StoreReply::Refused {
                                current: store.record(key).cloned(),
                            }
                        }
                        Some(other) => panic!("{name}: unknown fault {other}"),
                    };
                    let reply = serde_json::to_string(&reply).unwrap();
                    let mut known = false;
                    let (st, text) = text_of(|buf, cap, len| unsafe {
                        wl_force_release_finish(
                            text.as_ptr().cast(),
                            text.len(),
                            reply.as_ptr().cast(),
                            reply.len(),
                            &mut known,
                            buf,
                            cap,
                            len,
                            std::ptr::null_mut(),
                        )
                    });
                    assert_eq!(st, wl_status::Ok, "{name}");
                    if known {
                        serde_json::from_str(&text).unwrap()
                    } else {
                        assert_eq!(text, "", "{name}");
                        json!({"error": "unavailable"})
                    }
                } else {
                    serde_json::from_str(&text).unwrap()
                };
                assert_eq!(result, v["expect"]["result"], "{name}");
            }
            _ => {}
        }
    }
    assert!(
        releases >= 6 && owners >= 3,
        "{releases} force-release and {owners} owner-id vectors"
    );
}

/// Random bytes as a store's record never panic: a record is accepted whole or refused
/// with the field and the rule.
#[test]
fn random_records_never_panic() {
    let good =
        br#"{"owner":"o","epoch":1,"rvn":2,"lease_ms":3,"committed_token":"t","holder":null}"#;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = good.to_vec();
        for k in 0..(1 + i % 4) {
            let at = ((seed >> (8 * k)) as usize) % bytes.len();
            bytes[at] = (seed >> (16 + k)) as u8;
        }
        let mut err = blank_error();
        let mut buf = [0 as std::os::raw::c_char; 256];
        let mut len = 0;
        let st = unsafe {
            wl_lease_record_check(
                bytes.as_ptr().cast(),
                bytes.len(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
                &mut err,
            )
        };
        assert!(
            matches!(st, wl_status::Ok | wl_status::InvalidRecord),
            "{st:?}"
        );
        if st == wl_status::InvalidRecord {
            assert!(err.path_len > 0 && message(&err).starts_with("invalid lease record"));
        }
    }
}
