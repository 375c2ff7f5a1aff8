package writelane

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The group-commit vectors (tests/vectors-lane/batch, format in tests/vectors-lane's
// README) replayed through Lane.Update and Lane.Run, as the Rust driver's replay
// (lane/tests/batch_vectors.rs) does: one goroutine per run on a virtual clock, a
// document store whose reads and writes take call_ms, and change functions that append an
// item or refuse.
//
// The virtual clock moves only when every goroutine of the replay is blocked (a stopped-
// the-world goroutine dump shows none runnable), to the earliest pending wait: the same
// rule as tokio's paused clock, so that the order of events is the engine's.

// eventClock is a virtual clock whose waits fire in time order, one at a time, when the
// replay is quiet.
type eventClock struct {
	mu     sync.Mutex
	base   time.Time
	ms     uint64
	seq    uint64
	timers []clockTimer
}

type clockTimer struct {
	due, seq uint64
	ch       chan time.Time // nil for an action
	action   func()
}

func (c *eventClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Duration(c.ms) * time.Millisecond)
}

func (c *eventClock) now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ms
}

func (c *eventClock) add(d time.Duration, ch chan time.Time, action func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.timers = append(c.timers, clockTimer{due: c.ms + uint64(d/time.Millisecond), seq: c.seq, ch: ch, action: action})
}

func (c *eventClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.add(d, ch, nil)
	return ch
}

func (c *eventClock) sleep(ms uint64) { <-c.After(time.Duration(ms) * time.Millisecond) }

// fire moves the clock to the earliest wait and fires it; false when none is pending.
func (c *eventClock) fire() bool {
	c.mu.Lock()
	if len(c.timers) == 0 {
		c.mu.Unlock()
		return false
	}
	i := 0
	for j, t := range c.timers {
		if t.due < c.timers[i].due || (t.due == c.timers[i].due && t.seq < c.timers[i].seq) {
			i = j
		}
	}
	t := c.timers[i]
	c.timers = slices.Delete(c.timers, i, i+1)
	c.ms = max(c.ms, t.due)
	at := c.base.Add(time.Duration(c.ms) * time.Millisecond)
	c.mu.Unlock()
	if t.action != nil {
		t.action()
	} else {
		t.ch <- at
	}
	return true
}

// quiet waits until no goroutine but the caller can run: every other one is blocked on a
// channel, a select or a condition (a goroutine waiting for a mutex waits for one that
// runs). Two dumps in a row must agree, a millisecond apart.
func quiet(t *testing.T) {
	buf := make([]byte, 1<<20)
	calm := 0
	for i := 0; calm < 2; i++ {
		if i > 20000 {
			t.Fatal("the replay never came to rest")
		}
		runtime.Gosched()
		n := runtime.Stack(buf, true)
		busy := false
		for k, g := range strings.Split(string(buf[:n]), "\n\n") {
			if k == 0 { // the caller
				continue
			}
			head, _, _ := strings.Cut(g, "\n")
			open := strings.Index(head, "[")
			state := head[open+1:]
			if !(strings.HasPrefix(state, "chan receive") || strings.HasPrefix(state, "select") ||
				strings.HasPrefix(state, "chan send") || strings.HasPrefix(state, "sync.Cond.Wait") ||
				strings.HasPrefix(state, "sync.WaitGroup.Wait") || strings.HasPrefix(state, "finalizer wait") ||
				strings.HasPrefix(state, "IO wait") || strings.HasPrefix(state, "GC ") ||
				strings.HasPrefix(state, "force gc") || strings.HasPrefix(state, "sleep")) {
				busy = true
				break
			}
		}
		if busy {
			calm = 0
			time.Sleep(50 * time.Microsecond)
			continue
		}
		calm++
		time.Sleep(time.Millisecond)
	}
}

// batchWorld is a vector's document store and what the replay saw.
type batchWorld struct {
	mu         sync.Mutex
	clock      *eventClock
	items      []string
	version    int
	writes     int
	calls      []map[string]any
	callMs     uint64
	writeFails map[int]*Failure
	maxItems   int // 0: no limit
}

func (w *batchWorld) log(call map[string]any) {
	w.mu.Lock()
	call["at"] = w.clock.now()
	w.calls = append(w.calls, call)
	w.mu.Unlock()
}

func (w *batchWorld) read(run int) (string, *string, error) {
	w.log(map[string]any{"call": "read", "run": run})
	w.clock.sleep(w.callMs)
	w.mu.Lock()
	defer w.mu.Unlock()
	doc, _ := json.Marshal(w.items)
	token := fmt.Sprintf("v%d", w.version)
	return string(doc), &token, nil
}

