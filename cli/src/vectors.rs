//! The conformance vectors: scenarios run through the core, with every command, event and
//! timeout recorded, written as JSON for every binding to replay (format in
//! `tests/vectors/README.md`).

use std::collections::HashMap;

use serde_json::{json, Value};
use writelane_core::lease::{LeaseRecord, MemoryStore, StoreOp, StoreReply, Ticket, MAX_QUEUE};
use writelane_core::{
    policy_token, Command, Engine, Failure, Input, OpId, Policy, RetryStrategy, RetryToken,
    SubmitOptions,
};

/// One generated vector: its file stem and its JSON.
pub struct Vector {
    /// `NNN-name`.
    pub stem: String,
    /// The document.
    pub json: Value,
}

/// Builds an engine vector by running each step as it is added.
struct EngineScript {
    name: &'static str,
    description: &'static str,
    policy: Value,
    seed: u64,
    engine: Engine,
    now: u64,
    steps: Vec<Value>,
    /// The engine's owner, for shared-lane vectors.
    owner: Option<&'static str>,
    /// The last store operation commanded, per op, and the store it runs against.
    store_ops: HashMap<u64, StoreOp>,
    store: MemoryStore,
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("core types serialise")
}

impl EngineScript {
    fn new(name: &'static str, description: &'static str, policy: Value, seed: u64) -> Self {
        let p = Policy::from_value(&policy).expect("vector policies are valid");
        EngineScript {
            name,
            description,
            policy,
            seed,
            engine: Engine::new(p, seed),
            now: 0,
            steps: Vec::new(),
            owner: None,
            store_ops: HashMap::new(),
            store: MemoryStore::new(),
        }
    }

    /// A shared-lane script: the engine writes lease records as `owner`.
    fn shared(
        name: &'static str,
        description: &'static str,
        policy: Value,
        seed: u64,
        owner: &'static str,
    ) -> Self {
        let mut s = Self::new(name, description, policy.clone(), seed);
        let p = Policy::from_value(&policy).expect("vector policies are valid");
        s.engine = Engine::with_owner(p, seed, owner).expect("valid owner");
        s.owner = Some(owner);
        s
    }

    fn record(&mut self, mut step: Value, error: Option<&'static str>) {
        let mut commands = Vec::new();
        while let Some(c) = self.engine.poll_command() {
            if let Command::Store { op, operation } = &c {
                self.store_ops.insert(op.0, operation.clone());
            }
            commands.push(to_json(&c));
        }
        let mut events = Vec::new();
        while let Some(e) = self.engine.poll_event() {
            events.push(to_json(&e));
        }
        let obj = step.as_object_mut().expect("steps are objects");
        if let Some(kind) = error {
            obj.insert("error".into(), json!(kind));
        }
        obj.insert("commands".into(), Value::Array(commands));
        obj.insert("events".into(), Value::Array(events));
        obj.insert("next_timeout".into(), json!(self.engine.poll_timeout()));
        self.steps.push(step);
    }

    fn submit(
        &mut self,
        at: u64,
        entity: &str,
        expected: Option<&str>,
        deadline_ms: Option<u64>,
    ) -> &mut Self {
        let opts = SubmitOptions {
            expected: expected.map(str::to_string),
            deadline_ms,
            ..SubmitOptions::default()
        };
        self.submit_with(at, entity, opts)
    }

    /// Submit with every option spelled out.
    fn submit_with(&mut self, at: u64, entity: &str, opts: SubmitOptions) -> &mut Self {
        let step_submit = to_json(&opts);
        let mut submit = step_submit.as_object().cloned().unwrap_or_default();
        submit.insert("entity".into(), json!(entity));
        match self.engine.submit(entity, at, opts) {
            Ok(op) => {
                self.now = at;
                self.record(json!({"at": at, "submit": submit, "op": op}), None)
            }
            Err(e) => self.record(json!({"at": at, "submit": submit}), Some(e.kind())),
        }
        self
    }

    fn input(&mut self, at: u64, input: Input) -> &mut Self {
        let step = json!({"at": at, "input": to_json(&input)});
        match self.engine.handle(at, input) {
            Ok(()) => {
                self.now = at;
                self.record(step, None)
            }
            Err(e) => self.record(step, Some(e.kind())),
        }
        self
    }

    fn timeout(&mut self, at: u64) -> &mut Self {
        let step = json!({"at": at, "timeout": true});
        match self.engine.handle_timeout(at) {
            Ok(()) => {
                self.now = at;
                self.record(step, None)
            }
            Err(e) => self.record(step, Some(e.kind())),
        }
        self
    }

    /// Advance to the engine's next timeout.
    fn wait(&mut self) -> &mut Self {
        let Some(at) = self.engine.poll_timeout() else {
            panic!("{}: nothing waits on time", self.name)
        };
        self.timeout(at)
    }

    fn read(&mut self, dt: u64, op: u64, token: Option<&str>) -> &mut Self {
        let at = self.now + dt;
        self.input(
            at,
            Input::ReadDone {
                op: OpId(op),
                token: token.map(str::to_string),
            },
        )
    }

    fn wrote(&mut self, dt: u64, op: u64, token: Option<&str>) -> &mut Self {
        let at = self.now + dt;
        self.input(
            at,
            Input::WriteDone {
                op: OpId(op),
                token: token.map(str::to_string),
            },
        )
    }

    fn failed(&mut self, dt: u64, op: u64, failure: Failure) -> &mut Self {
        let at = self.now + dt;
        self.input(
            at,
            Input::WriteFailed {
                op: OpId(op),
                failure,
            },
        )
    }

    /// Answer `op`'s last store operation from the script's store.
    fn store(&mut self, dt: u64, op: u64) -> &mut Self {
        let operation = self
            .store_ops
            .remove(&op)
            .expect("a store command to answer");
        let reply = self.store.apply(operation);
        self.reply(dt, op, reply)
    }

    /// Drive `op`'s lease against the script's store — answering store operations and
    /// waiting out lease timers — until it is commanded to read or write, or finishes.
    fn lease_until_work(&mut self, op: u64) -> &mut Self {
        for _ in 0..64 {
            let last = self.steps.last().expect("a step was recorded");
            let work = last["commands"].as_array().is_some_and(|cmds| {
                cmds.iter()
                    .any(|c| c["op"] == json!(op) && c["type"] != "store")
            });
            if work {
                return self;
            }
            if self.store_ops.contains_key(&op) {
                self.store(5, op);
            } else {
                self.wait();
            }
        }
        panic!("op {op} never got to work")
    }

