package writelane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// apiError looks like smithy-go's APIError wrapped in the SDK's ResponseError: a code
// and an HTTP status, without importing the SDK.
type apiError struct {
	code   string
	status int
}

func (e *apiError) Error() string       { return "api error " + e.code }
func (e *apiError) ErrorCode() string   { return e.code }
func (e *apiError) HTTPStatusCode() int { return e.status }

func conflict() error {
	return fmt.Errorf("operation error IAM: PutRolePolicy: %w", &apiError{"ConcurrentModification", 409})
}

const fastPolicy = `{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 4}}, "spike": {"enabled": false}}`

func newLane(t *testing.T, policy string) *Lane {
	t.Helper()
	l, err := New(policy, WithSeed(7))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRunRetriesConflictsThenCommits(t *testing.T) {
	l := newLane(t, fastPolicy)
	var calls []int
	err := l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		calls = append(calls, a.Number)
		if a.Number < 3 {
			return conflict()
		}
		a.SetToken("v2")
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if fmt.Sprint(calls) != "[1 2 3]" {
		t.Fatalf("attempts %v", calls)
	}
	stats, _ := l.Engine().StatsJSON()
	if !strings.Contains(stats, `"conflicts":2`) || !strings.Contains(stats, `"committed":1`) || !strings.Contains(stats, `"committed_token":"v2"`) {
		t.Fatalf("stats %s", stats)
	}
	// The committed token is handed to the next writer, which writes at once on it.
	err = l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		if a.BaseToken == nil || *a.BaseToken != "v2" {
			t.Errorf("base token %v", a.BaseToken)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRunGivesUpWithTypedErrors(t *testing.T) {
	l := newLane(t, fastPolicy)
	err := l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		return fmt.Errorf("wrapped: %w", &apiError{"AccessDenied", 403})
	})
	var gu *GaveUpError
	var api interface{ ErrorCode() string }
	if !errors.Is(err, ErrGaveUp) || !errors.As(err, &gu) || gu.Reason != "fatal" || gu.Code != "AccessDenied" || gu.HTTPStatus != 403 {
		t.Fatalf("got %#v", err)
	}
	if !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
		t.Fatalf("the SDK error is not reachable: %v", err)
	}
	if errors.Is(err, ErrStaleRevision) {
		t.Fatal("a fatal error is not a stale revision")
	}

	// Conflicts forever: attempts exhausted after the class's limit.
	l2 := newLane(t, `{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 2, "max_attempts": 4}}, "spike": {"enabled": false}}`)
	n := 0
	err = l2.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error { n++; return conflict() })
	if !errors.As(err, &gu) || gu.Reason != "attempts_exhausted" || gu.Class != "conflict" || gu.Attempts != 4 || n != 4 {
		t.Fatalf("got %v after %d writes", err, n)
	}

	// A read finds a revision the writer has not seen.
	err = l.Run(context.Background(), "role/other", func(ctx context.Context, a Attempt) error {
		t.Error("must not write on a stale revision")
		return nil
	}, WithExpected("v1"), WithRead(func(ctx context.Context) (string, bool, error) { return "v2", true, nil }))
	if !errors.Is(err, ErrStaleRevision) || !errors.Is(err, ErrGaveUp) {
		t.Fatalf("got %v", err)
	}
	if errors.As(err, &gu); gu.Expected == nil || *gu.Expected != "v1" || gu.Found == nil || *gu.Found != "v2" {
		t.Fatalf("got %#v", gu)
	}
}

func TestReadTokenIsTheBaseOfTheWrite(t *testing.T) {
	l := newLane(t, fastPolicy)
	reads := 0
	err := l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		if a.BaseToken == nil || *a.BaseToken != fmt.Sprintf("v%d", reads) {
			return fmt.Errorf("base %v after %d reads", a.BaseToken, reads)
		}
		if a.Number == 1 {
			return conflict()
		}
		return nil
	}, WithRead(func(ctx context.Context) (string, bool, error) { reads++; return fmt.Sprintf("v%d", reads), true, nil }))
	if err != nil || reads != 2 {
		t.Fatalf("err %v, reads %d (a conflict must be followed by a re-read)", err, reads)
	}
}

