//! The fenced lease protocol against an in-memory store: acquire, contend, stale takeover,
//! renew, lost lease, lost replies, an unavailable store, and a clock jumping forward.

use writelane_core::lease::{
    LeaseClient, LeaseEvent, LeaseRecord, LeaseRule, MemoryStore, StoreOp, StoreReply,
};

/// The core's reference store, counting the operations it carries out.
#[derive(Default)]
struct Store {
    inner: MemoryStore,
    ops: u64,
}

impl Store {
    fn apply(&mut self, op: StoreOp) -> StoreReply {
        self.ops += 1;
        self.inner.apply(op)
    }

    fn record(&self) -> Option<&LeaseRecord> {
        self.inner.record("role/app")
    }
}

const RULE: LeaseRule = LeaseRule {
    lease_ms: 1_000,
    renew_ms: 300,
    lock_delay_ms: 200,
    poll_ms: 50,
    unavailable_ms: 2_000,
    max_write_ms: 300,
    store_timeout_ms: 200,
};

fn client(owner: &str, seed: u64) -> LeaseClient {
    LeaseClient::new(
        "role/app",
        owner,
        Some(format!("{owner} pipeline run 7")),
        RULE,
        seed,
    )
}

/// Carry out every pending store operation at `now`; returns the events that followed.
fn settle(c: &mut LeaseClient, store: &mut Store, now: u64) -> Vec<LeaseEvent> {
    while let Some(op) = c.poll_op() {
        let reply = store.apply(op);
        c.handle(now, reply);
    }
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Advance `c` through its timers until `until`, settling store operations as they come.
fn run_until(c: &mut LeaseClient, store: &mut Store, until: u64) -> Vec<LeaseEvent> {
    let mut events = Vec::new();
    while let Some(t) = c.poll_timeout().filter(|&t| t <= until) {
        c.handle_timeout(t);
        events.extend(settle(c, store, t));
    }
    events
}

/// Fire `c`'s timers one by one until something happens (a takeover, say); returns when
/// and what. Fails if nothing has happened by 5 s, a few leases.
fn poll_until_events(c: &mut LeaseClient, store: &mut Store) -> (u64, Vec<LeaseEvent>) {
    loop {
        let now = c.poll_timeout().expect("the client keeps polling");
        assert!(now < 5_000, "takeover within a few leases");
        c.handle_timeout(now);
        let ev = settle(c, store, now);
        if !ev.is_empty() {
            return (now, ev);
        }
    }
}

#[test]
fn uncontended_acquire_and_release_store_the_token() {
    let mut store = Store::default();
    let mut a = client("a", 1);
    a.acquire();
    let ev = settle(&mut a, &mut store, 0);
    assert_eq!(
        ev,
        vec![LeaseEvent::Acquired {
            epoch: 1,
            committed_token: None,
            takeover: false
        }]
    );
    assert!(a.may_write(0, 100));
    assert!(
        !a.may_write(0, 5_000),
        "a write that would outlive the lease may not start"
    );
    assert_eq!(
        store.record().unwrap().holder.as_deref(),
        Some("a pipeline run 7")
    );
    a.release(10, Some(Some("v2".into())));
    assert_eq!(settle(&mut a, &mut store, 10), vec![LeaseEvent::Released]);
    let r = store.record().cloned().unwrap();
    assert_eq!(
        (r.owner.as_str(), r.epoch, r.committed_token.as_deref()),
        ("", 1, Some("v2"))
    );
    assert_eq!(store.ops, 3, "get, put_if_absent, compare_and_swap");
}

#[test]
fn a_second_writer_waits_then_gets_the_token_and_a_new_epoch() {
    let mut store = Store::default();
    let (mut a, mut b) = (client("a", 1), client("b", 2));
    a.acquire();
    settle(&mut a, &mut store, 0);
    b.acquire();
    assert!(settle(&mut b, &mut store, 0).is_empty(), "b waits");
    assert!(b.poll_timeout().is_some());
    a.release(100, Some(Some("v2".into())));
    settle(&mut a, &mut store, 100);
    let ev = run_until(&mut b, &mut store, 300);
    assert_eq!(
        ev,
        vec![LeaseEvent::Acquired {
            epoch: 2,
            committed_token: Some("v2".into()),
            takeover: false
        }]
    );
    assert!(b.may_write(300, 10));
}

#[test]
fn a_stale_holder_is_taken_over_after_a_whole_lease_with_a_lock_delay() {
    let mut store = Store::default();
    let (mut a, mut b) = (client("a", 1), client("b", 2));
    a.acquire();
    settle(&mut a, &mut store, 0);
    // a is killed: it never renews. b polls.
    b.acquire();
    settle(&mut b, &mut store, 10);
    let ev = run_until(&mut b, &mut store, 900);
    assert!(ev.is_empty(), "not stale before a whole lease: {ev:?}");
    let (now, ev) = poll_until_events(&mut b, &mut store);
    let [LeaseEvent::Acquired {
        epoch: 2,
        takeover: true,
        ..
    }] = ev[..]
    else {
        panic!("{ev:?}")
    };
    assert!(now >= 10 + RULE.lease_ms);
    let writable_at = b.poll_timeout().expect("lock-delay timer");
    assert_eq!(writable_at, now + RULE.lock_delay_ms);
    assert!(
        !b.may_write(writable_at - 1, 1),
        "no write during the lock-delay"
    );
    b.handle_timeout(writable_at);
    assert!(b.may_write(writable_at, 1));
    let took_at = writable_at;
    // a comes back and tries to commit: refused, and told it lost the lease.
    a.release(took_at + 1, Some(Some("late".into())));
    assert_eq!(
        settle(&mut a, &mut store, took_at + 1),
        vec![LeaseEvent::Lost]
    );
    assert_ne!(
        store.record().unwrap().committed_token.as_deref(),
        Some("late")
    );
    assert_eq!(store.record().unwrap().owner, "b");
}

#[test]
fn renewals_keep_a_live_holder_from_looking_stale() {
    let mut store = Store::default();
    let (mut a, mut b) = (client("a", 1), client("b", 2));
    a.acquire();
    settle(&mut a, &mut store, 0);
    b.acquire();
    settle(&mut b, &mut store, 0);
    // Interleave both clients' timers for ten leases.
    let mut now = 0;
    while now < 10_000 {
        now += 10;
        for (c, _) in [(&mut a, 0), (&mut b, 1)] {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
                let ev = settle(c, &mut store, now);
                assert!(
                    !ev.iter()
                        .any(|e| matches!(e, LeaseEvent::Acquired { .. } | LeaseEvent::Lost)),
                    "{ev:?}"
                );
            }
        }
    }
    assert_eq!(store.record().unwrap().owner, "a");
    assert!(a.may_write(now, 10));
}