    /// Drive `op`'s lease against the script's store — answering store operations and
    /// waiting out lease timers — until `done` holds for the store.
    fn lease_until(&mut self, op: u64, done: impl Fn(&MemoryStore) -> bool) -> &mut Self {
        for _ in 0..200 {
            if done(&self.store) {
                return self;
            }
            if self.store_ops.contains_key(&op) {
                self.store(5, op);
            } else {
                self.wait();
            }
        }
        panic!("op {op} never got there")
    }

    /// Answer `op`'s last store operation with `reply`, whatever it was.
    fn reply(&mut self, dt: u64, op: u64, reply: StoreReply) -> &mut Self {
        self.store_ops.remove(&op);
        let at = self.now + dt;
        self.input(
            at,
            Input::StoreReply {
                op: OpId(op),
                reply,
            },
        )
    }

    fn finish(self) -> Value {
        let stats = self.engine.stats();
        let mut doc = json!({
            "name": self.name,
            "description": self.description,
            "kind": "engine",
            "policy": self.policy,
            "seed": self.seed,
            "steps": self.steps,
            "final_stats": {"global": stats.global, "budget": stats.budget},
        });
        if let Some(owner) = self.owner {
            doc["owner"] = json!(owner);
        }
        doc
    }
}

/// Builds a retry-strategy vector.
struct StrategyScript {
    name: &'static str,
    description: &'static str,
    policy: Value,
    seed: u64,
    strategy: RetryStrategy,
    tokens: HashMap<&'static str, (RetryToken, &'static str)>,
    steps: Vec<Value>,
}

impl StrategyScript {
    fn new(name: &'static str, description: &'static str, policy: Value, seed: u64) -> Self {
        let p = Policy::from_value(&policy).expect("vector policies are valid");
        StrategyScript {
            name,
            description,
            policy,
            seed,
            strategy: RetryStrategy::new(p, seed),
            tokens: HashMap::new(),
            steps: Vec::new(),
        }
    }

    fn capacity(&self, scope: &str) -> Value {
        json!({"scope": scope, "level": self.strategy.capacity(scope)})
    }

    fn acquire(&mut self, at: u64, scope: &'static str, name: &'static str) -> &mut Self {
        let t = self
            .strategy
            .acquire(scope, at)
            .expect("time moves forward");
        self.tokens.insert(name, (t, scope));
        let cap = self.capacity(scope);
        self.steps
            .push(json!({"at": at, "acquire": {"scope": scope, "token": name}, "capacity": cap}));
        self
    }

    fn refresh(&mut self, at: u64, name: &'static str, failure: Failure) -> &mut Self {
        let (mut t, scope) = self.tokens[name];
        let result = match self
            .strategy
            .refresh(&mut t, &failure, at)
            .expect("valid use")
        {
            Ok(plan) => json!({"delay_ms": plan.delay_ms, "cost": plan.cost, "class": plan.class}),
            Err(refusal) => json!({"refused": refusal.reason()}),
        };
        self.tokens.insert(name, (t, scope));
        let cap = self.capacity(scope);
        self.steps.push(json!({
            "at": at, "refresh": {"token": name, "failure": to_json(&failure)},
            "result": result, "capacity": cap,
        }));
        self
    }

    fn success(&mut self, at: u64, name: &'static str) -> &mut Self {
        let (t, scope) = self.tokens[name];
        self.strategy.record_success(&t).expect("valid use");
        let cap = self.capacity(scope);
        self.steps
            .push(json!({"at": at, "success": {"token": name}, "capacity": cap}));
        self
    }

    fn finish(self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "kind": "strategy",
            "policy": self.policy,
            "seed": self.seed,
            "steps": self.steps,
        })
    }
}

fn conflict() -> Failure {
    Failure::code("ConcurrentModification").with_status(409)
}

fn policy_error(name: &'static str, description: &'static str, policy: Value) -> Value {
    let e = Policy::from_value(&policy).expect_err("vector policy must be refused");
    json!({
        "name": name, "description": description, "kind": "policy_error",
        "policy": policy, "error": {"path": e.path, "rule": e.rule},
    })
}

fn token_vector(name: &'static str, description: &'static str, document: &str) -> Value {
    let mut v =
        json!({"name": name, "description": description, "kind": "token", "document": document});
    match policy_token(document) {
        Ok(t) => v["token"] = json!(t),
        Err(e) => v["error"] = json!({"path": e.path, "rule": e.rule}),
    }
    v
}

/// One write that fails once with `failure`, is retried after a re-read, and commits.
fn retried_once(
    name: &'static str,
    description: &'static str,
    policy: Value,
    seed: u64,
    failure: Failure,
) -> Value {
    let mut s = EngineScript::new(name, description, policy, seed);
    s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
    s.failed(20, 1, failure)
        .wait()
        .read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"));
    s.finish()
}

/// Jitter `kind` for every class, on top of `preset`.
fn with_jitter(preset: &str, kind: &str) -> Value {
    json!({"preset": preset, "retry": {
        "conflict": {"jitter": kind}, "throttle": {"jitter": kind},
        "transient": {"jitter": kind}, "unknown": {"jitter": kind}}})
}

fn no_jitter_aws() -> Value {
    with_jitter("aws-standard", "none")
}

