package writelane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The lane-driver vectors (tests/vectors-lane, format in its README): every scenario is
// replayed through the public Lane API with a virtual clock, scripted read and write
// functions and a memory store with injected faults, and must make the same calls at the
// same virtual times, with the same arguments, and end the same way as the reference
// driver.

// The AWS SDK for Go v2 error chain, rebuilt from the standard library with the same
// shapes: smithy.OperationError wraps the SDK's ResponseError (smithyhttp.ResponseError,
// holding a smithyhttp.Response that embeds the *http.Response), which wraps the
// service's smithy.GenericAPIError. FailureOf reads them through the methods it reads the
// real types with (go/e2e checks those against the SDK itself).
type sdkAPIError struct{ code, message string }

func (e *sdkAPIError) Error() string        { return "api error " + e.code + ": " + e.message }
func (e *sdkAPIError) ErrorCode() string    { return e.code }
func (e *sdkAPIError) ErrorMessage() string { return e.message }
func (e *sdkAPIError) ErrorFault() int      { return 0 }

type sdkResponse struct{ *http.Response }

type sdkResponseError struct {
	Response *sdkResponse
	Err      error
}

func (e *sdkResponseError) Error() string {
	return fmt.Sprintf("https response error StatusCode: %d, %v", e.Response.StatusCode, e.Err)
}
func (e *sdkResponseError) HTTPStatusCode() int        { return e.Response.StatusCode }
func (e *sdkResponseError) HTTPResponse() *sdkResponse { return e.Response }
func (e *sdkResponseError) Unwrap() error              { return e.Err }

type sdkOperationError struct{ Err error }

func (e *sdkOperationError) Error() string {
	return "operation error IAM: PutRolePolicy, " + e.Err.Error()
}
func (e *sdkOperationError) Service() string   { return "IAM" }
func (e *sdkOperationError) Operation() string { return "PutRolePolicy" }
func (e *sdkOperationError) Unwrap() error     { return e.Err }

// scriptedError is the error a scripted call raises: the SDK's error for "fail" (a
// timeout after the request was sent for "unknown"), a plain error for "raise".
func scriptedError(result map[string]any) error {
	if msg, ok := result["raise"].(string); ok {
		return errors.New(msg)
	}
	f := result["fail"].(map[string]any)
	if f["unknown"] == true {
		timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
		return &sdkOperationError{Err: &url.Error{Op: "Post", URL: "https://iam.amazonaws.com/", Err: timeout}}
	}
	resp := &http.Response{StatusCode: int(u64(f["status"])), Header: http.Header{}}
	if ms, ok := f["retry_after_ms"].(json.Number); ok {
		resp.Header.Set("X-Amz-Retry-After", ms.String())
	}
	return &sdkOperationError{Err: &sdkResponseError{Response: &sdkResponse{resp}, Err: &sdkAPIError{code: f["code"].(string), message: "scripted"}}}
}

// virtualClock starts at an arbitrary instant and moves only when the lane waits (After)
// or a scripted call takes time. A wait that reaches cancelAt cancels the run instead.
type virtualClock struct {
	mu       sync.Mutex
	base     time.Time
	ms       uint64
	cancelAt *uint64
	cancel   func()
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Duration(c.ms) * time.Millisecond)
}

func (c *virtualClock) now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ms
}

func (c *virtualClock) advance(ms uint64) {
	c.mu.Lock()
	c.ms += ms
	c.mu.Unlock()
}

func (c *virtualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	due := c.ms + uint64(d/time.Millisecond)
	if c.cancelAt != nil && *c.cancelAt <= due {
		c.ms = max(c.ms, *c.cancelAt)
		c.cancelAt = nil
		c.mu.Unlock()
		c.cancel()
		return nil // never fires: the run sees its context cancelled
	}
	c.ms = due
	at := c.base.Add(time.Duration(c.ms) * time.Millisecond)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- at
	return ch
}

// callLog keeps the calls a run made, of the user's functions and of the store, in order.
type callLog struct {
	mu    sync.Mutex
	calls []any
}

func (l *callLog) add(call map[string]any) {
	l.mu.Lock()
	l.calls = append(l.calls, call)
	l.mu.Unlock()
}

// faultStore is the harness's store: a memory store that logs every call (at the virtual
// time) and injects the vector's faults by call index (counting the calls of one
// operation kind only when only is set).
type faultStore struct {
	mem    *MemoryStore
	clock  *virtualClock
	log    *callLog
	faults map[int]string
	only   string
	n      int
}

func (s *faultStore) fault(op StoreOp) string {
	s.log.add(map[string]any{"at": s.clock.now(), "call": "store", "operation": op})
	if s.only != "" && op.Op != s.only {
		return ""
	}
	f := s.faults[s.n]
	s.n++
	return f
}

