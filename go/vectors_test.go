package writelane

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The conformance vectors, run through the Go API with results identical to Rust.

// vectorFiles lists the vectors of tests/vectors and, while the shared-lane vectors live
// apart, of tests/vectors-lease; each directory must hold some.
func vectorFiles(t *testing.T) []string {
	var all []string
	for _, dir := range []string{"vectors", "vectors-lease"} {
		path := filepath.Join("..", "tests", dir)
		if _, err := os.Stat(path); err != nil && dir != "vectors" {
			continue
		}
		files, err := filepath.Glob(filepath.Join(path, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no vector files found in tests/%s", dir)
		}
		sort.Strings(files)
		all = append(all, files...)
	}
	return all
}

func decode(t *testing.T, text string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, text)
	}
	return v
}

// normal re-encodes a value so json.Number and float forms compare equal.
func normal(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, string(b))
}

func optStr(v any) *string {
	if s, ok := v.(string); ok {
		return &s
	}
	return nil
}

func u64(v any) uint64 {
	n, _ := strconv.ParseUint(v.(json.Number).String(), 10, 64)
	return n
}

func failureFrom(v any) *Failure {
	m, _ := v.(map[string]any)
	f := &Failure{}
	if s, ok := m["code"].(string); ok {
		f.Code = s
	}
	if n, ok := m["status"].(json.Number); ok {
		i, _ := n.Int64()
		f.HTTPStatus = int(i)
	}
	switch ra := m["retry_after_ms"].(type) {
	case json.Number:
		ms := u64(ra)
		f.RetryAfterMs = &ms
	case string:
		f.RetryAfterHeader = &ra
	}
	if b, ok := m["outcome_unknown"].(bool); ok {
		f.OutcomeUnknown = b
	}
	f.IntendedToken = optStr(m["intended_token"])
	return f
}

func strOrNil(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// commandJSON is the core's JSON form of a command, built from the Go value.
func commandJSON(t *testing.T, c *Command) map[string]any {
	out := map[string]any{"op": c.Op}
	switch c.Kind {
	case CommandRead:
		out["type"] = "read"
	case CommandWrite:
		out["type"] = "write"
		out["attempt"] = c.Attempt
		out["base_token"] = strOrNil(c.BaseToken)
		if c.Fence != nil {
			out["fence"] = *c.Fence
		}
	case CommandStore:
		out["type"] = "store"
		// The Go value, re-encoded, must say what the library's text says.
		op := decode(t, mustJSON(c.Store))
		if !reflect.DeepEqual(op, decode(t, c.StoreJSON)) {
			t.Fatalf("store operation %s re-encodes as %s", c.StoreJSON, mustJSON(c.Store))
		}
		out["operation"] = op
	case CommandFinish:
		out["type"] = "finish"
		o := c.Outcome
		m := map[string]any{"attempts": o.Attempts}
		if o.Committed {
			m["status"] = "committed"
			m["token"] = strOrNil(o.Token)
		} else {
			m["status"] = "gave_up"
			m["reason"] = o.Reason
			switch o.Reason {
			case "attempts_exhausted":
				m["class"], m["code"] = o.Class, strOrNil(o.Code)
			case "budget_exhausted":
				m["class"], m["scope"], m["code"] = o.Class, o.Scope, strOrNil(o.Code)
			case "deadline_exceeded":
				m["code"] = strOrNil(o.Code)
			case "fatal":
				m["code"] = strOrNil(o.Code)
				if o.HTTPStatus != 0 {
					m["http_status"] = o.HTTPStatus
				} else {
					m["http_status"] = nil
				}
			case "stale_revision":
				m["expected"], m["found"] = strOrNil(o.Expected), strOrNil(o.Found)
			}
		}
		out["outcome"] = m
	}
	return out
}

func checkErr(t *testing.T, step map[string]any, err error) bool {
	t.Helper()
	want, has := step["error"]
	if !has || want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return true
	}
	var ue *UsageError
	if !errors.As(err, &ue) || ue.Kind != want {
		t.Fatalf("expected usage error %v, got %v", want, err)
	}
	return false
}

func TestVectors(t *testing.T) {
	for _, file := range vectorFiles(t) {
		file := file
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			v := decode(t, string(text)).(map[string]any)
			policy, _ := json.Marshal(v["policy"])
			switch v["kind"] {
			case "engine":
				runEngineVector(t, v, string(policy))
			case "strategy":
				runStrategyVector(t, v, string(policy))
			case "policy_error":
				_, err := NewEngine(string(policy), 0)
				var pe *PolicyError
				want := v["error"].(map[string]any)
				if !errors.As(err, &pe) {
					t.Fatalf("expected *PolicyError, got %v", err)
				}
				if pe.Path != want["path"] || !strings.Contains(pe.Message, want["rule"].(string)) {
					t.Fatalf("got %q / %q, want %v", pe.Path, pe.Message, want)
				}
			case "token":
				tok, err := PolicyToken(v["document"].(string))
				if want, ok := v["token"].(string); ok {
					if err != nil || tok != want {
						t.Fatalf("token %q %v, want %q", tok, err, want)
					}
				} else {
					var de *DocumentError
					if !errors.As(err, &de) || de.Path != v["error"].(map[string]any)["path"] {
						t.Fatalf("expected *DocumentError at %v, got %v", v["error"], err)
					}
				}
			default:
				t.Fatalf("unknown kind %v", v["kind"])
			}
		})
	}
}

