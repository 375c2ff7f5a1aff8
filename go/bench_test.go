package writelane

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
)

// Per-decision cost through Go and the backend (wazero by default, cgo with the
// writelane_cgo tag), against a bare call into the library (wl_abi_version).
// bindings-c/bench.sh runs these under both backends with the Rust and C measurements and
// prints the ratios; go/README.md has the figures.

func BenchmarkBareCall(b *testing.B) {
	var sink uint32
	for i := 0; i < b.N; i++ {
		sink += bareCall()
	}
	_ = sink
}

const benchPolicy = `{"preset":"iam","retry":{"conflict":{"base_ms":1,"cap_ms":1,"jitter":"none"}},"spike":{"enabled":false},"budget":{"enabled":false},"tokens":{"handoff":false}}`

// One logical write with one conflict: 11 engine calls, as in the Rust benchmark.
func BenchmarkEngineDecision(b *testing.B) {
	e, err := NewEngine(benchPolicy, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	entities := []string{"role/a", "role/b", "role/c", "role/d"}
	v1, v2 := "v1", "v2"
	conflict := &Failure{Code: "ConcurrentModification", HTTPStatus: 409}
	var now uint64
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	poll := func(want CommandKind) {
		c, err := e.PollCommand()
		if err != nil || c == nil || c.Kind != want {
			b.Fatalf("poll: %v %v, want %v", c, err, want)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op, err := e.Submit(entities[i%4], now, SubmitOptions{})
		must(err)
		poll(CommandRead)
		must(e.Handle(now, Input{Kind: ReadDone, Op: op, Token: &v1}))
		poll(CommandWrite)
		must(e.Handle(now, Input{Kind: WriteFailed, Op: op, Failure: conflict}))
		now++
		must(e.HandleTimeout(now))
		poll(CommandRead)
		must(e.Handle(now, Input{Kind: ReadDone, Op: op, Token: &v1}))
		poll(CommandWrite)
		must(e.Handle(now, Input{Kind: WriteDone, Op: op, Token: &v2}))
		poll(CommandFinish)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*11), "ns/call")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/write")
}

// acquire, refresh, success: 3 strategy calls.
func BenchmarkStrategyDecision(b *testing.B) {
	e, err := NewEngine(`"aws-standard"`, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	f := &Failure{Code: "InternalFailure", HTTPStatus: 500}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := e.RetryAcquire("iam", 0)
		if err != nil {
			b.Fatal(err)
		}
		d, err := e.RetryRefresh(&t, f, 0)
		if err != nil || !d.Retry {
			b.Fatal(d, err)
		}
		if err := e.RetrySuccess(&t); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*3), "ns/call")
}

// One retry decision alone (RetryRefresh on a token that keeps retrying under no budget):
// the call an SDK retryer makes per failure.
func BenchmarkRetryDecision(b *testing.B) {
	e, err := NewEngine(`{"preset":"aws-standard","retry":{"transient":{"max_attempts":100}},"budget":{"enabled":false}}`, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	f := &Failure{Code: "InternalFailure", HTTPStatus: 500}
	t, err := e.RetryAcquire("iam", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := t
	for i := 0; i < b.N; i++ {
		if i%90 == 0 {
			t = start
		}
		if d, err := e.RetryRefresh(&t, f, 0); err != nil || !d.Retry {
			b.Fatal(d, err)
		}
	}
}

// NewEngine and Close: with the default backend an instance comes from the pool (and
// goes back to it), so this is the cost of a new wl_engine inside a warm instance.
func BenchmarkNewEngine(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e, err := NewEngine(`"iam"`, 1)
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
	}
}

// The driver's cost of one uncontended Run (submit, one write without a read, finish),
// all of it lane bookkeeping and engine calls.
func BenchmarkLaneRun(b *testing.B) {
	l, err := New(benchPolicy, WithSeed(1))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	write := func(context.Context, Attempt) error { return nil }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.Run(ctx, "role/a", write); err != nil {
			b.Fatal(err)
		}
	}
}

// The driver's cost of one uncontended Run with a read (submit, read, write, finish), to
// set beside BenchmarkLaneUpdate.
func BenchmarkLaneRunWithRead(b *testing.B) {
	l, err := New(benchPolicy, WithSeed(1))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	write := func(context.Context, Attempt) error { return nil }
	read := WithRead(func(context.Context) (string, bool, error) { return "v1", true, nil })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.Run(ctx, "role/a", write, read); err != nil {
			b.Fatal(err)
		}
	}
}

// The driver's cost of one uncontended Update (submit, read, apply of its own change,
// write, finish): the group-commit overhead over BenchmarkLaneRunWithRead.
func BenchmarkLaneUpdate(b *testing.B) {
	l, err := New(benchPolicy, WithSeed(1))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	token := "v1"
	read := func(context.Context) (string, *string, error) { return "[]", &token, nil }
	change := func(doc string) (string, error) { return doc, nil }
	write := func(context.Context, string, Attempt) error { return nil }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.Update(ctx, "role/a", read, change, write); err != nil {
			b.Fatal(err)
		}
	}
}

// 64 goroutines updating one entity through one Lane: queued updates ride in the
// holder's write (group commit); writes/op is the share of an update in a write.
func BenchmarkLaneUpdateContended(b *testing.B) {
	l, err := New(benchPolicy, WithSeed(1))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	token := "v1"
	read := func(context.Context) (string, *string, error) { return "[]", &token, nil }
	change := func(doc string) (string, error) { return doc, nil }
	var writes atomic.Int64
	write := func(context.Context, string, Attempt) error { writes.Add(1); return nil }
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Update(ctx, "role/a", read, change, write); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(writes.Load())/float64(b.N), "writes/op")
}

// 64 goroutines writing 4 entities through one Lane: most writers wait queued, and each
// finished write hands its entity to the next (the wake-ups the driver pays for).
func BenchmarkLaneRunContended(b *testing.B) {
	l, err := New(benchPolicy, WithSeed(1))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	entities := []string{"role/a", "role/b", "role/c", "role/d"}
	ctx := context.Background()
	write := func(context.Context, Attempt) error { return nil }
	var n atomic.Int64
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Run(ctx, entities[n.Add(1)%4], write); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
