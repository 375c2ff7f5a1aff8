package writelane

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The AWS SDK for Go v2 interfaces, spelled out with standard-library types: aws.Retryer
// and aws.RetryerV2.
type awsRetryer interface {
	IsErrorRetryable(error) bool
	MaxAttempts() int
	RetryDelay(attempt int, opErr error) (time.Duration, error)
	GetRetryToken(ctx context.Context, opErr error) (releaseToken func(error) error, err error)
	GetInitialToken() (releaseToken func(error) error)
}

type awsRetryerV2 interface {
	awsRetryer
	GetAttemptToken(context.Context) (func(error) error, error)
}

var _ awsRetryerV2 = (*Retryer)(nil)

func TestRetryerDecisions(t *testing.T) {
	l := newLane(t, `{"preset": "iam", "retry": {"conflict": {"base_ms": 200, "cap_ms": 15000, "jitter": "none", "max_attempts": 4}}}`)
	r := l.Retryer()
	if r.MaxAttempts() != 8 {
		t.Fatalf("max attempts %d (the largest class limit of the policy)", r.MaxAttempts())
	}
	if !r.IsErrorRetryable(conflict()) || r.IsErrorRetryable(&apiError{"AccessDenied", 403}) || r.IsErrorRetryable(&apiError{"LimitExceeded", 409}) {
		t.Fatal("classification")
	}
	for attempt, want := range map[int]time.Duration{1: 200 * time.Millisecond, 2: 400 * time.Millisecond, 3: 800 * time.Millisecond} {
		d, err := r.RetryDelay(attempt, conflict())
		if err != nil || d != want {
			t.Fatalf("attempt %d: %v %v, want %v", attempt, d, err, want)
		}
	}
	_, err := r.RetryDelay(4, conflict())
	var gu *GaveUpError
	if !errors.As(err, &gu) || gu.Reason != "attempts_exhausted" || !errors.Is(err, ErrGaveUp) {
		t.Fatalf("got %v", err)
	}
	var api interface{ ErrorCode() string }
	if !errors.As(err, &api) {
		t.Fatal("the SDK error must stay reachable")
	}
	before, _ := l.Engine().RetryCapacity("aws")
	release, err := r.GetRetryToken(context.Background(), conflict())
	if err != nil {
		t.Fatal(err)
	}
	mid, _ := l.Engine().RetryCapacity("aws")
	if err := release(nil); err != nil {
		t.Fatal(err)
	}
	after, _ := l.Engine().RetryCapacity("aws")
	if mid >= before || after != before {
		t.Fatalf("budget %d -> %d -> %d: a retry costs, a success refunds", before, mid, after)
	}
	if _, err := r.GetRetryToken(context.Background(), &apiError{"AccessDenied", 403}); !errors.As(err, &gu) || gu.Reason != "not_retryable" {
		t.Fatalf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.GetAttemptToken(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// A loop shaped like the SDK's retry middleware: it survives injected conflicts.
func TestRetryerInAnSDKShapedLoop(t *testing.T) {
	l := newLane(t, `{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 5}}}`)
	r := l.Retryer()
	failuresLeft := 3
	call := func() error {
		if failuresLeft > 0 {
			failuresLeft--
			return conflict()
		}
		return nil
	}
	release := func(error) error { return nil }
	var err error
	for attempt := 1; ; attempt++ {
		attemptRelease, terr := r.GetAttemptToken(context.Background())
		if terr != nil {
			t.Fatal(terr)
		}
		err = call()
		_ = release(err)
		_ = attemptRelease(err)
		if err == nil || !r.IsErrorRetryable(err) || attempt >= r.MaxAttempts() {
			break
		}
		var rerr error
		if release, rerr = r.GetRetryToken(context.Background(), err); rerr != nil {
			err = rerr
			break
		}
		d, derr := r.RetryDelay(attempt, err)
		if derr != nil {
			err = derr
			break
		}
		time.Sleep(d)
	}
	if err != nil || failuresLeft != 0 {
		t.Fatalf("err %v, %d failures left", err, failuresLeft)
	}
}