func runEngineVector(t *testing.T, v map[string]any, policy string) {
	var e *Engine
	var err error
	if owner, ok := v["owner"].(string); ok {
		e, err = NewEngineWithOwner(policy, u64(v["seed"]), owner)
	} else {
		e, err = NewEngine(policy, u64(v["seed"]))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if st, ok := v["import_state"]; ok {
		b, _ := json.Marshal(st)
		if err := e.ImportState(string(b)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range v["steps"].([]any) {
		step := s.(map[string]any)
		at := u64(step["at"])
		switch {
		case step["submit"] != nil:
			sub := step["submit"].(map[string]any)
			noRead, _ := sub["no_read"].(bool)
			opts := SubmitOptions{Expected: optStr(sub["expected"]), Holder: optStr(sub["holder"]), NoRead: noRead}
			if d, ok := sub["deadline_ms"].(json.Number); ok {
				ms := u64(d)
				opts.DeadlineMs = &ms
			}
			op, err := e.Submit(sub["entity"].(string), at, opts)
			if checkErr(t, step, err) && step["op"] != nil && op != u64(step["op"]) {
				t.Fatalf("step %d: op %d, want %v", i, op, step["op"])
			}
		case step["input"] != nil:
			in := step["input"].(map[string]any)
			kinds := map[string]InputKind{"read_done": ReadDone, "read_failed": ReadFailed, "write_done": WriteDone,
				"write_failed": WriteFailed, "cancel": Cancel, "store_reply": InputStoreReply}
			kind, known := kinds[in["type"].(string)]
			if !known {
				t.Fatalf("step %d: unknown input type %v", i, in["type"])
			}
			input := Input{Kind: kind, Op: u64(in["op"]), Token: optStr(in["token"])}
			if f, ok := in["failure"]; ok {
				input.Failure = failureFrom(f)
			}
			if r, ok := in["reply"]; ok {
				// Through the Go type, so its JSON form is checked too.
				var reply StoreReply
				if err := json.Unmarshal([]byte(mustJSON(r)), &reply); err != nil {
					t.Fatalf("step %d: reply: %v", i, err)
				}
				input.Reply = &reply
			}
			checkErr(t, step, e.Handle(at, input))
		case step["timeout"] != nil:
			checkErr(t, step, e.HandleTimeout(at))
		default:
			t.Fatalf("step %d: no action", i)
		}
		cmds := []any{}
		for {
			c, err := e.PollCommand()
			if err != nil {
				t.Fatal(err)
			}
			if c == nil {
				break
			}
			cmds = append(cmds, commandJSON(t, c))
		}
		if want, ok := step["commands"]; ok && !reflect.DeepEqual(normal(t, cmds), normal(t, want)) {
			t.Fatalf("step %d: commands\n got %s\nwant %s", i, mustJSON(cmds), mustJSON(want))
		}
		events := []any{}
		for {
			ev, ok, err := e.PollEvent()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			events = append(events, decode(t, ev))
		}
		if want, ok := step["events"]; ok && !reflect.DeepEqual(normal(t, events), normal(t, want)) {
			t.Fatalf("step %d: events\n got %s\nwant %s", i, mustJSON(events), mustJSON(want))
		}
		if want, ok := step["next_timeout"]; ok {
			at, has, err := e.PollTimeout()
			if err != nil {
				t.Fatal(err)
			}
			if (want == nil) == has || (has && at != u64(want)) {
				t.Fatalf("step %d: next timeout %d/%v, want %v", i, at, has, want)
			}
		}
	}
	if fin, ok := v["final_stats"].(map[string]any); ok {
		text, err := e.StatsJSON()
		if err != nil {
			t.Fatal(err)
		}
		stats := decode(t, text).(map[string]any)
		got := map[string]any{"global": stats["global"], "budget": stats["budget"]}
		if !reflect.DeepEqual(normal(t, got), normal(t, fin)) {
			t.Fatalf("final stats\n got %s\nwant %s", mustJSON(got), mustJSON(fin))
		}
	}
}

func runStrategyVector(t *testing.T, v map[string]any, policy string) {
	e, err := NewEngine(policy, u64(v["seed"]))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tokens := map[string]*RetryToken{}
	for i, s := range v["steps"].([]any) {
		step := s.(map[string]any)
		at := u64(step["at"])
		switch {
		case step["acquire"] != nil:
			a := step["acquire"].(map[string]any)
			tok, err := e.RetryAcquire(a["scope"].(string), at)
			if checkErr(t, step, err) {
				tokens[a["token"].(string)] = &tok
			}
		case step["refresh"] != nil:
			r := step["refresh"].(map[string]any)
			d, err := e.RetryRefresh(tokens[r["token"].(string)], failureFrom(r["failure"]), at)
			if checkErr(t, step, err) {
				var got map[string]any
				if d.Retry {
					got = map[string]any{"delay_ms": d.DelayMs, "cost": d.Cost, "class": d.Class}
				} else {
					got = map[string]any{"refused": d.Refusal}
				}
				if want, ok := step["result"]; ok && !reflect.DeepEqual(normal(t, got), normal(t, want)) {
					t.Fatalf("step %d: got %s, want %s", i, mustJSON(got), mustJSON(want))
				}
			}
		case step["success"] != nil:
			sc := step["success"].(map[string]any)
			checkErr(t, step, e.RetrySuccess(tokens[sc["token"].(string)]))
		default:
			t.Fatalf("step %d: no action", i)
		}
		if c, ok := step["capacity"].(map[string]any); ok {
			level, err := e.RetryCapacity(c["scope"].(string))
			if err != nil || uint64(level) != u64(c["level"]) {
				t.Fatalf("step %d: capacity %d %v, want %v", i, level, err, c["level"])
			}
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
