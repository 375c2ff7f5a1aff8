//! The queue-like hand-off (version 2 records) with many clients on one in-memory store and
//! one clock: FIFO among registered waiters, a release that grants the head in the same
//! compare-and-swap, dead waiters and a dead head, the queue's bound, a lost reply while
//! registering, and renewals that survive registrations under them.

use writelane_core::lease::{
    LeaseClient, LeaseEvent, LeaseRecord, LeaseRule, MemoryStore, StoreOp, StoreReply, MAX_QUEUE,
};

const KEY: &str = "role/app";

const RULE: LeaseRule = LeaseRule {
    lease_ms: 1_000,
    renew_ms: 300,
    lock_delay_ms: 200,
    poll_ms: 50,
    unavailable_ms: 2_000,
    max_write_ms: 300,
    store_timeout_ms: 200,
};

struct Proc {
    c: LeaseClient,
    arrive: u64,
    hold: u64,
    /// Stops at this time: never answers again (kill -9).
    dies: Option<u64>,
    acquired: Option<u64>,
    delayed_until: Option<u64>,
    done: bool,
    takeover: Option<bool>,
    token_at_grant: Option<Option<String>>,
    ops: u64,
}

struct Sim {
    store: MemoryStore,
    procs: Vec<Proc>,
    now: u64,
    /// Owners in the order they acquired.
    order: Vec<usize>,
    /// Replies to lose: (process, its nth store operation), applied but answered `Lost`.
    lose: Vec<(usize, u64)>,
    holders_max: usize,
}

impl Sim {
    fn new() -> Self {
        Sim {
            store: MemoryStore::new(),
            procs: Vec::new(),
            now: 0,
            order: Vec::new(),
            lose: Vec::new(),
            holders_max: 0,
        }
    }

    fn add(&mut self, arrive: u64, hold: u64) -> usize {
        let i = self.procs.len();
        let owner = format!("host-{i}:1:{i:016x}");
        self.procs.push(Proc {
            c: LeaseClient::new(KEY, &owner, None, RULE, 100 + i as u64),
            arrive,
            hold,
            dies: None,
            acquired: None,
            delayed_until: None,
            done: false,
            takeover: None,
            token_at_grant: None,
            ops: 0,
        });
        i
    }

    fn alive(&self, i: usize) -> bool {
        self.procs[i].dies.map_or(true, |d| self.now < d)
    }

    fn settle(&mut self, i: usize) {
        while let Some(op) = self.procs[i].c.poll_op() {
            self.procs[i].ops += 1;
            let n = self.procs[i].ops;
            let mut reply = self.store.apply(op);
            if self.lose.contains(&(i, n)) {
                reply = StoreReply::Lost;
            }
            self.procs[i].c.handle(self.now, reply);
        }
        while let Some(ev) = self.procs[i].c.poll_event() {
            match ev {
                LeaseEvent::Acquired {
                    takeover,
                    committed_token,
                    ..
                } => {
                    let p = &mut self.procs[i];
                    p.acquired = Some(self.now);
                    p.takeover = Some(takeover);
                    p.token_at_grant = Some(committed_token);
                    self.order.push(i);
                }
                LeaseEvent::Released | LeaseEvent::Lost | LeaseEvent::Unavailable => {
                    self.procs[i].done = true;
                }
            }
        }
    }

    fn holders(&self) -> usize {
        (0..self.procs.len())
            .filter(|&i| self.alive(i) && self.procs[i].c.holding())
            .count()
    }

    /// Run one tick at a time until `until` or until every live process is done.
    fn run(&mut self, until: u64) {
        while self.now <= until {
            for i in 0..self.procs.len() {
                if !self.alive(i) || self.procs[i].done {
                    continue;
                }
                if self.procs[i].arrive == self.now {
                    self.procs[i].c.acquire();
                    self.settle(i);
                }
                if self.procs[i]
                    .c
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.procs[i].c.handle_timeout(self.now);
                    self.settle(i);
                }
                let p = &self.procs[i];
                if p.c.holding() && p.delayed_until.is_none() {
                    self.procs[i].delayed_until = Some(self.now);
                }
                let p = &self.procs[i];
                if p.c.holding() && p.delayed_until.is_some_and(|t| self.now >= t + p.hold) {
                    let token = format!("t{i}");
                    self.procs[i].c.release(self.now, Some(Some(token)));
                    self.settle(i);
                }
                self.holders_max = self.holders_max.max(self.holders());
            }
            if (0..self.procs.len()).all(|i| !self.alive(i) || self.procs[i].done) {
                return;
            }
            self.now += 1;
        }
    }

    fn record(&self) -> LeaseRecord {
        self.store.record(KEY).cloned().expect("a record")
    }

    fn total_ops(&self) -> u64 {
        self.procs.iter().map(|p| p.ops).sum()
    }
}