func TestOneWriterPerEntityAcross64Goroutines(t *testing.T) {
	l := newLane(t, fastPolicy)
	entities := []string{"role/a", "role/b", "role/c", "role/d"}
	var inFlight [4]atomic.Int32
	var overlaps, writes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64*4)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := range entities {
				i := (g + k) % 4
				err := l.Run(context.Background(), entities[i], func(ctx context.Context, a Attempt) error {
					if inFlight[i].Add(1) != 1 {
						overlaps.Add(1)
					}
					defer inFlight[i].Add(-1)
					writes.Add(1)
					time.Sleep(50 * time.Microsecond)
					if (g+a.Number)%7 == 0 && a.Number == 1 {
						return conflict()
					}
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Run: %v", err)
	}
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping writes to one entity", overlaps.Load())
	}
	stats, _ := l.Engine().StatsJSON()
	if !strings.Contains(stats, `"committed":256`) || !strings.Contains(stats, `"active_ops":0`) {
		t.Fatalf("stats %s", stats)
	}
	if writes.Load() <= 256 {
		t.Fatalf("expected some retried writes, got %d writes", writes.Load())
	}
}

func TestCancelDuringBackoffReleasesTheLane(t *testing.T) {
	l := newLane(t, `{"preset": "iam", "retry": {"conflict": {"base_ms": 60000, "cap_ms": 60000, "jitter": "none"}}}`)
	ctx, cancel := context.WithCancel(context.Background())
	firstWrote := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, "role/app", func(ctx context.Context, a Attempt) error {
			close(firstWrote)
			return conflict()
		})
	}()
	<-firstWrote
	second := make(chan error, 1)
	go func() {
		second <- l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error { return nil })
	}()
	// Let the first writer enter its minute-long back-off and the second queue behind it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, _ := l.Engine().StatsJSON()
		if strings.Contains(s, `"retries":1`) && strings.Contains(s, `"lane_waits":1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached back-off: %s", s)
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	cancel()
	err := <-done
	var gu *GaveUpError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &gu) || gu.Reason != "cancelled" {
		t.Fatalf("got %v", err)
	}
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued writer never got the lane")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("lane released only after %v", time.Since(start))
	}
}

func TestDeadlineWhileQueued(t *testing.T) {
	l := newLane(t, fastPolicy)
	hold := make(chan struct{})
	entered := make(chan struct{})
	go l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		close(entered)
		<-hold
		return nil
	})
	<-entered
	err := l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error { return nil }, WithDeadline(20*time.Millisecond))
	close(hold)
	var gu *GaveUpError
	if !errors.As(err, &gu) || gu.Reason != "deadline_exceeded" {
		t.Fatalf("got %v", err)
	}
}

func TestPolicyErrorsCloseAndTokens(t *testing.T) {
	_, err := New(`{"retry": {"conflict": {"base_ms": -1}}}`)
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Path != "retry.conflict.base_ms" || !strings.Contains(pe.Message, "base_ms") {
		t.Fatalf("got %v", err)
	}
	_, err = New("{not json")
	if !errors.As(err, &pe) || pe.Path != "$" {
		t.Fatalf("got %v", err)
	}
	l, err := New(`"iam"`)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("Close must be idempotent")
	}
	if err := l.Run(context.Background(), "role/x", func(context.Context, Attempt) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	a, err := PolicyToken(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"S3:GetObject","Resource":"*"}]}`)
	if err != nil || !strings.HasPrefix(a, "c1:sha256:") {
		t.Fatalf("token %q %v", a, err)
	}
	b, _ := PolicyToken(`{"Statement":{"Resource":["*"],"Action":["s3:getobject"],"Effect":"Allow"},"Version":"2012-10-17"}`)
	if a != b {
		t.Fatalf("equal documents, different tokens: %s %s", a, b)
	}
	_, err = PolicyToken(`{"Statement": [{"Effect": "Maybe"}]}`)
	var de *DocumentError
	if !errors.As(err, &de) || !strings.HasPrefix(de.Path, "Statement[0]") {
		t.Fatalf("got %#v", err)
	}
	_, err = PolicyToken("{\"a\":\"\xff\"}")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusInvalidUTF8 || se.Status.String() != "WL_STATUS_INVALID_UTF8" {
		t.Fatalf("got %#v", err)
	}
	if ABIVersion() != HeaderABIVersion || Version() == "" {
		t.Fatalf("library %x / header %x", ABIVersion(), HeaderABIVersion)
	}
}

