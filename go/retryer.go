package writelane

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Retryer adapts the lane's retry strategy to the AWS SDK for Go v2: it satisfies
// aws.Retryer and aws.RetryerV2 (every method uses standard-library types only), so
//
//	client := iam.NewFromConfig(cfg, func(o *iam.Options) { o.Retryer = lane.Retryer() })
//
// retries ConcurrentModification and the other codes of the lane's policy, with the
// policy's per-class attempts, jittered backoff and retry budget. The SDK asks for the
// budget (GetRetryToken) and the delay (RetryDelay) separately; the first draws the
// class's cost from the lane's "aws" budget scope and refunds it when the retried call
// succeeds, the second is the class's jittered backoff for that attempt.
type Retryer struct {
	lane        *Lane
	scope       string
	maxAttempts int
}

// Retryer returns an AWS SDK for Go v2 retryer over this lane's policy and budget.
func (l *Lane) Retryer() *Retryer {
	return l.RetryerFor("aws")
}

// RetryerFor is Retryer with its own budget scope (one per service, say).
func (l *Lane) RetryerFor(scope string) *Retryer {
	r := &Retryer{lane: l, scope: scope, maxAttempts: 3}
	if text, err := l.eng.PolicyJSON(); err == nil {
		var p struct {
			Retry map[string]struct {
				MaxAttempts int `json:"max_attempts"`
			} `json:"retry"`
		}
		if json.Unmarshal([]byte(text), &p) == nil {
			for _, rule := range p.Retry {
				if rule.MaxAttempts > r.maxAttempts {
					r.maxAttempts = rule.MaxAttempts
				}
			}
		}
	}
	return r
}

// IsErrorRetryable reports whether the policy retries err's class.
func (r *Retryer) IsErrorRetryable(err error) bool {
	r.lane.mu.Lock()
	defer r.lane.mu.Unlock()
	r.lane.eng.mu.Lock()
	defer r.lane.eng.mu.Unlock()
	class, cerr := r.lane.eng.classifyLocked(FailureOf(err))
	return cerr == nil && class != "fatal"
}

// MaxAttempts is the largest attempt count of any class in the policy; each class's own
// limit is applied by RetryDelay.
func (r *Retryer) MaxAttempts() int { return r.maxAttempts }

// RetryDelay is the jittered backoff before retrying after attempt (from 1) failed with
// err. It returns a *GaveUpError (wrapping err) once the class's attempts are exhausted,
// the error is not retryable, or the delay would pass the policy's deadline.
func (r *Retryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	f := FailureOf(err)
	r.lane.mu.Lock()
	r.lane.eng.mu.Lock()
	d, derr := r.lane.eng.retryDelayLocked(attempt, f, r.lane.now())
	r.lane.eng.mu.Unlock()
	r.lane.mu.Unlock()
	if derr != nil {
		return 0, derr
	}
	if !d.Retry {
		return 0, r.refusal(d, f, attempt, err)
	}
	return time.Duration(d.DelayMs) * time.Millisecond, nil
}

func (r *Retryer) refusal(d RetryDecision, f *Failure, attempts int, err error) error {
	return &GaveUpError{Entity: r.scope, Reason: d.Refusal, Class: d.Class, Code: f.Code, HTTPStatus: f.HTTPStatus, Attempts: attempts, Cause: err}
}

// GetRetryToken takes the retry's cost from the budget; the returned function refunds it
// when the retried call succeeds. An empty budget is a *GaveUpError (budget_exhausted)
// wrapping err.
func (r *Retryer) GetRetryToken(ctx context.Context, err error) (func(error) error, error) {
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	f := FailureOf(err)
	r.lane.mu.Lock()
	defer r.lane.mu.Unlock()
	e := r.lane.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	now := r.lane.now()
	t, terr := e.retryAcquireLocked(r.scope, now)
	if terr != nil {
		return nil, terr
	}
	d, derr := e.retryRefreshLocked(&t, f, now)
	if derr != nil {
		return nil, derr
	}
	if !d.Retry {
		return nil, r.refusal(d, f, 0, err)
	}
	return r.release(&t), nil
}

// release returns a function that records success for t when called with a nil error.
func (r *Retryer) release(t *RetryToken) func(error) error {
	return func(err error) error {
		if err != nil {
			return nil
		}
		e := r.lane.eng
		e.mu.Lock()
		defer e.mu.Unlock()
		if serr := e.retrySuccessLocked(t); serr != nil && !errors.Is(serr, ErrClosed) {
			return serr
		}
		return nil
	}
}

// GetInitialToken returns the function the SDK calls after the first attempt: a
// first-try success adds the policy's success reward to the budget.
func (r *Retryer) GetInitialToken() func(error) error {
	e := r.lane.eng
	r.lane.mu.Lock()
	e.mu.Lock()
	t, err := e.retryAcquireLocked(r.scope, r.lane.now())
	e.mu.Unlock()
	r.lane.mu.Unlock()
	if err != nil {
		return func(error) error { return nil }
	}
	return r.release(&t)
}

// GetAttemptToken is GetInitialToken for aws.RetryerV2.
func (r *Retryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.GetInitialToken(), nil
}