/// Every vector, in order.
pub fn all() -> Vec<Vector> {
    let mut docs: Vec<Value> = Vec::new();

    // --- engine: the basic lifecycle ---
    let mut s = EngineScript::new(
        "uncontended-write",
        "One write with token validation: read, write, committed.",
        json!("iam"),
        1,
    );
    s.submit(0, "role/app", None, None)
        .read(5, 1, Some("v1"))
        .wrote(10, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "no-validation-writes-at-once",
        "With token validation off the first command is the write.",
        json!({"tokens": {"validate": false}}),
        1,
    );
    s.submit(0, "role/app", None, None).wrote(10, 1, None);
    docs.push(s.finish());

    for (i, kind) in ["none", "full", "equal", "decorrelated", "sawtooth"]
        .into_iter()
        .enumerate()
    {
        let (name, desc) = match kind {
            "none" => (
                "conflict-jitter-none",
                "Conflicts retried with jitter none: delays are the exponential ceilings.",
            ),
            "full" => (
                "conflict-jitter-full",
                "Conflicts retried with full jitter.",
            ),
            "equal" => (
                "conflict-jitter-equal",
                "Conflicts retried with equal jitter.",
            ),
            "decorrelated" => (
                "conflict-jitter-decorrelated",
                "Conflicts retried with decorrelated jitter.",
            ),
            _ => (
                "conflict-jitter-sawtooth",
                "Conflicts retried with sawtooth pacing: windows 2, 1, then 4, 2, 1 times the base.",
            ),
        };
        let mut s = EngineScript::new(name, desc, with_jitter("iam", kind), 7 + i as u64);
        s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
        for n in 0..3 {
            s.failed(20, 1, conflict())
                .wait()
                .read(5, 1, Some(["v2", "v3", "v4"][n]));
        }
        s.wrote(20, 1, Some("v5"));
        docs.push(s.finish());
    }

    let mut s = EngineScript::new(
        "conflict-attempts-exhausted",
        "A conflict on every attempt ends with attempts exhausted.",
        json!({"retry": {"conflict": {"max_attempts": 3}}}),
        3,
    );
    s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
    s.failed(20, 1, conflict()).wait().read(5, 1, Some("v1"));
    s.failed(20, 1, conflict()).wait().read(5, 1, Some("v1"));
    s.failed(20, 1, conflict());
    docs.push(s.finish());

    docs.push(retried_once(
        "throttle-retried",
        "A throttling error backs off from the throttle base and costs the throttle cost.",
        with_jitter("iam", "none"),
        3,
        Failure::code("Throttling").with_status(400),
    ));

    docs.push(retried_once(
        "throttle-by-status-429",
        "HTTP 429 without a known code is throttling.",
        with_jitter("iam", "none"),
        3,
        Failure::default().with_status(429),
    ));

    docs.push(retried_once(
        "transient-retried",
        "An InternalFailure (500) is transient and retried.",
        json!("iam"),
        4,
        Failure::code("InternalFailure").with_status(500),
    ));

    docs.push(retried_once(
        "transient-by-status-503",
        "HTTP 503 with an unlisted code is transient.",
        json!("iam"),
        4,
        Failure::code("Whatever").with_status(503),
    ));

    for (name, desc, failure) in [
        (
            "fatal-access-denied",
            "AccessDenied is fatal: no retry.",
            Failure::code("AccessDenied").with_status(403),
        ),
        (
            "fatal-limit-exceeded",
            "IAM's LimitExceeded (409) is a quota, fatal, unlike LimitExceededException.",
            Failure::code("LimitExceeded").with_status(409),
        ),
        (
            "fatal-404-without-code",
            "HTTP 404 with no retryable code fails at once.",
            Failure::default().with_status(404),
        ),
    ] {
        let mut s = EngineScript::new(name, desc, json!("iam"), 5);
        s.submit(0, "role/app", None, None)
            .read(5, 1, Some("v1"))
            .failed(20, 1, failure);
        docs.push(s.finish());
    }

    let mut s = EngineScript::new(
        "limit-exceeded-exception-throttles",
        "LimitExceededException is throttling, retried.",
        with_jitter("iam", "none"),
        5,
    );
    s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
    s.failed(
        20,
        1,
        Failure::code("LimitExceededException").with_status(400),
    )
    .wait()
    .read(5, 1, Some("v1"))
    .wrote(20, 1, Some("v2"));
    docs.push(s.finish());

    docs.push(retried_once(
        "exception-suffix-matches",
        "ConcurrentModificationException matches the ConcurrentModification entry.",
        json!("iam"),
        6,
        Failure::code("ConcurrentModificationException"),
    ));

    let mut s = EngineScript::new(
        "retry-after-hint-honoured",
        "A retry-after hint replaces the delay, clamped to [delay, delay + 5 s].",
        with_jitter("iam", "none"),
        6,
    );
    let mut hinted = Failure::code("Throttling").with_status(400);
    hinted.retry_after_ms = Some(2500);
    s.submit(0, "role/app", None, None)
        .read(5, 1, Some("v1"))
        .failed(20, 1, hinted)
        .wait()
        .read(5, 1, Some("v1"));
    let mut huge = Failure::code("Throttling").with_status(400);
    huge.retry_after_ms = Some(60_000);
    s.failed(20, 1, huge)
        .wait()
        .read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"));
    docs.push(s.finish());

    // A header text that is no number is ignored: recorded with the text itself.
    let mut s = EngineScript::new(
        "retry-after-unparseable-ignored",
        "A retry-after header that is not a number is ignored.",
        with_jitter("iam", "none"),
        6,
    );
    s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
    let step_at = s.now + 20;
    let bad = Failure::code("Throttling")
        .with_status(400)
        .with_retry_after_header("soon");
    s.input(
        step_at,
        Input::WriteFailed {
            op: OpId(1),
            failure: bad,
        },
    );
    if let Some(last) = s.steps.last_mut() {
        last["input"]["failure"]["retry_after_ms"] = json!("soon");
    }
    s.wait().read(5, 1, Some("v1")).wrote(20, 1, Some("v2"));
    docs.push(s.finish());

    // --- budgets ---
    let mut s = EngineScript::new(
        "budget-engine-exhausted",
        "The engine budget runs dry: the retry is refused and nothing is charged.",
        json!({"budget": {"capacity": 12, "initial": 12, "per_entity_capacity": null}, "retry": {"conflict": {"cost": 5}}}),
        8,
    );
    s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
    s.failed(20, 1, conflict()).wait().read(5, 1, Some("v1"));
    s.failed(20, 1, conflict()).wait().read(5, 1, Some("v1"));
    s.failed(20, 1, conflict());
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "budget-entity-exhausted",
        "One hot entity drains its own budget, not the engine's.",
        json!({"budget": {"per_entity_capacity": 10}, "retry": {"conflict": {"cost": 5}}}),
        8,
    );
    s.submit(0, "role/hot", None, None).read(5, 1, Some("v1"));
    s.failed(20, 1, conflict()).wait().read(5, 1, Some("v1"));
    s.failed(20, 1, conflict()).wait().read(5, 1, Some("v1"));
    s.failed(20, 1, conflict());
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "budget-refund-on-success",
        "A success refunds the cost of the retry before it; a first-try success adds the reward.",
        json!({"budget": {"initial": 480}}),
        9,
    );
    s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
    s.failed(20, 1, conflict())
        .wait()
        .read(5, 1, Some("v2"))
        .wrote(20, 1, Some("v3"));
    let t = s.now + 10;
    s.submit(t, "role/app", None, None).wrote(20, 2, Some("v4"));
    docs.push(s.finish());

    // --- deadlines ---
    let mut s = EngineScript::new(
        "deadline-refuses-long-delay",
        "A retry whose delay would pass the deadline is refused.",
        json!({"deadline_ms": 300, "retry": {"conflict": {"jitter": "none", "base_ms": 200}}}),
        10,
    );
    s.submit(0, "role/app", None, None).read(5, 1, Some("v1"));
    s.failed(20, 1, conflict())
        .wait()
        .read(5, 1, Some("v1"))
        .failed(20, 1, conflict());
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "deadline-while-queued",
        "A write still waiting for the lane at its deadline gives up.",
        json!("iam"),
        10,
    );
    s.submit(0, "role/app", None, None)
        .submit(1, "role/app", None, Some(50))
        .read(5, 1, Some("v1"))
        .wait();
    docs.push(s.finish());

    // --- lanes ---
    let mut s = EngineScript::new("fifo-three-writers", "Three writers of one entity go one at a time, first come first served, with the committed token handed on.", json!("iam"), 11);
    s.submit(0, "role/app", None, None)
        .submit(1, "role/app", None, None)
        .submit(2, "role/app", None, None);
    s.read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"))
        .wrote(20, 2, Some("v3"))
        .wrote(20, 3, Some("v4"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "lanes-independent-entities",
        "Writers of different entities do not wait for each other.",
        json!("iam"),
        11,
    );
    s.submit(0, "role/a", None, None)
        .submit(0, "role/b", None, None);
    s.read(5, 2, Some("b1"))
        .read(0, 1, Some("a1"))
        .wrote(10, 2, Some("b2"))
        .wrote(1, 1, Some("a2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "handoff-unknown-token-reads",
        "When a holder commits without a token, the next holder reads first.",
        json!("iam"),
        11,
    );
    s.submit(0, "role/app", None, None)
        .submit(1, "role/app", None, None);
    s.read(5, 1, Some("v1"))
        .wrote(20, 1, None)
        .read(5, 2, Some("v2"))
        .wrote(20, 2, Some("v3"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "handoff-off-always-reads",
        "With hand-off off every holder reads before writing.",
        json!({"tokens": {"handoff": false}}),
        11,
    );
    s.submit(0, "role/app", None, None)
        .submit(1, "role/app", None, None);
    s.read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"))
        .read(5, 2, Some("v2"))
        .wrote(20, 2, Some("v3"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "lanes-none-no-serialisation",
        "With lane mode none, writers of one entity proceed at once.",
        json!({"lanes": {"mode": "none"}}),
        11,
    );
    s.submit(0, "role/app", None, None)
        .submit(0, "role/app", None, None);
    s.read(5, 1, Some("v1"))
        .read(0, 2, Some("v1"))
        .wrote(20, 1, Some("v2"))
        .failed(0, 2, conflict());
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "cancel-releases-lane",
        "Cancelling the holder hands the lane to the next writer.",
        json!("iam"),
        12,
    );
    s.submit(0, "role/app", None, None)
        .submit(1, "role/app", None, None)
        .read(5, 1, Some("v1"));
    s.input(10, Input::Cancel { op: OpId(1) })
        .read(5, 2, Some("v1"))
        .wrote(20, 2, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "cancel-while-queued",
        "Cancelling a queued writer removes it from the lane.",
        json!("iam"),
        12,
    );
    s.submit(0, "role/app", None, None)
        .submit(1, "role/app", None, None)
        .submit(2, "role/app", None, None);
    s.input(3, Input::Cancel { op: OpId(2) })
        .read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"))
        .wrote(20, 3, Some("v3"));
    docs.push(s.finish());

    // --- change tokens ---
    let mut s = EngineScript::new(
        "stale-revision-refused",
        "The entity is found at a revision the writer has not seen: no write.",
        json!("iam"),
        13,
    );
    s.submit(0, "role/app", Some("v1"), None)
        .read(5, 1, Some("v9"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "expected-token-matches",
        "The writer's expected token is current: write on it.",
        json!("iam"),
        13,
    );
    s.submit(0, "role/app", Some("v1"), None)
        .read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "stale-after-conflict",
        "A conflict, then the re-read shows another writer's revision: stale, not retried blindly.",
        json!("iam"),
        13,
    );
    s.submit(0, "role/app", Some("v1"), None)
        .read(5, 1, Some("v1"))
        .failed(20, 1, conflict())
        .wait()
        .read(5, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "entity-absent",
        "A read that finds no entity gives a null base token.",
        json!("iam"),
        13,
    );
    s.submit(0, "user/new", None, None)
        .read(5, 1, None)
        .wrote(20, 1, Some("v1"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "imported-token-trusted",
        "A token from imported state is handed to the first writer, which writes at once.",
        json!("iam"),
        13,
    );
    s.engine
        .import_state(
            &serde_json::from_value(
                json!({"version": 1, "entities": {"role/app": {"committed_token": "v7"}}}),
            )
            .expect("state"),
        )
        .expect("valid state");
    s.submit(0, "role/app", Some("v7"), None)
        .wrote(20, 1, Some("v8"));
    let mut doc = s.finish();
    doc["import_state"] =
        json!({"version": 1, "entities": {"role/app": {"committed_token": "v7"}}});
    docs.push(doc);

    // --- unknown outcomes ---
    let mut s = EngineScript::new(
        "unknown-outcome-landed",
        "A lost reply, and the read-back finds the intended token: committed without a retry.",
        json!("iam"),
        14,
    );
    let mut lost = Failure::unknown_outcome();
    lost.intended_token = Some("v2".into());
    s.submit(0, "role/app", None, None)
        .read(5, 1, Some("v1"))
        .failed(30_000, 1, lost)
        .read(5, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "unknown-outcome-not-landed",
        "A lost reply, and the read-back shows the old revision: retried.",
        json!("iam"),
        14,
    );
    let mut lost = Failure::unknown_outcome();
    lost.intended_token = Some("v2".into());
    s.submit(0, "role/app", None, None)
        .read(5, 1, Some("v1"))
        .failed(30_000, 1, lost)
        .read(5, 1, Some("v1"));
    s.wait().read(5, 1, Some("v1")).wrote(20, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "read-failure-retried",
        "A throttled read is retried like a write.",
        with_jitter("iam", "none"),
        14,
    );
    s.submit(0, "role/app", None, None);
    let at = s.now + 5;
    s.input(
        at,
        Input::ReadFailed {
            op: OpId(1),
            failure: Failure::code("Throttling").with_status(400),
        },
    );
    s.wait().read(5, 1, Some("v1")).wrote(20, 1, Some("v2"));
    docs.push(s.finish());

    // --- spikes ---
    let mut s = EngineScript::new(
        "spike-cooldown",
        "Conflicts over the threshold start a cool-down; a new write waits it out.",
        json!({"lanes": {"mode": "none"}, "spike": {"threshold": 2, "window_ms": 1000, "cooldown_ms": 500}, "retry": {"conflict": {"jitter": "none", "base_ms": 1000}}}),
        15,
    );
    s.submit(0, "role/hot", None, None)
        .submit(0, "role/hot", None, None);
    s.read(5, 1, Some("v1"))
        .read(0, 2, Some("v1"))
        .failed(20, 1, conflict())
        .failed(1, 2, conflict());
    let t = s.now + 10;
    s.submit(t, "role/hot", None, None)
        .wait()
        .read(5, 3, Some("v1"));
    docs.push(s.finish());

    // --- misuse ---
    let mut s = EngineScript::new(
        "misuse-time-backwards",
        "Time going backwards is refused and changes nothing.",
        json!("iam"),
        16,
    );
    s.submit(10, "role/app", None, None).input(
        5,
        Input::ReadDone {
            op: OpId(1),
            token: Some("v1".into()),
        },
    );
    s.read(5, 1, Some("v1")).wrote(10, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "misuse-wrong-input",
        "An input the operation is not waiting for is refused.",
        json!("iam"),
        16,
    );
    s.submit(0, "role/app", None, None)
        .wrote(5, 1, Some("v2"))
        .input(
            6,
            Input::ReadDone {
                op: OpId(9),
                token: None,
            },
        );
    s.read(5, 1, Some("v1")).wrote(10, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "misuse-bad-entity",
        "An empty entity name is refused.",
        json!("iam"),
        16,
    );
    s.submit(0, "", None, None);
    docs.push(s.finish());

    // --- strategy: aws-standard step by step ---
    let mut s = StrategyScript::new("aws-standard-transient-steps", "Transient errors: 50 ms then 100 ms, 14 tokens each, then attempts exhausted; success refunds 14.", no_jitter_aws(), 0);
    let f500 = Failure::code("InternalFailure").with_status(500);
    s.acquire(0, "iam", "t")
        .refresh(0, "t", f500.clone())
        .refresh(50, "t", f500.clone())
        .refresh(150, "t", f500)
        .success(160, "t");
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "aws-standard-throttle-steps",
        "Throttling: 1000 ms then 2000 ms, 5 tokens each.",
        no_jitter_aws(),
        0,
    );
    let thr = Failure::code("ThrottlingException").with_status(400);
    s.acquire(0, "iam", "t")
        .refresh(0, "t", thr.clone())
        .refresh(1000, "t", thr.clone())
        .refresh(3000, "t", thr);
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "aws-standard-full-jitter",
        "The standard mode draws r * min(base * 2^i, 20 s) with full jitter.",
        json!("aws-standard"),
        42,
    );
    let f500 = Failure::code("ServiceUnavailable").with_status(503);
    s.acquire(0, "iam", "t")
        .refresh(0, "t", f500.clone())
        .refresh(100, "t", f500)
        .success(300, "t");
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "aws-standard-quota-drains",
        "The quota drains 14 at a time and refuses when fewer tokens remain than a retry costs.",
        json!({"preset": "aws-standard", "budget": {"initial": 30}, "retry": {"transient": {"jitter": "none"}}}),
        0,
    );
    let f = Failure::code("InternalError").with_status(500);
    s.acquire(0, "iam", "a")
        .refresh(0, "a", f.clone())
        .acquire(0, "iam", "b")
        .refresh(0, "b", f.clone())
        .acquire(0, "iam", "c")
        .refresh(0, "c", f)
        .success(10, "a")
        .success(10, "b");
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "aws-standard-first-try-reward",
        "A first-try success adds one token, never above capacity.",
        json!({"preset": "aws-standard", "budget": {"initial": 498}}),
        0,
    );
    s.acquire(0, "iam", "a")
        .success(1, "a")
        .acquire(2, "iam", "b")
        .success(3, "b")
        .acquire(4, "iam", "c")
        .success(5, "c");
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "aws-standard-retry-after",
        "A retry-after hint is clamped to [delay, delay + 5 s]; unparseable hints are ignored.",
        no_jitter_aws(),
        0,
    );
    let mut h = Failure::code("Throttling").with_status(400);
    h.retry_after_ms = Some(9000);
    s.acquire(0, "iam", "t").refresh(0, "t", h);
    let mut h2 = Failure::code("Throttling").with_status(400);
    h2.retry_after_ms = Some(1);
    s.acquire(0, "iam", "u").refresh(0, "u", h2);
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "aws-standard-not-retryable",
        "A 404 with no retryable code is refused at once and charges nothing.",
        no_jitter_aws(),
        0,
    );
    s.acquire(0, "iam", "t")
        .refresh(0, "t", Failure::code("NoSuchEntity").with_status(404));
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "aws-standard-dynamodb",
        "The DynamoDB flag: base 25 ms and 4 attempts.",
        json!({"preset": "aws-standard", "service": "dynamodb", "retry": {"transient": {"jitter": "none"}}}),
        0,
    );
    let f = Failure::code("InternalServerError").with_status(500);
    s.acquire(0, "ddb", "t")
        .refresh(0, "t", f.clone())
        .refresh(25, "t", f.clone())
        .refresh(75, "t", f.clone())
        .refresh(175, "t", f);
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "strategy-scopes-separate",
        "Each scope has its own bucket.",
        json!({"preset": "aws-standard", "budget": {"initial": 14}, "retry": {"transient": {"jitter": "none"}}}),
        0,
    );
    let f = Failure::code("InternalError").with_status(500);
    s.acquire(0, "a", "x")
        .refresh(0, "x", f.clone())
        .acquire(0, "b", "y")
        .refresh(0, "y", f);
    docs.push(s.finish());

    let mut s = StrategyScript::new(
        "strategy-conflict-iam",
        "The iam preset retries ConcurrentModification with full jitter under a deadline.",
        json!({"preset": "iam", "deadline_ms": 1000}),
        5,
    );
    let f = conflict();
    s.acquire(0, "iam", "t")
        .refresh(0, "t", f.clone())
        .refresh(300, "t", f.clone())
        .refresh(700, "t", f.clone())
        .refresh(990, "t", f);
    docs.push(s.finish());

    // --- policy errors ---
    docs.push(policy_error(
        "policy-unknown-preset",
        "An unknown preset names the preset field.",
        json!({"preset": "fast"}),
    ));
    docs.push(policy_error(
        "policy-unknown-field",
        "A misspelt field is refused with its path.",
        json!({"retry": {"conflict": {"base": 10}}}),
    ));
    docs.push(policy_error(
        "policy-negative-number",
        "A negative number is refused.",
        json!({"budget": {"capacity": -5}}),
    ));
    docs.push(policy_error(
        "policy-base-above-cap",
        "A base delay above its cap is refused.",
        json!({"retry": {"throttle": {"base_ms": 5000, "cap_ms": 100}}}),
    ));
    docs.push(policy_error(
        "policy-zero-attempts",
        "Zero attempts is refused.",
        json!({"retry": {"conflict": {"max_attempts": 0}}}),
    ));
    docs.push(policy_error(
        "policy-wrong-type",
        "A string where a boolean belongs is refused.",
        json!({"tokens": {"validate": "yes"}}),
    ));
    docs.push(policy_error(
        "policy-unknown-jitter",
        "An unknown jitter kind is refused.",
        json!({"retry": {"unknown": {"jitter": "random"}}}),
    ));
    docs.push(policy_error(
        "policy-absurd-deadline",
        "A deadline over a day is refused.",
        json!({"deadline_ms": 100_000_000u64}),
    ));
    docs.push(policy_error(
        "policy-fractional",
        "A fractional number of milliseconds is refused.",
        json!({"retry": {"conflict": {"cap_ms": 1.5}}}),
    ));

    // --- tokens ---
    docs.push(token_vector("token-basic", "A plain policy document.", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#));
    docs.push(token_vector("token-equivalent-form", "The same policy with a statement object, list fields, other case and order: same token as token-basic.", r#"{"Statement":{"Resource":["arn:aws:s3:::b/*"],"Action":["S3:GETOBJECT"],"Effect":"allow"},"Version":"2012-10-17"}"#));
    docs.push(token_vector("token-url-encoded", "The URL-encoded form IAM returns: same token as token-basic.", "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2F*%22%7D%5D%7D"));
    docs.push(token_vector("token-principal-account", "A 12-digit account principal equals its root ARN.", r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"AWS":"123456789012"}}}"#));
    docs.push(token_vector("token-duplicate-key", "Duplicate keys are refused.", r#"{"Version":"2012-10-17","Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"a:b"}}"#));
    docs.push(token_vector(
        "token-bad-effect",
        "An Effect other than Allow or Deny is refused.",
        r#"{"Statement":{"Effect":"Permit","Action":"a:b"}}"#,
    ));

    // --- writers without a read function ---
    let no_read = SubmitOptions {
        no_read: true,
        ..SubmitOptions::default()
    };
    let mut s = EngineScript::new(
        "no-read-writes-without-reading",
        "A writer with no read function: no Read is ever commanded; the write has no base, and after a conflict and its backoff the retry writes again without reading.",
        json!("iam"),
        69,
    );
    s.submit_with(0, "role/app", no_read.clone())
        .failed(20, 1, conflict())
        .wait()
        .wrote(20, 1, Some("v2"));
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "no-read-unknown-outcome-retried",
        "A writer with no read function cannot check whether a write with a lost reply landed: the write is retried as not landed.",
        json!("iam"),
        70,
    );
    s.submit_with(0, "role/app", no_read.clone())
        .failed(20, 1, Failure::unknown_outcome())
        .wait()
        .wrote(20, 1, None);
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "no-read-with-expected-refused",
        "An expected token cannot be checked without a read function: submit is refused (expected_needs_read).",
        json!("iam"),
        71,
    );
    s.submit_with(
        0,
        "role/app",
        SubmitOptions {
            expected: Some("v1".into()),
            ..no_read
        },
    );
    docs.push(s.finish());

    docs.into_iter()
        .enumerate()
        .map(|(i, json)| Vector {
            stem: format!("{:03}-{}", i + 1, json["name"].as_str().unwrap_or("vector")),
            json,
        })
        .collect()
}

/// The entity every shared-lane vector writes.
const KEY: &str = "role/app";

fn foreign(owner: &str, epoch: u64, rvn: u64, token: Option<&str>) -> LeaseRecord {
    LeaseRecord {
        owner: owner.to_string(),
        epoch,
        rvn,
        lease_ms: 400,
        committed_token: token.map(str::to_string),
        holder: Some(format!("{owner}: deploy pipeline")),
        ..Default::default()
    }
}

/// The shared-lane vectors: a short lease so stale takeovers fit in a few steps.
pub fn lease() -> Vec<Vector> {
    let policy = json!({"lanes": {"mode": "shared"},
        "lease": {"lease_ms": 400, "renew_ms": 150, "lock_delay_ms": 100, "poll_ms": 100,
                  "unavailable_ms": 300, "max_write_ms": 100}});
    let mut docs: Vec<Value> = Vec::new();

    let mut s = EngineScript::shared("lease-acquire-write-release", "A free lease: get, put_if_absent, read, write under epoch 1, then the release stores the new token.", policy.clone(), 21, "host-a");
    s.submit(0, "role/app", None, None)
        .store(5, 1)
        .store(5, 1)
        .read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-contend-then-handoff", "Another machine holds the lease: poll, then take the released record's token and write without reading.", policy.clone(), 22, "host-a");
    s.store
        .set(KEY, Some(foreign("host-b", 3, 777, Some("v5"))));
    s.submit(0, "role/app", None, None)
        .store(5, 1)
        .wait()
        .store(5, 1);
    s.store.set(
        KEY,
        Some(LeaseRecord {
            owner: String::new(),
            rvn: 778,
            holder: None,
            committed_token: Some("v6".into()),
            ..foreign("host-b", 3, 0, None)
        }),
    );
    s.wait()
        .lease_until_work(1)
        .wrote(20, 1, Some("v7"))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-stale-takeover", "A holder whose record stands still for a whole lease (and enough polls) is taken over: epoch bumped, lock-delay, then a read, since the dead holder may have written after storing its token, and the write.", policy.clone(), 23, "host-a");
    s.store
        .set(KEY, Some(foreign("host-dead", 4, 900, Some("v3"))));
    s.submit(0, "role/app", None, None)
        .lease_until_work(1)
        .read(5, 1, Some("v4"))
        .wrote(20, 1, Some("v5"))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared(
        "lease-renew-before-write",
        "A slow read leaves too little lease for the write: renew first, then write.",
        policy.clone(),
        24,
        "host-a",
    );
    s.submit(0, "role/app", None, None)
        .store(5, 1)
        .store(5, 1)
        .read(350, 1, Some("v1"))
        .store(5, 1)
        .wrote(20, 1, Some("v2"))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared(
        "lease-lost-before-write",
        "The renewal is refused (someone bumped the record): give up lease_lost, no write.",
        policy.clone(),
        25,
        "host-a",
    );
    s.submit(0, "role/app", None, None)
        .store(5, 1)
        .store(5, 1)
        .read(350, 1, Some("v1"));
    s.store.set(KEY, Some(foreign("host-b", 2, 5, None)));
    s.store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared(
        "lease-lost-reply",
        "The put's reply is lost: read the record back, find it ours, go on.",
        policy.clone(),
        26,
        "host-a",
    );
    s.submit(0, "role/app", None, None).store(5, 1);
    // The put lands in the store, but its reply is lost.
    if let Some(put @ StoreOp::PutIfAbsent { .. }) = s.store_ops.get(&1).cloned() {
        s.store.apply(put);
    }
    s.reply(5, 1, StoreReply::Lost)
        .store(5, 1)
        .read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-store-unavailable", "The store cannot be reached for longer than unavailable_ms: give up lock_unavailable without writing.", policy.clone(), 27, "host-a");
    s.submit(0, "role/app", None, None);
    while s.store_ops.contains_key(&1) {
        s.reply(5, 1, StoreReply::Unavailable);
        if s.engine.poll_timeout().is_some() {
            s.wait();
        }
    }
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-conflict-retry", "A conflict under the lease: back off, re-read and write again under the same epoch, then release.", policy.clone(), 28, "host-a");
    s.submit(0, "role/app", None, None)
        .store(5, 1)
        .store(5, 1)
        .read(5, 1, Some("v1"))
        .failed(20, 1, conflict());
    s.wait()
        .lease_until_work(1)
        .read(5, 1, Some("v2"))
        .lease_until_work(1)
        .wrote(20, 1, Some("v3"))
        .store(5, 1);
    docs.push(s.finish());

    let mut long = policy.clone();
    long["retry"] = json!({"conflict": {"jitter": "none", "base_ms": 300, "cap_ms": 300}});
    let mut s = EngineScript::shared("lease-renew-during-backoff", "A backoff longer than the renewal interval renews the lease on the way; a give-up after a write stores no token.", long, 30, "host-a");
    s.submit(0, "role/app", None, None)
        .store(5, 1)
        .store(5, 1)
        .read(5, 1, Some("v1"))
        .failed(20, 1, conflict());
    s.wait()
        .lease_until_work(1)
        .read(5, 1, Some("v2"))
        .failed(20, 1, Failure::code("AccessDenied").with_status(403))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-refused-by-own-record", "The put lands but the adapter's retry of it is refused by the very record it wrote: the client reads that as done (the rvn was drawn for this write) and holds the lease without a read-back.", policy.clone(), 31, "host-a");
    s.submit(0, "role/app", None, None).store(5, 1);
    if let Some(put @ StoreOp::PutIfAbsent { .. }) = s.store_ops.get(&1).cloned() {
        s.store.apply(put);
    }
    let current = s.store.record(KEY).cloned();
    s.reply(5, 1, StoreReply::Refused { current })
        .read(5, 1, Some("v1"))
        .wrote(20, 1, Some("v2"))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::new(
        "lease-needs-owner",
        "Shared lanes without an owner are refused at submit.",
        policy.clone(),
        29,
    );
    s.submit(0, "role/app", None, None);
    docs.push(s.finish());

    queue_vectors(&policy, &mut docs);

    docs.into_iter()
        .enumerate()
        .map(|(i, json)| Vector {
            stem: format!("{:03}-{}", i + 1, json["name"].as_str().unwrap_or("vector")),
            json,
        })
        .collect()
}

/// A version 2 record held by `owner` (accepted, beat 3) with `queue` (tickets numbered
/// from 0) and an expected hold of 100 ms.
fn queued(owner: &str, epoch: u64, rvn: u64, queue: &[&str]) -> LeaseRecord {
    LeaseRecord {
        version: 2,
        beat: 3,
        next_ticket: queue.len() as u64,
        hold_ms: 100,
        queue: queue
            .iter()
            .enumerate()
            .map(|(i, o)| Ticket {
                owner: o.to_string(),
                ticket: i as u64,
                beat: 1,
            })
            .collect(),
        ..foreign(owner, epoch, rvn, None)
    }
}

/// `r` as a release granted it to the head of its queue: a new epoch, beat 0, the token.
fn granted(r: &LeaseRecord, rvn: u64, token: &str) -> LeaseRecord {
    let mut queue = r.queue.clone();
    let head = queue.remove(0);
    LeaseRecord {
        owner: head.owner,
        epoch: r.epoch + 1,
        rvn,
        beat: 0,
        holder: None,
        committed_token: Some(token.to_string()),
        queue,
        ..r.clone()
    }
}

/// Whether `owner` holds a ticket in the stored record.
fn queued_in(store: &MemoryStore, owner: &str) -> bool {
    store
        .record(KEY)
        .is_some_and(|r| r.queue.iter().any(|t| t.owner == owner))
}

/// The queue-like hand-off on version 2 records (`core/src/lease.rs`, "Queue-like
/// hand-off"): registration, grants, dead waiters, a dead head, the bound, a lost reply.
fn queue_vectors(policy: &Value, docs: &mut Vec<Value>) {
    let mut s = EngineScript::shared("lease-queue-of-three", "Host-b holds with host-c and host-d queued: host-a registers third (ticket 2), sleeps until its expected turn, and when the record grants it the lease (beat 0, a new epoch, the token) holds it at once, with no store write (its lease counted from its last look before the grant), and writes without reading.", policy.clone(), 41, "host-a");
    let held = queued("host-b", 5, 500, &["host-c", "host-d"]);
    s.store.set(KEY, Some(held));
    s.submit(0, "role/app", None, None).store(5, 1).store(5, 1);
    // host-c and host-d are served; the last release grants host-a.
    let now = s.store.record(KEY).cloned().expect("registered");
    let after_c = granted(&now, 501, "v7");
    let after_d = granted(&after_c, 502, "v8");
    let for_a = granted(&after_d, 503, "v9");
    s.store.set(KEY, Some(for_a));
    s.lease_until_work(1).wrote(20, 1, Some("v10")).store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-queue-handoff-with-token", "Host-b holds; host-a registers; host-b's release grants host-a the lease in the same compare-and-swap with its token: host-a holds from its last look before the grant, with no accept, and writes under the new epoch with no read and no lock-delay.", policy.clone(), 42, "host-a");
    s.store.set(KEY, Some(queued("host-b", 3, 700, &[])));
    s.submit(0, "role/app", None, None).store(5, 1).store(5, 1);
    let now = s.store.record(KEY).cloned().expect("registered");
    s.store.set(KEY, Some(granted(&now, 701, "v6")));
    s.lease_until_work(1).wrote(20, 1, Some("v7")).store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-queue-dead-waiter", "Host-dead is queued ahead of host-a and never beats: after its ticket stood still for a whole lease on host-a's clock, host-a's next beat removes it, so host-b's release grants host-a.", policy.clone(), 43, "host-a");
    s.store
        .set(KEY, Some(queued("host-b", 2, 300, &["host-dead"])));
    s.submit(0, "role/app", None, None);
    // host-b renews (its beat moves) between host-a's looks; host-dead's ticket stands.
    let mut beat = 3;
    for _ in 0..200 {
        if !queued_in(&s.store, "host-dead") {
            break;
        }
        if s.store_ops.contains_key(&1) {
            s.store(5, 1);
        } else {
            beat += 1;
            let mut r = s.store.record(KEY).cloned().expect("held");
            r.beat = beat;
            r.rvn = 300 + beat;
            s.store.set(KEY, Some(r));
            s.wait();
        }
    }
    s.lease_until(1, |st| !queued_in(st, "host-dead"));
    let now = s.store.record(KEY).cloned().expect("held");
    s.store.set(KEY, Some(granted(&now, 399, "v4")));
    s.lease_until_work(1).wrote(20, 1, Some("v5")).store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-queue-dead-head", "The lease was granted to host-dead (beat 0), which never renews or releases: after a whole lease (and enough polls) host-a, next in the queue, takes it over. A grantee holds from the moment it sees its grant, so that holding may have written: host-a waits out the lock-delay and reads before writing.", policy.clone(), 44, "host-a");
    let mut head = granted(
        &queued("host-b", 6, 600, &["host-dead", "host-a"]),
        601,
        "v3",
    );
    head.queue.clear();
    head.next_ticket = 2;
    s.store.set(KEY, Some(head));
    // host-a is queued already (it registered before the grant).
    let mut r = s.store.record(KEY).cloned().expect("staged");
    r.queue = vec![Ticket {
        owner: "host-a".into(),
        ticket: 1,
        beat: 1,
    }];
    s.store.set(KEY, Some(r));
    s.submit(0, "role/app", None, None)
        .lease_until_work(1)
        .read(10, 1, Some("v3"))
        .wrote(20, 1, Some("v4"))
        .store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-queue-overflow", "The queue holds 64 tickets: host-a polls without a ticket (version 1 behaviour), and claims the record once it is free with no queue left.", policy.clone(), 45, "host-a");
    let full: Vec<String> = (0..MAX_QUEUE).map(|i| format!("host-w{i}")).collect();
    let names: Vec<&str> = full.iter().map(String::as_str).collect();
    s.store.set(KEY, Some(queued("host-b", 8, 800, &names)));
    s.submit(0, "role/app", None, None)
        .store(5, 1)
        .wait()
        .store(5, 1);
    s.store.set(
        KEY,
        Some(LeaseRecord {
            owner: String::new(),
            rvn: 801,
            holder: None,
            queue: Vec::new(),
            beat: 0,
            committed_token: Some("v70".into()),
            ..queued("host-b", 8 + MAX_QUEUE as u64, 0, &names)
        }),
    );
    s.lease_until_work(1).wrote(20, 1, Some("v71")).store(5, 1);
    docs.push(s.finish());

    let mut s = EngineScript::shared("lease-queue-lost-registration-reply", "Host-a's registration lands but its reply is lost: it reads the record back, finds its ticket, and waits as a registered waiter (no second ticket); the grant then comes to it.", policy.clone(), 46, "host-a");
    s.store.set(KEY, Some(queued("host-b", 4, 400, &[])));
    s.submit(0, "role/app", None, None).store(5, 1);
    if let Some(cas @ StoreOp::CompareAndSwap { .. }) = s.store_ops.get(&1).cloned() {
        s.store.apply(cas);
    }
    s.reply(5, 1, StoreReply::Lost).store(5, 1);
    let now = s.store.record(KEY).cloned().expect("registered");
    s.store.set(KEY, Some(granted(&now, 401, "v2")));
    s.lease_until_work(1).wrote(20, 1, Some("v3")).store(5, 1);
    docs.push(s.finish());
}

/// Rebuild every object with its keys in sorted order, so the text is the same whether or
/// not serde_json keeps insertion order (a feature another crate may switch on).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The file text of one vector: pretty JSON with sorted keys and a final newline.
pub fn render(v: &Vector) -> String {
    serde_json::to_string_pretty(&sorted(&v.json)).expect("vectors serialise") + "\n"
}

/// Write `vectors` to `dir`, removing stale vector files; returns how many were written.
pub fn write_all(dir: &std::path::Path) -> std::io::Result<usize> {
    write_set(dir, &all())
}

/// Write the shared-lane vectors to `dir`.
pub fn write_lease(dir: &std::path::Path) -> std::io::Result<usize> {
    write_set(dir, &lease())
}

pub(crate) fn write_set(dir: &std::path::Path, vectors: &[Vector]) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(path)?;
        }
    }
    for v in vectors {
        std::fs::write(dir.join(format!("{}.json", v.stem)), render(v))?;
    }
    Ok(vectors.len())
}
