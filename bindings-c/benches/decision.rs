//! Per-decision cost through the C ABI against the same decisions made on the core
//! directly, measured in one run. Run with `cargo bench -p writelane-c --bench decision`
//! (bench.sh runs it together with the C and Go measurements and prints the ratios).
//!
//! One cycle is one logical write that meets a conflict and commits on its second
//! attempt: submit, read, read_done, write, write_failed, timeout, read, read_done, write,
//! write_done, finish — 11 engine calls. A strategy cycle is acquire, refresh, success.

use std::hint::black_box;
use std::os::raw::c_char;
use std::ptr;
use std::time::Instant;

use writelane::*;
use writelane_core::{Command, Engine, Failure, Input, Policy, RetryStrategy, SubmitOptions};

const POLICY: &str = r#"{"preset":"iam","retry":{"conflict":{"base_ms":1,"cap_ms":1,"jitter":"none"}},"spike":{"enabled":false},"budget":{"enabled":false},"tokens":{"handoff":false}}"#;
const ENTITIES: [&str; 4] = ["role/a", "role/b", "role/c", "role/d"];
const CALLS_PER_CYCLE: u64 = 11;

fn direct(cycles: u64) -> f64 {
    let mut e = Engine::new(Policy::from_json(POLICY).unwrap(), 1);
    let start = Instant::now();
    let mut now = 0;
    for i in 0..cycles {
        let entity = ENTITIES[(i % 4) as usize];
        let op = e.submit(entity, now, SubmitOptions::default()).unwrap();
        let c = e.poll_command();
        assert!(matches!(c, Some(Command::Read { .. })));
        e.handle(
            now,
            Input::ReadDone {
                op,
                token: Some("v1".into()),
            },
        )
        .unwrap();
        let c = e.poll_command();
        assert!(matches!(c, Some(Command::Write { .. })));
        let f = Failure {
            code: Some("ConcurrentModification".into()),
            status: Some(409),
            ..Failure::default()
        };
        e.handle(now, Input::WriteFailed { op, failure: f })
            .unwrap();
        now += 1;
        e.handle_timeout(now).unwrap();
        let c = e.poll_command();
        assert!(matches!(c, Some(Command::Read { .. })));
        e.handle(
            now,
            Input::ReadDone {
                op,
                token: Some("v1".into()),
            },
        )
        .unwrap();
        let c = e.poll_command();
        assert!(matches!(c, Some(Command::Write { .. })));
        e.handle(
            now,
            Input::WriteDone {
                op,
                token: Some("v2".into()),
            },
        )
        .unwrap();
        let c = e.poll_command();
        assert!(matches!(c, Some(Command::Finish { .. })));
        black_box(c);
    }
    start.elapsed().as_nanos() as f64 / (cycles * CALLS_PER_CYCLE) as f64
}

fn s(text: &'static str) -> wl_str {
    wl_str {
        ptr: text.as_ptr().cast::<c_char>(),
        len: text.len(),
    }
}