#[test]
fn a_failed_renewal_loses_the_lease() {
    let mut store = Store::default();
    let mut a = client("a", 1);
    a.acquire();
    settle(&mut a, &mut store, 0);
    // Someone force-releases by bumping the record (as the README's procedure does).
    let mut r = store.record().cloned().unwrap();
    r.owner.clear();
    r.rvn ^= 1;
    r.epoch += 1;
    store.inner.set("role/app", Some(r));
    let ev = run_until(&mut a, &mut store, 400);
    assert_eq!(ev, vec![LeaseEvent::Lost]);
    assert!(!a.may_write(400, 1));
}

#[test]
fn a_lost_reply_is_resolved_by_reading_back() {
    let mut store = Store::default();
    let mut a = client("a", 1);
    a.acquire();
    // The put lands but its reply is lost.
    let get = a.poll_op().unwrap();
    a.handle(0, store.apply(get));
    let put = a.poll_op().unwrap();
    store.apply(put);
    a.handle(1, StoreReply::Lost);
    let ev = settle(&mut a, &mut store, 2);
    assert_eq!(
        ev,
        vec![LeaseEvent::Acquired {
            epoch: 1,
            committed_token: None,
            takeover: false
        }]
    );

    // And a put whose reply is lost but which did not land: acquiring goes on.
    let mut store = Store::default();
    let mut b = client("b", 2);
    b.acquire();
    let get = b.poll_op().unwrap();
    b.handle(0, store.apply(get));
    let _dropped = b.poll_op().unwrap();
    b.handle(1, StoreReply::Lost);
    // The read-back finds no record, so b simply goes on acquiring.
    let ev = settle(&mut b, &mut store, 2);
    assert_eq!(
        ev,
        vec![LeaseEvent::Acquired {
            epoch: 1,
            committed_token: None,
            takeover: false
        }]
    );
    assert_eq!(store.record().unwrap().owner, "b");
}