// write carries out a conditional write with the fault.
func (s *faultStore) write(op StoreOp, apply func() (bool, *LeaseRecord, error)) (bool, *LeaseRecord, error) {
	switch s.fault(op) {
	case "lost": // applied, then the reply is lost
		_, _, _ = apply()
		return false, nil, fmt.Errorf("connection reset after the request: %w", ErrStoreLost)
	case "dropped": // lost before it landed
		return false, nil, fmt.Errorf("connection reset before the request landed: %w", ErrStoreLost)
	case "unavailable":
		return false, nil, fmt.Errorf("connection refused: %w", ErrStoreUnavailable)
	case "retried": // applied, and the retry of the same request is refused by its result
		_, _, _ = apply()
		cur, err := s.mem.Get(context.Background(), op.Key)
		return false, cur, err
	}
	return apply()
}

func (s *faultStore) Get(ctx context.Context, key string) (*LeaseRecord, error) {
	switch s.fault(StoreOp{Op: StoreGet, Key: key}) {
	case "lost", "dropped":
		return nil, fmt.Errorf("read timed out: %w", ErrStoreLost)
	case "unavailable":
		return nil, fmt.Errorf("connection refused: %w", ErrStoreUnavailable)
	}
	return s.mem.Get(ctx, key)
}

func (s *faultStore) PutIfAbsent(ctx context.Context, key string, r LeaseRecord) (bool, *LeaseRecord, error) {
	return s.write(StoreOp{Op: StorePutIfAbsent, Key: key, Record: &r}, func() (bool, *LeaseRecord, error) {
		return s.mem.PutIfAbsent(ctx, key, r)
	})
}

func (s *faultStore) CompareAndSwap(ctx context.Context, key string, rvn uint64, r LeaseRecord) (bool, *LeaseRecord, error) {
	return s.write(StoreOp{Op: StoreCompareAndSwap, Key: key, ExpectedRvn: &rvn, Record: &r}, func() (bool, *LeaseRecord, error) {
		return s.mem.CompareAndSwap(ctx, key, rvn, r)
	})
}

func (s *faultStore) put(t *testing.T, key string, record any) {
	var rec LeaseRecord
	if err := json.Unmarshal([]byte(mustJSON(record)), &rec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.mem.PutIfAbsent(context.Background(), key, rec); err != nil {
		t.Fatal(err)
	}
}

func laneVectorFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join("..", "tests", "vectors-lane", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no lane-driver vectors in tests/vectors-lane")
	}
	sort.Strings(files)
	return files
}

func TestLaneVectors(t *testing.T) {
	kinds := map[string]int{}
	for _, file := range laneVectorFiles(t) {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		v := decode(t, string(text)).(map[string]any)
		kind, _ := v["kind"].(string)
		kinds[kind]++
		t.Run(filepath.Base(file), func(t *testing.T) {
			switch kind {
			case "lane":
				runLaneVector(t, v)
			case "force_release":
				runForceReleaseVector(t, v)
			case "owner_id":
				owner, err := OwnerID(v["host"].(string), uint32(u64(v["pid"])), u64(v["entropy"]))
				if want := v["expect"].(map[string]any)["owner"]; err != nil || owner != want {
					t.Fatalf("owner %q %v, want %q", owner, err, want)
				}
			default:
				t.Fatalf("unknown kind %q", kind)
			}
		})
	}
	if kinds["lane"] == 0 || kinds["force_release"] == 0 || kinds["owner_id"] == 0 {
		t.Fatalf("vectors by kind %v: every kind must be present", kinds)
	}
}

func runLaneVector(t *testing.T, v map[string]any) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := &virtualClock{base: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), cancel: cancel}
	log := &callLog{calls: []any{}}
	laneSpec, expect := v["lane"].(map[string]any), v["expect"].(map[string]any)
	opts := []Option{WithSeed(u64(v["seed"])), WithClock(clock), WithEvents(func(ev string) { checkEvent(t, ev) })}
	if owner, ok := laneSpec["owner"].(string); ok {
		opts = append(opts, WithOwner(owner))
	}
	if holder, ok := laneSpec["holder"].(string); ok {
		opts = append(opts, WithHolder(holder))
	}
	var store *faultStore
	if spec, ok := laneSpec["store"].(map[string]any); ok {
		store = &faultStore{mem: NewMemoryStore(), clock: clock, log: log, faults: map[int]string{}}
		records, _ := spec["records"].(map[string]any)
		for key, r := range records {
			store.put(t, key, r)
		}
		faults, _ := spec["faults"].(map[string]any)
		for i, f := range faults {
			n, err := strconv.Atoi(i)
			if err != nil {
				t.Fatalf("fault index %q", i)
			}
			store.faults[n] = f.(string)
		}
		opts = append(opts, WithStore(store))
	}
	var got any
	lane, err := New(mustJSON(v["policy"]), opts...)
	if err == nil {
		defer lane.Close()
		got = replayRun(ctx, t, lane, clock, cancel, log, v["run"].(map[string]any))
	} else {
		got = outcomeOf(t, err, nil)
	}
	if want := expect["outcome"]; !reflect.DeepEqual(normal(t, got), normal(t, want)) {
		t.Errorf("outcome\n got %s\nwant %s", mustJSON(got), mustJSON(want))
	}
	if !reflect.DeepEqual(normal(t, log.calls), normal(t, expect["calls"])) {
		t.Errorf("calls\n got %s\nwant %s", mustJSON(log.calls), mustJSON(expect["calls"]))
	}
	if end := clock.now(); end != u64(expect["end_ms"]) {
		t.Errorf("end_ms %d, want %v", end, expect["end_ms"])
	}
	if want, ok := expect["store_after"].(map[string]any); ok {
		after := map[string]any{}
		for key := range want {
			rec, err := store.mem.Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			after[key] = rec
		}
		if !reflect.DeepEqual(normal(t, after), normal(t, want)) {
			t.Errorf("store after\n got %s\nwant %s", mustJSON(after), mustJSON(want))
		}
	}
}