#[test]
fn a_queue_of_three_is_served_in_arrival_order_by_hand_off() {
    let mut s = Sim::new();
    // Equal holds, so the published expected hold is right and waiters wake on time.
    let a = s.add(0, 400);
    let b = s.add(10, 400);
    let c = s.add(20, 400);
    let d = s.add(30, 400);
    s.run(390);
    let r = s.record();
    assert_eq!(r.version, 2);
    let queued: Vec<&str> = r.queue.iter().map(|t| t.owner.as_str()).collect();
    assert_eq!(
        queued,
        [
            "host-1:1:0000000000000001",
            "host-2:1:0000000000000002",
            "host-3:1:0000000000000003"
        ]
    );
    assert_eq!(
        r.queue.iter().map(|t| t.ticket).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    s.run(5_000);
    assert_eq!(s.order, [a, b, c, d]);
    assert_eq!(s.holders_max, 1);
    for &w in &[b, c, d] {
        let p = &s.procs[w];
        assert_eq!(p.takeover, Some(false), "a grant, not a takeover");
        // The hand-off carries the releaser's token: no read needed.
        assert_eq!(p.token_at_grant, Some(Some(format!("t{}", w - 1))));
        // The grantee accepts right after the release (within its sleep or a poll).
        let released = s.procs[w - 1].delayed_until.unwrap() + s.procs[w - 1].hold;
        let gap = p.acquired.unwrap() - released;
        // Within a poll: the expected hold is right (equal holds), and before it was
        // known waiters looked a poll interval per place.
        let bound = RULE.poll_ms;
        assert!(gap <= bound, "hand-off gap {gap} ms");
    }
    let r = s.record();
    assert!(r.owner.is_empty() && r.queue.is_empty());
    assert_eq!(r.epoch, 4, "one epoch per holding");
    assert!(r.hold_ms > 0, "holders publish the expected hold");
    // Per write: a get, the registration, a beat or two, the accept, a renewal, the
    // release, and polls: while A holds 400 ms no hold is known yet, so B (the head) polls
    // every 25-50 ms and C, D look every 50 and 100 ms (measured: 63).
    assert!(
        s.total_ops() <= 4 * 16,
        "{} store operations for 4 writes",
        s.total_ops()
    );
}

#[test]
fn a_dozen_staggered_arrivals_acquire_in_arrival_order() {
    let mut s = Sim::new();
    for i in 0..12 {
        s.add(i * 7, 60);
    }
    s.run(20_000);
    assert_eq!(s.order, (0..12).collect::<Vec<_>>());
    assert_eq!(s.holders_max, 1);
    let per_write = s.total_ops() as f64 / 12.0;
    // Short holds (60 ms) against beats every 300 ms: about 9 per write (measured 8.8).
    assert!(per_write <= 10.0, "{per_write} store operations per write");
}

#[test]
fn a_dead_waiter_is_removed_and_the_next_one_served() {
    let mut s = Sim::new();
    let a = s.add(0, 3_000);
    let b = s.add(10, 100);
    let c = s.add(20, 100);
    s.procs[b].dies = Some(100);
    s.run(20_000);
    assert_eq!(s.order, [a, c]);
    // C removed B's ticket while A still held, so A's release granted C directly.
    assert_eq!(s.procs[c].takeover, Some(false));
    assert_eq!(s.procs[c].token_at_grant, Some(Some("t0".into())));
    assert!(s.procs[c].acquired.unwrap() <= 3_000 + RULE.poll_ms);
}

#[test]
fn a_dead_head_is_taken_over_after_a_lease_with_a_lock_delay_and_a_read() {
    let mut s = Sim::new();
    let a = s.add(0, 200);
    let b = s.add(10, 100);
    let c = s.add(20, 100);
    // B dies just before A grants it the lease: nobody ever uses the grant.
    s.procs[b].dies = Some(150);
    s.run(20_000);
    assert_eq!(s.order, [a, c]);
    let p = &s.procs[c];
    assert_eq!(p.takeover, Some(true));
    // A grantee holds from the moment it sees its grant, with no write to the store, so
    // a grant may have had writes: its token is not trusted and the lock-delay applies.
    assert_eq!(p.token_at_grant, Some(None));
    assert!(p.delayed_until.unwrap() >= p.acquired.unwrap() + RULE.lock_delay_ms);
    let waited = p.acquired.unwrap() - 200;
    assert!(waited >= RULE.lease_ms, "a whole lease: {waited}");
    assert!(waited <= 3 * RULE.lease_ms, "{waited}");
}

#[test]
fn a_stale_accepted_holder_still_costs_a_lock_delay_and_a_read() {
    let mut s = Sim::new();
    let a = s.add(0, 100_000);
    let b = s.add(10, 100);
    s.procs[a].dies = Some(50);
    s.run(20_000);
    assert_eq!(s.order, [a, b]);
    let p = &s.procs[b];
    assert_eq!(p.takeover, Some(true));
    assert_eq!(p.token_at_grant, Some(None));
    assert!(p.delayed_until.unwrap() >= p.acquired.unwrap() + RULE.lock_delay_ms);
}

#[test]
fn beyond_the_bound_waiters_poll_and_still_get_the_lease() {
    let mut s = Sim::new();
    let n = MAX_QUEUE + 3;
    s.add(0, 500);
    for i in 0..n {
        s.add(1 + i as u64, 5);
    }
    s.run(400);
    let r = s.record();
    assert_eq!(r.queue.len(), MAX_QUEUE, "the queue is full");
    LeaseRecord::from_json(r.to_json().as_bytes()).unwrap();
    s.run(200_000);
    assert_eq!(s.order.len(), n + 1, "everyone wrote");
    assert_eq!(s.holders_max, 1);
    // The registered ones in arrival order.
    assert_eq!(
        s.order[..MAX_QUEUE + 1],
        (0..=MAX_QUEUE).collect::<Vec<_>>()[..]
    );
}

#[test]
fn a_registration_whose_reply_is_lost_is_found_by_reading_back() {
    let mut s = Sim::new();
    let a = s.add(0, 300);
    let b = s.add(10, 100);
    let c = s.add(20, 100);
    // B's first op is the get, its second the registration: applied, answer lost.
    s.lose.push((b, 2));
    s.run(200);
    let r = s.record();
    assert_eq!(r.queue.len(), 2);
    assert_eq!(r.queue[0].owner, "host-1:1:0000000000000001");
    s.run(20_000);
    assert_eq!(s.order, [a, b, c]);
}

#[test]
fn renewals_survive_waiters_registering_under_them() {
    let mut s = Sim::new();
    let a = s.add(0, 2_500);
    for i in 0..5 {
        s.add(100 + i * 200, 10);
    }
    s.run(30_000);
    assert_eq!(s.order[0], a);
    assert_eq!(s.order, (0..6).collect::<Vec<_>>());
    assert_eq!(s.holders_max, 1);
}

#[test]
fn a_version_1_holder_is_polled_not_queued_on() {
    let mut store_v1 = LeaseRecord {
        owner: "old-client".into(),
        epoch: 3,
        rvn: 42,
        lease_ms: 1_000,
        ..Default::default()
    };
    let mut s = Sim::new();
    s.store.set(KEY, Some(store_v1.clone()));
    let b = s.add(0, 10);
    s.run(500);
    assert_eq!(s.record(), store_v1, "a version 1 record is left as it is");
    // The old client renews twice, then releases.
    store_v1.rvn = 43;
    s.store.set(KEY, Some(store_v1.clone()));
    s.run(900);
    store_v1.rvn = 44;
    store_v1.owner = String::new();
    store_v1.committed_token = Some("v9".into());
    s.store.set(KEY, Some(store_v1));
    s.run(5_000);
    assert_eq!(s.order, [b]);
    assert_eq!(s.procs[b].token_at_grant, Some(Some("v9".into())));
    assert_eq!(s.procs[b].takeover, Some(false));
}

#[test]
fn a_grant_refused_by_a_registration_is_sent_again_on_the_record_found() {
    // A's release races B's registration: the release is refused (rvn changed) but the
    // holding is still A's, so A releases again, granting B.
    let mut store = MemoryStore::new();
    let mut a = LeaseClient::new(KEY, "a", None, RULE, 1);
    a.acquire();
    while let Some(op) = a.poll_op() {
        let reply = store.apply(op);
        a.handle(0, reply);
    }
    assert!(a.holding());
    assert!(matches!(a.poll_event(), Some(LeaseEvent::Acquired { .. })));
    a.release(100, Some(Some("v1".into())));
    let release = a.poll_op().unwrap();
    let mut b = LeaseClient::new(KEY, "b", None, RULE, 2);
    b.acquire();
    while let Some(op) = b.poll_op() {
        let reply = store.apply(op);
        b.handle(50, reply);
    }
    assert_eq!(store.record(KEY).unwrap().queue.len(), 1);
    let reply = store.apply(release);
    assert!(matches!(reply, StoreReply::Refused { .. }));
    a.handle(100, reply);
    let again = a.poll_op().expect("the release is sent again");
    let StoreOp::CompareAndSwap { ref record, .. } = again else {
        panic!("a compare-and-swap")
    };
    assert_eq!(record.owner, "b");
    assert_eq!(store.apply(again), StoreReply::Done);
    a.handle(100, StoreReply::Done);
    assert_eq!(a.poll_event(), Some(LeaseEvent::Released));
}