func TestUsageErrorsThroughTheEngine(t *testing.T) {
	e, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	err = e.Handle(0, Input{Kind: WriteDone, Op: 9})
	var ue *UsageError
	if !errors.As(err, &ue) || ue.Kind != "unknown_op" {
		t.Fatalf("got %v", err)
	}
	if _, err := e.Submit("", 0, SubmitOptions{}); !errors.As(err, &ue) || ue.Kind != "invalid_entity" {
		t.Fatalf("got %v", err)
	}
	err = e.Handle(0, Input{Kind: InputKind(42), Op: 1})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusInvalidArgument || se.Path != "input.kind" {
		t.Fatalf("got %#v", err)
	}
	e.Close()
	if _, err := e.PollCommand(); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

func TestFailureOf(t *testing.T) {
	cases := []struct {
		err  error
		want Failure
	}{
		{conflict(), Failure{Code: "ConcurrentModification", HTTPStatus: 409}},
		{&Failure{Code: "X", OutcomeUnknown: true}, Failure{Code: "X", OutcomeUnknown: true}},
		{fmt.Errorf("sending: %w", context.DeadlineExceeded), Failure{OutcomeUnknown: true}},
		{errors.New("plain"), Failure{}},
	}
	for _, c := range cases {
		got := FailureOf(c.err)
		if got.Code != c.want.Code || got.HTTPStatus != c.want.HTTPStatus || got.OutcomeUnknown != c.want.OutcomeUnknown {
			t.Errorf("%v: got %+v, want %+v", c.err, got, c.want)
		}
	}
}

func TestStateMovesBetweenEngines(t *testing.T) {
	l := newLane(t, fastPolicy)
	if err := l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		a.SetToken("v9")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	state, err := l.Engine().ExportState()
	if err != nil || !strings.Contains(state, `"committed_token":"v9"`) {
		t.Fatalf("state %s %v", state, err)
	}
	e, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.ImportState(state); err != nil {
		t.Fatal(err)
	}
	op, _ := e.Submit("role/app", 0, SubmitOptions{})
	c, err := e.PollCommand()
	if err != nil || c == nil || c.Kind != CommandWrite || c.Op != op || c.BaseToken == nil || *c.BaseToken != "v9" {
		t.Fatalf("got %+v %v: an imported token is trusted by the first writer", c, err)
	}
	if ev, ok, err := e.PollEvent(); err != nil || !ok || !strings.Contains(ev, `"type":"submitted"`) {
		t.Fatalf("event %q %v %v", ev, ok, err)
	}
	if err := e.ImportState("{"); err == nil {
		t.Fatal("malformed state was accepted")
	}
}

func TestAPanickingWriteReleasesTheLane(t *testing.T) {
	l := newLane(t, fastPolicy)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic must reach the caller")
			}
		}()
		_ = l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error { panic("boom") })
	}()
	done := make(chan error, 1)
	go func() {
		done <- l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error { return nil })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lane stayed held after a panicking write")
	}
	if s, _ := l.Engine().StatsJSON(); !strings.Contains(s, `"active_ops":0`) {
		t.Fatalf("stats %s", s)
	}
}