func (w *batchWorld) write(run int, items []string, a Attempt) error {
	w.log(map[string]any{"call": "write", "run": run, "attempt": a.Number, "base_token": strOrNil(a.BaseToken), "document": items})
	w.clock.sleep(w.callMs)
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.writes
	w.writes++
	if f := w.writeFails[k]; f != nil {
		return f
	}
	if w.maxItems > 0 && len(items) > w.maxItems {
		return &Failure{Code: "LimitExceeded", HTTPStatus: 409}
	}
	w.items = items
	w.version++
	a.SetToken(fmt.Sprintf("v%d", w.version))
	return nil
}

func itemsOf(t *testing.T, doc string) []string {
	var items []string
	if err := json.Unmarshal([]byte(doc), &items); err != nil {
		t.Errorf("document %q: %v", doc, err)
	}
	return items
}

// batchApplies folds the change calls after each read into the vector's apply entries.
func batchApplies(calls []map[string]any) []any {
	out := []any{}
	var leader any
	for _, c := range calls {
		if j, ok := c["change"]; ok {
			last, _ := any(nil), false
			if len(out) > 0 {
				last = out[len(out)-1]
			}
			if m, ok := last.(map[string]any); !ok || m["call"] != "apply" {
				out = append(out, map[string]any{"at": c["at"], "call": "apply", "run": leader, "runs": []any{}})
			}
			m := out[len(out)-1].(map[string]any)
			m["runs"] = append(m["runs"].([]any), j)
			continue
		}
		if c["call"] == "read" {
			leader = c["run"]
		}
		out = append(out, c)
	}
	return out
}

func TestBatchVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "tests", "vectors-lane", "batch", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if len(files) != 6 {
		t.Fatalf("%d group-commit vectors in tests/vectors-lane/batch, want 6", len(files))
	}
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		v := decode(t, string(text)).(map[string]any)
		t.Run(filepath.Base(file), func(t *testing.T) {
			if v["kind"] != "batch" {
				t.Fatalf("kind %v, want batch", v["kind"])
			}
			got := replayBatch(t, v)
			want := v["expect"]
			if !reflect.DeepEqual(normal(t, got), normal(t, want)) {
				t.Errorf("replay\n got %s\nwant %s", mustJSON(got), mustJSON(want))
			}
		})
	}
}

func replayBatch(t *testing.T, v map[string]any) map[string]any {
	clock := &eventClock{base: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	w := &batchWorld{clock: clock, items: []string{}, callMs: u64(v["call_ms"]), writeFails: map[int]*Failure{}}
	for k, f := range v["write_fails"].(map[string]any) {
		n, err := strconv.Atoi(k)
		if err != nil {
			t.Fatalf("write_fails key %q", k)
		}
		w.writeFails[n] = failureFrom(f)
	}
	if m, ok := v["max_items"].(json.Number); ok {
		w.maxItems = int(u64(m))
	}
	lane, err := New(mustJSON(v["policy"]), WithSeed(u64(v["seed"])), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	entity := v["entity"].(string)
	runs := v["runs"].([]any)
	outcomes := make([]any, len(runs))
	var end uint64
	var wg sync.WaitGroup
	var endMu sync.Mutex
	for i, spec := range runs {
		spec := spec.(map[string]any)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if at, ok := spec["cancel_at_ms"].(json.Number); ok {
			clock.add(time.Duration(u64(at))*time.Millisecond, nil, cancel)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			clock.sleep(u64(spec["at_ms"]))
			var o Outcome
			var err error
			if items, ok := spec["write"].([]any); ok {
				doc := make([]string, len(items))
				for k, it := range items {
					doc[k] = it.(string)
				}
				read := func(ctx context.Context) (string, bool, error) {
					_, token, err := w.read(i)
					return *token, true, err
				}
				err = lane.Run(ctx, entity, func(ctx context.Context, a Attempt) error { return w.write(i, doc, a) },
					WithRead(read), WithOutcome(&o))
			} else {
				update := spec["update"].(map[string]any)
				change := func(doc string) (string, error) {
					w.log(map[string]any{"change": i})
					if typ, ok := update["raise"].(string); ok {
						return "", &Failure{Code: typ}
					}
					item := update["add"].(string)
					items := itemsOf(t, doc)
					if !slices.Contains(items, item) {
						items = append(items, item)
					}
					b, _ := json.Marshal(items)
					return string(b), nil
				}
				err = lane.Update(ctx, entity,
					func(ctx context.Context) (string, *string, error) { return w.read(i) },
					change,
					func(ctx context.Context, doc string, a Attempt) error { return w.write(i, itemsOf(t, doc), a) },
					WithOutcome(&o))
			}
			outcomes[i] = outcomeOf(t, err, &o)
			endMu.Lock()
			end = max(end, clock.now())
			endMu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		quiet(t)
		select {
		case <-done:
			w.mu.Lock()
			defer w.mu.Unlock()
			return map[string]any{"calls": batchApplies(w.calls), "outcomes": outcomes, "document": w.items, "end_ms": end}
		default:
		}
		if !clock.fire() {
			t.Fatal("the runs wait and no time is pending: a deadlock")
		}
	}
}
