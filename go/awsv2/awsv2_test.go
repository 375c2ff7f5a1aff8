package awsv2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	writelane "github.com/writelane/writelane/go"
)

// fakeIAM answers the IAM Query API in process, with no network: every write holds its
// entity (the lab's rule: RoleName, then UserName, then GroupName) for hold, and a write
// that overlaps another on the same entity gets IAM's ConcurrentModification (409).
// inject makes the next writes conflict whatever the overlap; fail the next writes fail
// with NoSuchEntity (404).
type fakeIAM struct {
	hold             time.Duration
	inject, fail     atomic.Int64
	calls, conflicts atomic.Int64
	mu               sync.Mutex
	busy             map[string]bool
}

const conflictBody = `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>ConcurrentModification</Code><Message>busy</Message></Error><RequestId>r</RequestId></ErrorResponse>`
const missingBody = `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>no such role</Message></Error><RequestId>r</RequestId></ErrorResponse>`

func (f *fakeIAM) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	q, _ := url.ParseQuery(string(body))
	action := q.Get("Action")
	f.calls.Add(1)
	reply := func(status int, text string) (*http.Response, error) {
		return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{"Content-Type": {"text/xml"}},
			Body: io.NopCloser(strings.NewReader(text)), Request: r, ContentLength: int64(len(text))}, nil
	}
	if strings.HasPrefix(action, "Get") || strings.HasPrefix(action, "List") {
		return reply(200, fmt.Sprintf(`<%sResponse><%sResult></%sResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></%sResponse>`, action, action, action, action))
	}
	entity := ""
	for _, p := range []string{"RoleName", "UserName", "GroupName"} {
		if v := q.Get(p); v != "" {
			entity = p + "/" + v
			break
		}
	}
	if f.fail.Add(-1) >= 0 {
		return reply(404, missingBody)
	}
	f.mu.Lock()
	if f.inject.Add(-1) >= 0 || f.busy[entity] {
		f.mu.Unlock()
		f.conflicts.Add(1)
		return reply(409, conflictBody)
	}
	if f.busy == nil {
		f.busy = map[string]bool{}
	}
	f.busy[entity] = true
	f.mu.Unlock()
	time.Sleep(f.hold)
	f.mu.Lock()
	delete(f.busy, entity)
	f.mu.Unlock()
	return reply(200, fmt.Sprintf(`<%sResponse><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></%sResponse>`, action, action))
}

func fakeConfig(f *fakeIAM) aws.Config {
	return aws.Config{
		Region:     "us-east-1",
		HTTPClient: f,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
		BaseEndpoint: aws.String("http://iam.fake"),
	}
}

// events records a lane's events.
type events struct {
	mu  sync.Mutex
	all []map[string]any
}

func (e *events) add(text string) {
	var ev map[string]any
	_ = json.Unmarshal([]byte(text), &ev)
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

// submitted lists the entities of the "submitted" events, in order.
func (e *events) submitted() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		if ev["type"] == "submitted" {
			out = append(out, fmt.Sprint(ev["entity"]))
		}
	}
	return out
}

func (e *events) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.all)
}

func newLane(t testing.TB, ev *events, opts ...writelane.Option) *writelane.Lane {
	t.Helper()
	if ev != nil {
		opts = append(opts, writelane.WithEvents(ev.add))
	}
	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 2, "cap_ms": 20}}}`, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lane.Close() })
	return lane
}

func put(c *iam.Client, ctx context.Context, role string) error {
	_, err := c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("p"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
	return err
}

// A conflict is retried inside the lane with the lane's backoff; the call succeeds.
func TestConflictRetriedInsideTheLane(t *testing.T) {
	f := &fakeIAM{}
	f.inject.Store(2)
	ev := &events{}
	lanes := New(newLane(t, ev))
	c := iam.NewFromConfig(fakeConfig(f), lanes.WithLanes())
	if err := put(c, context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 3 || f.conflicts.Load() != 2 {
		t.Fatalf("calls %d conflicts %d, want 3 and 2", f.calls.Load(), f.conflicts.Load())
	}
	if got := ev.submitted(); len(got) != 1 || got[0] != "role/app" {
		t.Fatalf("lanes taken: %v, want one of role/app (the retries inside it)", got)
	}
	if s := lanes.Stats(); s.Serialised != 1 || s.Passed != 0 || s.Unserialised != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Conflicts past the policy's attempts give up: a *GaveUpError that unwraps to IAM's error.
func TestConflictsExhausted(t *testing.T) {
	f := &fakeIAM{}
	f.inject.Store(100)
	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 2, "max_attempts": 3}}}`)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	c := iam.NewFromConfig(fakeConfig(f), WithLanes(lane))
	err = put(c, context.Background(), "app")
	var gu *writelane.GaveUpError
	var cm *types.ConcurrentModificationException
	if !errors.As(err, &gu) || gu.Attempts != 3 || !errors.As(err, &cm) {
		t.Fatalf("err %v, want gave up after 3 attempts wrapping ConcurrentModification", err)
	}
	if f.calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", f.calls.Load())
	}
}