#[test]
fn an_unavailable_store_means_giving_up_without_a_lease() {
    let mut a = client("a", 1);
    a.acquire();
    let mut now = 0;
    let mut events = Vec::new();
    while events.is_empty() && now < 10_000 {
        if a.poll_op().is_some() {
            a.handle(now, StoreReply::Unavailable);
        }
        events.extend(std::iter::from_fn(|| a.poll_event()));
        if let Some(t) = a.poll_timeout() {
            now = t;
            a.handle_timeout(now);
        }
    }
    assert_eq!(events, vec![LeaseEvent::Unavailable]);
    assert!(now >= RULE.unavailable_ms);
    assert!(!a.may_write(now, 0));
}

#[test]
fn a_clock_jumping_forward_does_not_let_two_writers_in() {
    let mut store = Store::default();
    let (mut a, mut b) = (client("a", 1), client("b", 2));
    a.acquire();
    settle(&mut a, &mut store, 0);
    b.acquire();
    settle(&mut b, &mut store, 0);
    // b's clock jumps a minute ahead: its next poll sees the same rvn "a minute" later.
    let t = b.poll_timeout().unwrap();
    b.handle_timeout(t + 60_000);
    let ev = settle(&mut b, &mut store, t + 60_000);
    assert!(
        ev.is_empty(),
        "one observation across a jump is not a whole lease: {ev:?}"
    );
    assert_eq!(store.record().unwrap().owner, "a");
}

#[test]
fn lease_timings_are_validated() {
    assert!(LeaseRule::default().validate().is_ok());
    assert!(RULE.validate().is_ok());
    let e = LeaseRule {
        lease_ms: 500,
        ..RULE
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.path, "lease.lease_ms");
    assert!(e.rule.contains("twice renew_ms"));
    let e = LeaseRule { poll_ms: 0, ..RULE }.validate().unwrap_err();
    assert_eq!(e.path, "lease.poll_ms");
    let e = LeaseRule {
        lock_delay_ms: 1_000,
        ..RULE
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.path, "lease.lock_delay_ms");
}

#[test]
fn a_lease_confirmed_by_read_back_runs_from_the_lost_write() {
    let mut store = Store::default();
    let mut a = client("a", 1);
    a.acquire();
    let get = a.poll_op().unwrap();
    a.handle(0, store.apply(get));
    let put = a.poll_op().unwrap();
    store.apply(put);
    // The put was sent at 0; its reply is lost and the read-back happens much later.
    a.handle(600, StoreReply::Lost);
    let ev = settle(&mut a, &mut store, 900);
    assert!(matches!(ev[..], [LeaseEvent::Acquired { .. }]));
    // Other machines count the lease from the put at 0: it runs out at 1000, so a write
    // ending after that may not start, whatever the read-back's time.
    assert!(!a.may_write(900, 200));
    assert!(a.may_write(900, 50));
}

#[test]
fn a_record_left_behind_by_this_owner_is_taken_at_once() {
    let mut store = Store::default();
    let mut first = client("a", 1);
    first.acquire();
    settle(&mut first, &mut store, 0);
    // The holder's release was interrupted: the record still names owner "a".
    drop(first);
    let mut again = client("a", 2);
    again.acquire();
    let ev = settle(&mut again, &mut store, 10);
    assert_eq!(
        ev,
        vec![LeaseEvent::Acquired {
            epoch: 2,
            committed_token: None,
            takeover: false
        }]
    );
    // Another owner would have had to wait a whole lease.
    assert_eq!(store.record().unwrap().owner, "a");
}