fn through_c_abi(cycles: u64) -> f64 {
    // Function pointers behind black_box: the calls cannot be inlined into the loop, as
    // they cannot be for a C caller.
    let submit: unsafe extern "C" fn(
        *mut wl_engine,
        *const c_char,
        usize,
        u64,
        *const wl_submit_options,
        *mut u64,
    ) -> wl_status = black_box(wl_engine_submit);
    let poll: unsafe extern "C" fn(*mut wl_engine, *mut wl_command) -> wl_status =
        black_box(wl_engine_poll_command);
    let handle: unsafe extern "C" fn(*mut wl_engine, u64, *const wl_input) -> wl_status =
        black_box(wl_engine_handle);
    let timeout: unsafe extern "C" fn(*mut wl_engine, u64) -> wl_status =
        black_box(wl_engine_handle_timeout);
    let mut e = ptr::null_mut();
    unsafe {
        assert_eq!(
            wl_engine_new(
                POLICY.as_ptr().cast(),
                POLICY.len(),
                1,
                &mut e,
                ptr::null_mut()
            ),
            wl_status::Ok
        );
    }
    let none = wl_str {
        ptr: ptr::null(),
        len: 0,
    };
    let no_failure = wl_failure {
        code: none,
        http_status: 0,
        has_retry_after: false,
        retry_after_ms: 0,
        retry_after_header: none,
        outcome_unknown: false,
        intended_token: none,
    };
    let mut c = wl_command::NONE;
    let start = Instant::now();
    let mut now = 0;
    unsafe {
        for i in 0..cycles {
            let entity = ENTITIES[(i % 4) as usize];
            let mut op = 0;
            assert_eq!(
                submit(
                    e,
                    entity.as_ptr().cast(),
                    entity.len(),
                    now,
                    ptr::null(),
                    &mut op
                ),
                wl_status::Ok
            );
            poll(e, ptr::addr_of_mut!(c));
            assert_eq!(c.kind, wl_command_kind::Read);
            let mut input = wl_input {
                kind: wl_input_kind::ReadDone as u32,
                op,
                token: s("v1"),
                failure: no_failure,
                reply: wl_str::ABSENT,
            };
            assert_eq!(handle(e, now, ptr::addr_of!(input)), wl_status::Ok);
            poll(e, ptr::addr_of_mut!(c));
            assert_eq!(c.kind, wl_command_kind::Write);
            input.kind = wl_input_kind::WriteFailed as u32;
            input.token = none;
            input.failure.code = s("ConcurrentModification");
            input.failure.http_status = 409;
            assert_eq!(handle(e, now, ptr::addr_of!(input)), wl_status::Ok);
            now += 1;
            assert_eq!(timeout(e, now), wl_status::Ok);
            poll(e, ptr::addr_of_mut!(c));
            assert_eq!(c.kind, wl_command_kind::Read);
            input.kind = wl_input_kind::ReadDone as u32;
            input.token = s("v1");
            input.failure = no_failure;
            assert_eq!(handle(e, now, ptr::addr_of!(input)), wl_status::Ok);
            poll(e, ptr::addr_of_mut!(c));
            assert_eq!(c.kind, wl_command_kind::Write);
            input.kind = wl_input_kind::WriteDone as u32;
            input.token = s("v2");
            assert_eq!(handle(e, now, ptr::addr_of!(input)), wl_status::Ok);
            poll(e, ptr::addr_of_mut!(c));
            assert_eq!(c.kind, wl_command_kind::Finish);
            black_box(&c);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (cycles * CALLS_PER_CYCLE) as f64;
    unsafe { wl_engine_free(e) };
    ns
}

fn strategy_direct(cycles: u64) -> f64 {
    let mut st = RetryStrategy::new(Policy::preset("aws-standard").unwrap(), 1);
    let start = Instant::now();
    for _ in 0..cycles {
        // Each failure is a new observation, built from what the service returned.
        let f = Failure {
            code: Some("InternalFailure".into()),
            status: Some(500),
            ..Failure::default()
        };
        let mut t = st.acquire("iam", 0).unwrap();
        black_box(st.refresh(&mut t, &f, 0).unwrap().unwrap());
        st.record_success(&t).unwrap();
    }
    start.elapsed().as_nanos() as f64 / (cycles * 3) as f64
}

fn strategy_c_abi(cycles: u64) -> f64 {
    let acquire: unsafe extern "C" fn(
        *mut wl_engine,
        *const c_char,
        usize,
        u64,
        *mut wl_retry_token,
    ) -> wl_status = black_box(wl_engine_retry_acquire);
    let refresh: unsafe extern "C" fn(
        *mut wl_engine,
        *mut wl_retry_token,
        *const wl_failure,
        u64,
        *mut wl_retry_decision,
    ) -> wl_status = black_box(wl_engine_retry_refresh);
    let success: unsafe extern "C" fn(*mut wl_engine, *const wl_retry_token) -> wl_status =
        black_box(wl_engine_retry_success);
    let policy = "\"aws-standard\"";
    let mut e = ptr::null_mut();
    let none = wl_str {
        ptr: ptr::null(),
        len: 0,
    };
    let f = wl_failure {
        code: s("InternalFailure"),
        http_status: 500,
        has_retry_after: false,
        retry_after_ms: 0,
        retry_after_header: none,
        outcome_unknown: false,
        intended_token: none,
    };
    let mut t = wl_retry_token::default();
    let mut d = wl_retry_decision {
        retry: false,
        delay_ms: 0,
        cost: 0,
        error_class: wl_error_class::None,
        refusal: wl_refusal::None,
    };
    unsafe {
        assert_eq!(
            wl_engine_new(
                policy.as_ptr().cast(),
                policy.len(),
                1,
                &mut e,
                ptr::null_mut()
            ),
            wl_status::Ok
        );
    }
    let start = Instant::now();
    unsafe {
        for _ in 0..cycles {
            assert_eq!(
                acquire(e, "iam".as_ptr().cast(), 3, 0, ptr::addr_of_mut!(t)),
                wl_status::Ok
            );
            assert_eq!(
                refresh(
                    e,
                    ptr::addr_of_mut!(t),
                    ptr::addr_of!(f),
                    0,
                    ptr::addr_of_mut!(d)
                ),
                wl_status::Ok
            );
            assert!(d.retry);
            assert_eq!(success(e, ptr::addr_of!(t)), wl_status::Ok);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (cycles * 3) as f64;
    unsafe { wl_engine_free(e) };
    ns
}

fn main() {
    let cycles = std::env::var("WL_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    // Warm up both paths, then interleave the measurements.
    direct(1000);
    through_c_abi(1000);
    // Best of seven rounds, the two paths interleaved so both see the same machine.
    let (mut d, mut c, mut sd, mut sc) =
        (f64::INFINITY, f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for _ in 0..7 {
        d = d.min(direct(cycles));
        c = c.min(through_c_abi(cycles));
        sd = sd.min(strategy_direct(cycles));
        sc = sc.min(strategy_c_abi(cycles));
    }
    println!("engine decision, Rust direct:      {d:8.1} ns/call");
    println!("engine decision, through C ABI:    {c:8.1} ns/call");
    println!(
        "engine decision ratio C ABI/Rust:  {:8.2}x (target <= 1.5x)",
        c / d
    );
    println!("strategy decision, Rust direct:    {sd:8.1} ns/call");
    println!("strategy decision, through C ABI:  {sc:8.1} ns/call");
    println!(
        "strategy decision ratio C ABI/Rust:{:8.2}x (target <= 1.5x)",
        sc / sd
    );
    println!("rust_direct_ns_per_call={d:.1}");
    println!(
        "fixed cost of one guarded C call:  {:8.1} ns (wl_engine_poll_timeout)",
        guard_overhead(cycles * 10)
    );
}

/// The fixed cost of one guarded call that does almost nothing (`wl_engine_poll_timeout`).
fn guard_overhead(cycles: u64) -> f64 {
    let pt: unsafe extern "C" fn(*const wl_engine, *mut bool, *mut u64) -> wl_status =
        black_box(wl_engine_poll_timeout);
    let policy = "\"iam\"";
    let mut e = ptr::null_mut();
    unsafe {
        wl_engine_new(
            policy.as_ptr().cast(),
            policy.len(),
            1,
            &mut e,
            ptr::null_mut(),
        );
    }
    let (mut has, mut at) = (false, 0u64);
    let start = Instant::now();
    for _ in 0..cycles {
        unsafe { pt(e, ptr::addr_of_mut!(has), ptr::addr_of_mut!(at)) };
    }
    let ns = start.elapsed().as_nanos() as f64 / cycles as f64;
    unsafe { wl_engine_free(e) };
    ns
}