// Another error goes back as the SDK returned it, tried once by the lane.
func TestOtherErrorsPassUnretried(t *testing.T) {
	f := &fakeIAM{}
	f.fail.Store(1)
	c := iam.NewFromConfig(fakeConfig(f), WithLanes(newLane(t, nil)))
	err := put(c, context.Background(), "app")
	var nse *types.NoSuchEntityException
	if !errors.As(err, &nse) || errors.Is(err, writelane.ErrGaveUp) {
		t.Fatalf("err %v, want IAM's NoSuchEntity as the SDK returns it", err)
	}
	if f.calls.Load() != 1 {
		t.Fatalf("%d calls, want 1", f.calls.Load())
	}
}

// Reads take no lane; an operation the table does not know, and a write whose entity
// cannot be determined, go through unserialised and counted.
func TestReadsUnknownAndUndetermined(t *testing.T) {
	f := &fakeIAM{}
	ev := &events{}
	var seen []string
	lanes := New(newLane(t, ev), WithUnserialised(func(service, op, reason string) { seen = append(seen, op+": "+reason) }))
	c := iam.NewFromConfig(fakeConfig(f), lanes.WithLanes())
	ctx := context.Background()
	if _, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListRoles(ctx, &iam.ListRolesInput{}); err != nil {
		t.Fatal(err)
	}
	if n := ev.count(); n != 0 {
		t.Fatalf("%d lane events for reads, want 0", n)
	}
	// PutAccountProperties is newer than the table.
	_, _ = c.PutAccountProperties(ctx, &iam.PutAccountPropertiesInput{Properties: map[string]string{"ns/p": "true"}})
	// A PolicyArn that is a role's ARN names no policy.
	_, _ = c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("app"), PolicyArn: aws.String("arn:aws:iam::123456789012:role/x")})
	if n := ev.count(); n != 0 {
		t.Fatalf("%d lane events for unserialised calls, want 0", n)
	}
	s := lanes.Stats()
	if s.Passed != 2 || s.Unserialised != 2 || s.Serialised != 0 || s.TableErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
	if len(seen) != 2 || seen[0] != "PutAccountProperties: " || !strings.Contains(seen[1], "PolicyArn") {
		t.Fatalf("unserialised calls seen: %q", seen)
	}
	if f.calls.Load() != 4 {
		t.Fatalf("%d calls reached IAM, want 4", f.calls.Load())
	}
}

// A two-entity operation takes both lanes in the order of their keys (group before
// user), whatever the order of its parameters.
func TestTwoEntitiesInCanonicalOrder(t *testing.T) {
	ev := &events{}
	c := iam.NewFromConfig(fakeConfig(&fakeIAM{}), WithLanes(newLane(t, ev)))
	if _, err := c.AddUserToGroup(context.Background(), &iam.AddUserToGroupInput{UserName: aws.String("alice"), GroupName: aws.String("zeta")}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ev.submitted(), " "); got != "group/zeta user/alice" {
		t.Fatalf("lanes taken: %q, want group/zeta then user/alice", got)
	}
}