// replayRun makes the vector's one Run call with scripted read and write functions and
// returns its outcome in the vectors' form.
func replayRun(ctx context.Context, t *testing.T, lane *Lane, clock *virtualClock, cancel func(), log *callLog, run map[string]any) any {
	reads, writes := run["reads"].([]any), run["writes"].([]any)
	var nr, nw, user int
	cancelDuring := -1
	if c, ok := run["cancel"].(map[string]any); ok {
		if k, ok := c["during_call"].(json.Number); ok {
			cancelDuring = int(u64(k))
		}
		if at, ok := c["at_ms"].(json.Number); ok {
			ms := u64(at)
			clock.mu.Lock()
			clock.cancelAt = &ms
			clock.mu.Unlock()
		}
	}
	// next logs a user call and returns its scripted result; nil when the run is
	// cancelled during it (its result is never seen) or nothing is scripted.
	next := func(results []any, i *int, call map[string]any) map[string]any {
		log.add(call)
		k := user
		user++
		if *i >= len(results) {
			t.Errorf("call %v has no scripted result", call)
			return nil
		}
		r := results[*i].(map[string]any)
		*i++
		if k == cancelDuring {
			cancel()
			return nil
		}
		if ms, ok := r["ms"].(json.Number); ok {
			clock.advance(u64(ms))
		}
		return r
	}
	read := func(ctx context.Context) (string, bool, error) {
		r := next(reads, &nr, map[string]any{"at": clock.now(), "call": "read"})
		switch {
		case r == nil:
			return "", false, fmt.Errorf("read: %w", context.Canceled)
		case r["token"] != nil:
			return r["token"].(string), true, nil
		case hasKey(r, "token"):
			return "", false, nil
		}
		return "", false, scriptedError(r)
	}
	write := func(ctx context.Context, a Attempt) error {
		var fence any
		if a.Fence != nil {
			fence = *a.Fence
		}
		r := next(writes, &nw, map[string]any{"at": clock.now(), "call": "write", "attempt": a.Number,
			"base_token": strOrNil(a.BaseToken), "fence": fence})
		switch {
		case r == nil:
			return fmt.Errorf("write: %w", context.Canceled)
		case hasKey(r, "token"):
			if tok, ok := r["token"].(string); ok {
				a.SetToken(tok)
			}
			return nil
		}
		return scriptedError(r)
	}
	var o Outcome
	opts := []RunOption{WithOutcome(&o)}
	if run["has_read"] == true {
		opts = append(opts, WithRead(read))
	}
	if exp, ok := run["expected"].(string); ok {
		opts = append(opts, WithExpected(exp))
	}
	if d, ok := run["deadline_ms"].(json.Number); ok {
		opts = append(opts, WithDeadline(time.Duration(u64(d))*time.Millisecond))
	}
	err := lane.Run(ctx, run["entity"].(string), write, opts...)
	if nr != len(reads) || nw != len(writes) {
		t.Errorf("%d of %d scripted reads and %d of %d writes used", nr, len(reads), nw, len(writes))
	}
	return outcomeOf(t, err, &o)
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// outcomeOf is a Run's result in the vectors' form, after checking that the error and
// the outcome agree.
func outcomeOf(t *testing.T, err error, o *Outcome) any {
	var ue *UsageError
	var gu *GaveUpError
	switch {
	case errors.As(err, &ue):
		return map[string]any{"status": "usage_error", "kind": ue.Kind}
	case err == nil && o != nil && o.Committed:
		return map[string]any{"status": "committed", "token": strOrNil(o.Token), "attempts": o.Attempts}
	case errors.As(err, &gu) && o != nil && !o.Committed && gu.Reason == o.Reason && gu.Attempts == o.Attempts:
		if o.Reason == "cancelled" && !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled run's error %v does not unwrap to context.Canceled", err)
		}
		return map[string]any{"status": "gave_up", "reason": o.Reason, "attempts": o.Attempts, "code": strOrNil(o.Code)}
	}
	t.Fatalf("Run returned %v with outcome %+v", err, o)
	return nil
}