func TestEventsReachTheHandler(t *testing.T) {
	var mu sync.Mutex
	var types []string
	l, err := New(fastPolicy, WithSeed(1), WithEvents(func(ev string) {
		mu.Lock()
		defer mu.Unlock()
		i := strings.Index(ev, `"type":"`)
		types = append(types, strings.SplitN(ev[i+8:], `"`, 2)[0])
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		if a.Number == 1 {
			return conflict()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(types, ","); got != "submitted,conflict,retry_scheduled,committed" {
		t.Fatalf("events %s", got)
	}
	// Without a handler, the lane leaves nothing queued.
	l2 := newLane(t, fastPolicy)
	_ = l2.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error { return nil })
	if _, ok, _ := l2.Engine().PollEvent(); ok {
		t.Fatal("events were left queued")
	}
}

// Only the Run whose operation has work is woken: runs queued behind a holder of one
// entity sleep through everything another entity's run does (fifty conflicts, retries
// and back-offs), and each is woken once, when the lane is its turn.
func TestOnlyTheRunWithWorkIsWoken(t *testing.T) {
	l := newLane(t, `{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 1, "jitter": "none", "max_attempts": 60}}, "spike": {"enabled": false}, "budget": {"enabled": false}}`)
	const queued = 20
	holding, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = l.Run(context.Background(), "role/a", func(context.Context, Attempt) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	for i := 0; i < queued; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Run(context.Background(), "role/a", func(context.Context, Attempt) error { return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	var ops []uint64 // the queued runs and the holder's
	waitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		ops = ops[:0]
		sleeping := 0
		for op, r := range l.runs {
			ops = append(ops, op)
			if r.sleeping {
				sleeping++
			}
		}
		return sleeping == queued
	})
	n := 0
	if err := l.Run(context.Background(), "role/b", func(context.Context, Attempt) error {
		if n++; n < 50 {
			return conflict()
		}
		return nil
	}); err != nil || n != 50 {
		t.Fatalf("role/b: %v after %d writes", err, n)
	}
	l.mu.Lock()
	wakes := 0
	for _, op := range ops {
		wakes += l.runs[op].wakes
	}
	l.mu.Unlock()
	if wakes != 0 {
		t.Fatalf("the runs queued on role/a were woken %d times by role/b's work", wakes)
	}
	close(release)
	wg.Wait()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A Run queued behind a writer that sets off a conflict spike is granted the lane into
// the spike's cool-down: the engine gives it a timer and no command, and the lane wakes
// it for that timer (it has no deadline of its own to wake it).
func TestAQueuedRunWakesForTheCoolDownItIsGranted(t *testing.T) {
	l := newLane(t, `{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 1, "jitter": "none"}},
 "spike": {"enabled": true, "window_ms": 10000, "threshold": 2, "cooldown_ms": 200}}`)
	entered := make(chan struct{})
	second := make(chan error, 1)
	var started time.Time
	err := l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		if a.Number == 1 {
			close(entered)
			go func() {
				second <- l.Run(context.Background(), "role/app", func(context.Context, Attempt) error { return nil })
			}()
			waitFor(t, func() bool { // the second run is queued and asleep
				l.mu.Lock()
				defer l.mu.Unlock()
				return len(l.runs) == 2 && l.runs[2] != nil && l.runs[2].sleeping
			})
		}
		if a.Number <= 2 {
			return conflict()
		}
		started = time.Now()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(started); d < 150*time.Millisecond {
			t.Fatalf("the second run wrote %v after the first, inside the 200 ms cool-down", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the run granted into a cool-down was never woken")
	}
}

// WithClock: the engine's time is the clock's, and every wait is the clock's After, so a
// virtual clock runs a minute of back-offs in no real time, and deadlines count on it.
func TestInjectedClock(t *testing.T) {
	clock := &virtualClock{base: time.Unix(1_700_000_000, 0)}
	l, err := New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 30000, "cap_ms": 30000, "jitter": "none", "max_attempts": 5}}, "deadline_ms": 100000}`,
		WithSeed(1), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	var at []uint64
	var o Outcome
	err = l.Run(context.Background(), "role/app", func(ctx context.Context, a Attempt) error {
		at = append(at, clock.now())
		return conflict()
	}, WithOutcome(&o))
	var gu *GaveUpError
	if !errors.As(err, &gu) || gu.Reason != "deadline_exceeded" || o.Reason != "deadline_exceeded" {
		t.Fatalf("got %v (%+v), want deadline_exceeded on the virtual clock", err, o)
	}
	if fmt.Sprint(at) != "[0 30000 60000 90000]" {
		t.Fatalf("writes at %v ms of virtual time, want every 30 s until the 100 s deadline", at)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("90 s of virtual back-offs took %v of real time", d)
	}
}