// With an account, the keys are ARNs.
func TestAccountKeys(t *testing.T) {
	ev := &events{}
	c := iam.NewFromConfig(fakeConfig(&fakeIAM{}), WithLanes(newLane(t, ev), WithEntityContext(writelane.EntityContext{Account: "123456789012"})))
	if err := put(c, context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if got := ev.submitted(); len(got) != 1 || got[0] != "arn:aws:iam::123456789012:role/app" {
		t.Fatalf("lanes taken: %v", got)
	}
}

// A call cancelled while it waits for the lane returns the context's error, reaches no
// IAM, and leaves the lane free; so does one cancelled during its HTTP call.
func TestCancellationReleasesTheLane(t *testing.T) {
	f := &fakeIAM{hold: 200 * time.Millisecond}
	lane := newLane(t, nil)
	c := iam.NewFromConfig(fakeConfig(f), WithLanes(lane))
	held, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = lane.Run(context.Background(), "role/app", func(context.Context, writelane.Attempt) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	err := put(c, ctx, "app")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || f.calls.Load() != 0 {
		t.Fatalf("err %v after %d calls, want the deadline before any call", err, f.calls.Load())
	}
	close(release)
	// Cancelled in flight: the SDK call returns, the lane is released.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	err = put(c, ctx, "app")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline during the call", err)
	}
	f.hold = 0
	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := put(c, ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("the next call took %v: the lane was not released", d)
	}
}

// 8 goroutines writing one role at once: with lanes none conflicts; without, they do.
func TestConcurrentWritesSerialised(t *testing.T) {
	for _, withLanes := range []bool{false, true} {
		f := &fakeIAM{hold: 5 * time.Millisecond}
		var opts []func(*iam.Options)
		if withLanes {
			opts = append(opts, WithLanes(newLane(t, nil)))
		}
		c := iam.NewFromConfig(fakeConfig(f), append(opts, func(o *iam.Options) { o.Retryer = aws.NopRetryer{} })...)
		var wg sync.WaitGroup
		var failures atomic.Int64
		start := make(chan struct{})
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := put(c, context.Background(), "app"); err != nil {
					failures.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		switch {
		case withLanes && (f.conflicts.Load() != 0 || failures.Load() != 0):
			t.Fatalf("with lanes: %d conflicts, %d failures", f.conflicts.Load(), failures.Load())
		case !withLanes && f.conflicts.Load() == 0:
			t.Fatalf("without lanes: no conflict, so this test proves nothing")
		}
		t.Logf("lanes %v: %d calls, %d conflicts, %d failures", withLanes, f.calls.Load(), f.conflicts.Load(), failures.Load())
	}
}

// The answers kept for repeated writes are per parameters: each role its own lane.
func TestEachRoleItsLane(t *testing.T) {
	ev := &events{}
	c := iam.NewFromConfig(fakeConfig(&fakeIAM{}), WithLanes(newLane(t, ev)))
	for _, role := range []string{"a", "b", "a", "c"} {
		if err := put(c, context.Background(), role); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(ev.submitted(), " "); got != "role/a role/b role/a role/c" {
		t.Fatalf("lanes taken: %q", got)
	}
}

// A call that waits for its lane past the policy's deadline gives up without reaching IAM.
func TestLaneWaitPastTheDeadline(t *testing.T) {
	f := &fakeIAM{}
	lane, err := writelane.New(`{"preset": "iam", "deadline_ms": 50}`)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	c := iam.NewFromConfig(fakeConfig(f), WithLanes(lane))
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = lane.Run(context.Background(), "role/app", func(context.Context, writelane.Attempt) error {
			close(held)
			<-release
			return nil
		}, writelane.WithDeadline(10*time.Second))
	}()
	<-held
	start := time.Now()
	err = put(c, context.Background(), "app")
	t.Logf("gave up after %v", time.Since(start))
	close(release)
	<-done
	var gu *writelane.GaveUpError
	if !errors.As(err, &gu) || gu.Reason != "deadline_exceeded" || f.calls.Load() != 0 {
		t.Fatalf("err %v after %d calls, want deadline_exceeded before any call", err, f.calls.Load())
	}
}