func runForceReleaseVector(t *testing.T, v map[string]any) {
	clock := &virtualClock{}
	s := &faultStore{mem: NewMemoryStore(), clock: clock, log: &callLog{}, faults: map[int]string{}, only: StoreCompareAndSwap}
	key := v["key"].(string)
	if rec := v["record"]; rec != nil {
		s.put(t, key, rec)
	}
	if f, ok := v["fault"].(string); ok {
		s.faults[0] = f
	}
	var expected *uint64
	if n, ok := v["expected_rvn"].(json.Number); ok {
		e := u64(n)
		expected = &e
	}
	res, err := forceRelease(context.Background(), s, key, expected, u64(v["entropy"]))
	want := v["expect"].(map[string]any)["result"].(map[string]any)
	if want["error"] == "unavailable" {
		if !errors.Is(err, ErrForceReleaseUnknown) {
			t.Fatalf("got %+v %v, want ErrForceReleaseUnknown", res, err)
		}
		return
	}
	var w ForceReleaseResult
	if err := json.Unmarshal([]byte(mustJSON(want)), &w); err != nil {
		t.Fatal(err)
	}
	if err != nil || res.Result != w.Result || !res.Record.Equal(w.Record) || !res.Current.Equal(w.Current) {
		t.Fatalf("got %s %v, want %s", mustJSON(res), err, mustJSON(want))
	}
}

var eventSchema struct {
	once sync.Once
	v    map[string]any
	seen sync.Map // event types delivered
}

// checkEvent checks one event a lane delivered against the generated event schema
// (tests/schema/events.json): a known type with exactly the listed fields, of the listed
// JSON types, nullable only where it says, strings within their enums.
func checkEvent(t *testing.T, text string) {
	eventSchema.once.Do(func() {
		b, err := os.ReadFile(filepath.Join("..", "tests", "schema", "events.json"))
		if err == nil {
			eventSchema.v, _ = decode(t, string(b)).(map[string]any)
		}
	})
	if eventSchema.v == nil {
		t.Fatal("tests/schema/events.json is missing or not a JSON object")
	}
	ev := decode(t, text).(map[string]any)
	typ, _ := ev["type"].(string)
	spec, ok := eventSchema.v["events"].(map[string]any)[typ].(map[string]any)
	if !ok {
		t.Errorf("event type %q is not in the schema: %s", typ, text)
		return
	}
	eventSchema.seen.Store(typ, true)
	fields := spec["fields"].(map[string]any)
	for name := range fields {
		if _, ok := ev[name]; !ok {
			t.Errorf("%s event lacks field %q: %s", typ, name, text)
		}
	}
	for name, value := range ev {
		f, ok := fields[name].(map[string]any)
		if name == "type" {
			continue
		} else if !ok {
			t.Errorf("%s event has field %q, not in the schema: %s", typ, name, text)
			continue
		}
		var kind string
		switch x := value.(type) {
		case nil:
			if f["nullable"] != true {
				t.Errorf("%s.%s is null: %s", typ, name, text)
			}
			continue
		case json.Number:
			if _, err := strconv.ParseUint(x.String(), 10, 53); err == nil {
				kind = "integer"
			}
		case string:
			kind = "string"
			if enum, ok := f["enum"].([]any); ok && !contains(enum, x) {
				t.Errorf("%s.%s = %q is not one of %v", typ, name, x, enum)
			}
		case bool:
			kind = "boolean"
		}
		if kind != f["type"] {
			t.Errorf("%s.%s = %v is not of type %v", typ, name, value, f["type"])
		}
	}
}

func contains(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The lane vectors deliver events of most types through WithEvents (each checked against
// the schema as it comes), and the types WithEvents documents are the schema's.
func TestEventsFollowTheSchema(t *testing.T) {
	TestLaneVectors(t)
	n := 0
	eventSchema.seen.Range(func(any, any) bool { n++; return true })
	t.Logf("event types delivered: %d", n)
	if n < 6 {
		t.Fatalf("only %d event types were delivered by the lane vectors", n)
	}
	for _, typ := range []string{"submitted", "lane_wait_started", "conflict", "retry_scheduled", "committed", "gave_up"} {
		if _, ok := eventSchema.v["events"].(map[string]any)[typ]; !ok {
			t.Errorf("WithEvents documents event type %q, which the schema does not have", typ)
		}
	}
}