#[test]
fn only_a_released_record_hands_its_token_on() {
    // Released with a token: the next holder trusts it.
    let mut store = Store::default();
    let mut a = client("a", 1);
    a.acquire();
    settle(&mut a, &mut store, 0);
    a.release(5, Some(Some("t1".into())));
    assert_eq!(settle(&mut a, &mut store, 5), vec![LeaseEvent::Released]);
    let mut b = client("b", 2);
    b.acquire();
    let ev = settle(&mut b, &mut store, 10);
    let [LeaseEvent::Acquired {
        committed_token: Some(ref t),
        ..
    }] = ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(t, "t1");

    // b dies holding the lease, perhaps after its write landed: the "t1" in its record may
    // be stale, so neither b's own restart nor a takeover may hand it on.
    let mut restarted = client("b", 4);
    restarted.acquire();
    let ev = settle(&mut restarted, &mut store, 15);
    assert!(
        matches!(
            ev[..],
            [LeaseEvent::Acquired {
                committed_token: None,
                takeover: false,
                ..
            }]
        ),
        "{ev:?}"
    );
    drop(restarted); // and dies holding the lease in turn
    let mut c = client("c", 3);
    c.acquire();
    settle(&mut c, &mut store, 20);
    let (_, ev) = poll_until_events(&mut c, &mut store);
    assert!(
        matches!(
            ev[..],
            [LeaseEvent::Acquired {
                committed_token: None,
                takeover: true,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert_eq!(store.record().unwrap().committed_token, None);
}

mod rules {
    use writelane_core::lease::{
        finish_force_release, owner_id, plan_force_release, rvn_from, ForceReleasePlan,
        ForceReleaseResult, LeaseRecord, StoreOp, StoreReply, MAX_RVN,
    };
    use writelane_core::Policy;

    fn held(rvn: u64) -> LeaseRecord {
        LeaseRecord {
            owner: "host-b:7:00000000000000aa".into(),
            epoch: 4,
            rvn,
            lease_ms: 10_000,
            committed_token: Some("v3".into()),
            holder: Some("deploy run 42".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_store_makes_every_preset_shared() {
        use writelane_core::policy::LaneMode;
        for name in ["iam", "aws-standard"] {
            let p = Policy::preset(name).unwrap().for_store();
            assert_eq!(p.lanes.mode, LaneMode::Shared, "{name}");
            p.validate().unwrap();
        }
    }

    #[test]
    fn force_release_bumps_the_epoch_and_drops_holder_and_token() {
        let plan = plan_force_release("role/app", Some(held(77)), None, 5);
        let ForceReleasePlan::Swap(swap) = plan else {
            panic!("expected a swap, got {plan:?}")
        };
        let StoreOp::CompareAndSwap {
            key,
            expected_rvn,
            record,
        } = &swap
        else {
            panic!("expected compare_and_swap")
        };
        assert_eq!((key.as_str(), *expected_rvn), ("role/app", 77));
        assert_eq!(record.owner, "");
        assert_eq!(record.epoch, 5);
        assert_eq!(record.rvn, 5);
        assert_eq!(record.committed_token, None);
        assert_eq!(record.holder, None);
        assert_eq!(
            finish_force_release(&swap, StoreReply::Done),
            Some(ForceReleaseResult::Released {
                record: record.clone()
            })
        );
        // A retried request refused by the record it wrote landed.
        assert_eq!(
            finish_force_release(
                &swap,
                StoreReply::Refused {
                    current: Some(record.clone())
                }
            ),
            Some(ForceReleaseResult::Released {
                record: record.clone()
            })
        );
        // Anything else refused it: nothing was written.
        assert_eq!(
            finish_force_release(
                &swap,
                StoreReply::Refused {
                    current: Some(held(78))
                }
            ),
            Some(ForceReleaseResult::Changed {
                current: Some(held(78))
            })
        );
        assert_eq!(finish_force_release(&swap, StoreReply::Lost), None);
    }

    #[test]
    fn force_release_has_one_result_per_situation() {
        assert_eq!(
            plan_force_release("k", None, None, 1),
            ForceReleasePlan::Done(ForceReleaseResult::NoRecord)
        );
        let free = LeaseRecord {
            owner: String::new(),
            ..held(9)
        };
        assert_eq!(
            plan_force_release("k", Some(free.clone()), None, 1),
            ForceReleasePlan::Done(ForceReleaseResult::AlreadyFree { record: free })
        );
        assert_eq!(
            plan_force_release("k", Some(held(9)), Some(8), 1),
            ForceReleasePlan::Done(ForceReleaseResult::Changed {
                current: Some(held(9))
            })
        );
        // The new rvn never equals the one it replaces.
        let ForceReleasePlan::Swap(StoreOp::CompareAndSwap { record, .. }) =
            plan_force_release("k", Some(held(9)), Some(9), 9)
        else {
            panic!("expected a swap")
        };
        assert_ne!(record.rvn, 9);
    }

    #[test]
    fn rvns_fit_every_language() {
        assert_eq!(rvn_from(0), 1);
        assert_eq!(rvn_from(u64::MAX), MAX_RVN);
        assert_eq!(
            MAX_RVN as f64 as u64, MAX_RVN,
            "an rvn survives a JavaScript number"
        );
    }

    #[test]
    fn owner_ids_have_one_shape() {
        assert_eq!(owner_id("ci-7", 42, 0xab), "ci-7:42:00000000000000ab");
        assert_eq!(owner_id("a b:c\u{e9}", 1, 1), "a_b_c_:1:0000000000000001");
        assert_eq!(owner_id("", 1, 1), "host:1:0000000000000001");
        assert!(owner_id(&"h".repeat(1000), u32::MAX, u64::MAX).len() <= 256);
    }

    #[test]
    fn records_are_parsed_and_validated_by_the_core() {
        let r = held(77);
        assert_eq!(LeaseRecord::from_json(r.to_json().as_bytes()).unwrap(), r);
        let bad = |text: &str| LeaseRecord::from_json(text.as_bytes()).unwrap_err();
        assert_eq!(bad("{").field, "$");
        assert_eq!(bad("\u{0}").field, "$");
        assert_eq!(
            LeaseRecord::from_json(&[0xff, 0xfe]).unwrap_err().field,
            "$"
        );
        let with = |f: &str, v: serde_json::Value| {
            let mut j = serde_json::to_value(held(77)).unwrap();
            j[f] = v;
            j.to_string()
        };
        assert_eq!(bad(&with("epoch", 0.into())).field, "epoch");
        assert_eq!(bad(&with("rvn", 0.into())).field, "rvn");
        assert_eq!(bad(&with("rvn", (1u64 << 60).into())).field, "rvn");
        assert_eq!(bad(&with("lease_ms", 0.into())).field, "lease_ms");
        assert_eq!(bad(&with("owner", "o".repeat(300).into())).field, "owner");
        assert_eq!(
            bad(&with("holder", "h".repeat(2000).into())).field,
            "holder"
        );
        assert_eq!(
            bad(&with("committed_token", "t".repeat(2000).into())).field,
            "committed_token"
        );
        assert_eq!(bad(&with("epoch", (-1).into())).field, "$");
        assert!(bad(r#"{"owner":"","epoch":1,"rvn":1,"lease_ms":1,"committed_token":null,"holder":null,"x":1}"#).rule.contains("unknown field"));
    }

    #[test]
    fn the_store_timeout_fits_inside_the_lease() {
        let p = Policy::from_json(
            r#"{"lease":{"lease_ms":400,"renew_ms":150,"lock_delay_ms":100,"max_write_ms":100}}"#,
        )
        .unwrap();
        assert_eq!(p.lease.store_timeout_ms, 125);
        assert_eq!(Policy::preset("iam").unwrap().lease.store_timeout_ms, 2_000);
        let e = Policy::from_json(
            r#"{"lease":{"lease_ms":400,"renew_ms":150,"lock_delay_ms":100,"max_write_ms":100,"store_timeout_ms":300}}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "lease.store_timeout_ms");
        let p = Policy::from_json(r#"{"lease":{"store_timeout_ms":5000}}"#).unwrap();
        assert_eq!(p.lease.store_timeout_ms, 5_000);
        assert_eq!(Policy::from_json(&p.to_json()).unwrap(), p);
    }
}

#[test]
fn expires_at_runs_from_the_send_time_of_the_last_landed_write() {
    let mut store = Store::default();
    let mut a = client("a", 1);
    assert_eq!(a.expires_at(), None, "nothing held");
    a.acquire();
    settle(&mut a, &mut store, 10);
    assert_eq!(a.expires_at(), Some(10 + RULE.lease_ms));
    // The renewal at 10 + renew_ms lands: the lease runs from its send time.
    run_until(&mut a, &mut store, 10 + RULE.renew_ms);
    assert_eq!(a.expires_at(), Some(10 + RULE.renew_ms + RULE.lease_ms));
    // A renewal that gets no answer does not move it.
    let renew_at = a.poll_timeout().unwrap();
    a.handle_timeout(renew_at);
    assert!(matches!(a.poll_op(), Some(StoreOp::CompareAndSwap { .. })));
    a.handle(renew_at + RULE.store_timeout_ms, StoreReply::Lost);
    assert_eq!(a.expires_at(), Some(10 + RULE.renew_ms + RULE.lease_ms));
    // Released: nothing held.
    let mut c = client("c", 3);
    c.acquire();
    let mut fresh = Store::default();
    settle(&mut c, &mut fresh, 0);
    c.release(5, None);
    settle(&mut c, &mut fresh, 5);
    assert_eq!(c.expires_at(), None);
}
