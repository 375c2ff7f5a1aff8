package otel_test

// The Observer against the real OpenTelemetry SDK (a ManualReader for metrics, an
// InMemoryExporter for spans), after runs against the IAM contention lab (tests/iamlab)
// that answers overlapping or injected writes with IAM's ConcurrentModification.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	writelane "github.com/writelane/writelane/go"
	wlotel "github.com/writelane/writelane/go/otel"
	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

var labEndpoint string

func TestMain(m *testing.M) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	python := os.Getenv("PYTHON")
	if python == "" {
		python = "python3"
	}
	cmd := exec.Command(python, filepath.Join(root, "tests", "iamlab", "iamlab.py"), "--port", "0", "--service-ms", "20")
	var labLog strings.Builder
	cmd.Stderr = &labLog
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the IAM lab:", err)
		os.Exit(1)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	var ready struct{ Endpoint string }
	if err != nil || json.Unmarshal([]byte(line), &ready) != nil || ready.Endpoint == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		fmt.Fprintf(os.Stderr, "the IAM lab did not start: %q %v\n%s\n", line, err, labLog.String())
		os.Exit(1)
	}
	labEndpoint = ready.Endpoint
	code := m.Run()
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
	}
	os.Exit(code)
}

// labPost sends a control request to the lab.
func labPost(t *testing.T, path, body string) {
	t.Helper()
	resp, err := http.Post(labEndpoint+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", path, resp.Status)
	}
}

type labStats struct{ Calls, Writes, Conflicts int }

func stats(t *testing.T) labStats {
	t.Helper()
	resp, err := http.Get(labEndpoint + "/_lab/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s labStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// iamCall sends one IAM Query API call (no SDK: the lab answers plain form posts) and
// turns a ConcurrentModification into a *writelane.Failure.
func iamCall(ctx context.Context, params map[string]string) error {
	form := []string{"Version=2010-05-08"}
	for k, v := range params {
		form = append(form, k+"="+urlEscape(v))
	}
	req, err := http.NewRequestWithContext(ctx, "POST", labEndpoint+"/", strings.NewReader(strings.Join(form, "&")))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
	switch {
	case resp.StatusCode == 409 && strings.Contains(body.String(), "ConcurrentModification"):
		return &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
	case resp.StatusCode >= 300:
		return fmt.Errorf("%s: %s", resp.Status, body.String())
	}
	return nil
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "=", "%3D", " ", "%20", "\"", "%22", "{", "%7B", "}", "%7D", ":", "%3A", ",", "%2C", "[", "%5B", "]", "%5D", "/", "%2F")
	return r.Replace(s)
}

const trust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// createRole creates the role unless it exists (from an earlier run against this lab).
func createRole(t *testing.T, name string) {
	t.Helper()
	err := iamCall(context.Background(), map[string]string{"Action": "CreateRole", "RoleName": name, "AssumeRolePolicyDocument": trust})
	if err != nil && !strings.Contains(err.Error(), "EntityAlreadyExists") {
		t.Fatal(err)
	}
}

func putPolicy(role, sid string) func(context.Context, writelane.Attempt) error {
	doc := `{"Version":"2012-10-17","Statement":[{"Sid":"` + sid + `","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`
	return func(ctx context.Context, _ writelane.Attempt) error {
		return iamCall(ctx, map[string]string{"Action": "PutRolePolicy", "RoleName": role, "PolicyName": sid, "PolicyDocument": doc})
	}
}

// sdk is a real MeterProvider and TracerProvider with in-memory read-out.
type sdk struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.InMemoryExporter
	mp     *sdkmetric.MeterProvider
	tp     *sdktrace.TracerProvider
}

func newSDK() *sdk {
	s := &sdk{reader: sdkmetric.NewManualReader(), spans: tracetest.NewInMemoryExporter()}
	s.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.spans))
	return s
}

func (s *sdk) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := s.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != wlotel.ScopeName || sm.Scope.Version != writelane.PackageVersion {
			t.Errorf("scope %+v", sm.Scope)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sum adds the data points of a counter whose attributes include every kv given.
func sum(t *testing.T, ms map[string]metricdata.Metrics, name string, kv ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		return 0
	}
	s, ok := m.Data.(metricdata.Sum[int64])
	if !ok || !s.IsMonotonic {
		t.Fatalf("%s is %T, want a monotonic int64 sum", name, m.Data)
	}
	var n int64
	for _, dp := range s.DataPoints {
		if has(dp.Attributes, kv...) {
			n += dp.Value
		}
	}
	return n
}

func has(set attribute.Set, kv ...attribute.KeyValue) bool {
	for _, want := range kv {
		if got, ok := set.Value(want.Key); !ok || got != want.Value {
			return false
		}
	}
	return true
}

func histCount(t *testing.T, ms map[string]metricdata.Metrics, name string) (count uint64, total float64) {
	t.Helper()
	h, ok := ms[name].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is %T, want a float64 histogram", name, ms[name].Data)
	}
	if ms[name].Unit != "s" {
		t.Errorf("%s unit %q", name, ms[name].Unit)
	}
	for _, dp := range h.DataPoints {
		count += dp.Count
		total += dp.Sum
	}
	return
}

func events(span tracetest.SpanStub, name string) []attribute.Set {
	var out []attribute.Set
	for _, ev := range span.Events {
		if ev.Name == name {
			out = append(out, attribute.NewSet(ev.Attributes...))
		}
	}
	return out
}

func attr(span tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	set := attribute.NewSet(span.Attributes...)
	return set.Value(key)
}

// A conflict storm on one role (the lab injects 6 ConcurrentModification replies into
// the writes of 4 goroutines x 3 runs through one lane, and the policy's spike threshold
// is 2): the counters match the lab's, a spike is raised, every run has its span with its
// attempts, conflicts and backoffs, and a span with the storm has the spike.
func TestConflictStormAgainstTheLab(t *testing.T) {
	s := newSDK()
	const role = "otel-storm"
	createRole(t, role)
	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 5, "cap_ms": 20}},
		"spike": {"threshold": 2, "window_ms": 60000, "cooldown_ms": 30}}`,
		writelane.WithObserver(wlotel.NewObserver(wlotel.WithMeterProvider(s.mp), wlotel.WithTracerProvider(s.tp))))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	labPost(t, "/_lab/reset", "{}")
	labPost(t, "/_lab/config", `{"inject_conflicts": 6}`)
	parent, root := s.tp.Tracer("test").Start(context.Background(), "deploy")
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				sid := fmt.Sprintf("G%dN%d", g, i)
				if err := lane.Run(parent, "role/"+role, putPolicy(role, sid)); err != nil {
					errs <- fmt.Errorf("%s: %w", sid, err)
				}
			}
		}(g)
	}
	wg.Wait()
	root.End()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	lab := stats(t)
	ms := s.metrics(t)
	if lab.Conflicts != 6 || lab.Writes != 12 {
		t.Fatalf("lab %+v, want 6 conflicts and 12 accepted writes", lab)
	}
	if got := sum(t, ms, "writelane.conflicts"); got != int64(lab.Conflicts) {
		t.Errorf("writelane.conflicts = %d, the lab refused %d", got, lab.Conflicts)
	}
	if got := sum(t, ms, "writelane.writes"); got != int64(lab.Writes+lab.Conflicts) {
		t.Errorf("writelane.writes = %d, the lab saw %d writes (%+v)", got, lab.Writes+lab.Conflicts, lab)
	}
	if got := sum(t, ms, "writelane.retries"); got != int64(lab.Conflicts) {
		t.Errorf("writelane.retries = %d, want one per conflict (%d)", got, lab.Conflicts)
	}
	if got := sum(t, ms, "writelane.spikes"); got < 1 {
		t.Errorf("writelane.spikes = %d, want a spike from the storm", got)
	}
	if got := sum(t, ms, "writelane.give_ups"); got != 0 {
		t.Errorf("writelane.give_ups = %d", got)
	}
	if n, _ := histCount(t, ms, "writelane.write.duration"); n != uint64(lab.Writes+lab.Conflicts) {
		t.Errorf("writelane.write.duration has %d values, want one per write (%d)", n, lab.Writes+lab.Conflicts)
	}
	if n, total := histCount(t, ms, "writelane.lane.wait.duration"); n != 12 || total <= 0 {
		t.Errorf("writelane.lane.wait.duration: %d values summing to %fs, want 12 (one per run), some waiting", n, total)
	}
	if g, ok := ms["writelane.budget.level"].Data.(metricdata.Gauge[int64]); !ok || len(g.DataPoints) != 1 || g.DataPoints[0].Value <= 0 {
		t.Errorf("writelane.budget.level: %+v", ms["writelane.budget.level"].Data)
	}
	for name, m := range ms {
		for _, kv := range attrsOf(m) {
			if strings.HasPrefix(string(kv.Key), "writelane.entity") {
				t.Errorf("%s carries %s by default", name, kv.Key)
			}
		}
	}

	var runs []tracetest.SpanStub
	for _, sp := range s.spans.GetSpans() {
		if sp.Name == "writelane.run" {
			runs = append(runs, sp)
		}
	}
	if len(runs) != 12 {
		t.Fatalf("%d writelane.run spans, want 12", len(runs))
	}
	var attempts, conflicts, backoffs, spikes int
	for _, sp := range runs {
		if sp.SpanKind != trace.SpanKindInternal || sp.Parent.SpanID() != root.SpanContext().SpanID() {
			t.Errorf("span kind %v, parent %v", sp.SpanKind, sp.Parent.SpanID())
		}
		if v, _ := attr(sp, "writelane.entity"); v.AsString() != "role/"+role {
			t.Errorf("span entity %q", v.AsString())
		}
		n, _ := attr(sp, "writelane.attempts")
		if got := len(events(sp, "writelane.attempt")); int64(got) != n.AsInt64() || got < 1 {
			t.Errorf("span: %d attempt events, writelane.attempts %d", got, n.AsInt64())
		}
		if sp.Status.Code == codes.Error {
			t.Errorf("span status %+v", sp.Status)
		}
		attempts += len(events(sp, "writelane.attempt"))
		conflicts += len(events(sp, "writelane.conflict"))
		for _, b := range events(sp, "writelane.backoff") {
			if d, ok := b.Value("writelane.backoff.delay_ms"); !ok || d.AsInt64() < 0 {
				t.Errorf("backoff event without its delay")
			}
			backoffs++
		}
		spikes += len(events(sp, "writelane.spike_started"))
	}
	if attempts != lab.Writes+lab.Conflicts || conflicts != lab.Conflicts || backoffs != lab.Conflicts {
		t.Errorf("span events: %d attempts, %d conflicts, %d backoffs; lab %+v", attempts, conflicts, backoffs, lab)
	}
	if spikes < 1 {
		t.Errorf("no span has writelane.spike_started")
	}
	t.Logf("lab %+v; spans: %d attempts, %d conflicts, %d backoffs, %d spike events", lab, attempts, conflicts, backoffs, spikes)
}

func attrsOf(m metricdata.Metrics) []attribute.KeyValue {
	var out []attribute.KeyValue
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes.ToSlice()...)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes.ToSlice()...)
		}
	}
	return out
}

// Conflicts past the attempt limit: the give-up is counted by reason and the span ends in
// error with the reason and the lane's error message.
func TestGiveUpIsTheSpansError(t *testing.T) {
	s := newSDK()
	const role = "otel-giveup"
	createRole(t, role)
	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 2, "max_attempts": 2}}}`,
		writelane.WithObserver(wlotel.NewObserver(wlotel.WithMeterProvider(s.mp), wlotel.WithTracerProvider(s.tp))))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	labPost(t, "/_lab/reset", "{}")
	labPost(t, "/_lab/config", `{"inject_conflicts": 5}`)
	err = lane.Run(context.Background(), "role/"+role, putPolicy(role, "GiveUp"))
	var gaveUp *writelane.GaveUpError
	if !errors.As(err, &gaveUp) || gaveUp.Reason != "attempts_exhausted" {
		t.Fatalf("got %v", err)
	}
	labPost(t, "/_lab/reset", "{}")
	ms := s.metrics(t)
	if got := sum(t, ms, "writelane.give_ups", attribute.String("error.type", "attempts_exhausted")); got != 1 {
		t.Errorf("writelane.give_ups{error.type=attempts_exhausted} = %d", got)
	}
	if got := sum(t, ms, "writelane.writes"); got != 2 {
		t.Errorf("writelane.writes = %d, want 2", got)
	}
	spans := s.spans.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	sp := spans[0]
	if sp.Status.Code != codes.Error || sp.Status.Description != err.Error() {
		t.Errorf("status %+v, want Error %q", sp.Status, err.Error())
	}
	if v, _ := attr(sp, "error.type"); v.AsString() != "attempts_exhausted" {
		t.Errorf("error.type %q", v.AsString())
	}
	if v, _ := attr(sp, "writelane.attempts"); v.AsInt64() != 2 {
		t.Errorf("writelane.attempts %d", v.AsInt64())
	}
}

// The entity on metrics: a hash (16 hex digits of SHA-256), or the name for entities on
// the allow-list. No lab needed: the write function says what happened.
func TestEntityAttributes(t *testing.T) {
	s := newSDK()
	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 1}}}`,
		writelane.WithObserver(wlotel.NewObserver(wlotel.WithMeterProvider(s.mp), wlotel.WithTracerProvider(s.tp),
			wlotel.WithEntityAttribute(wlotel.EntityHash), wlotel.WithEntityAllowList("role/named"))))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	for _, entity := range []string{"role/hashed", "role/named"} {
		first := true
		err := lane.Run(context.Background(), entity, func(context.Context, writelane.Attempt) error {
			if first {
				first = false
				return &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := wlotel.EntityHash16("role/hashed"); got != "c776664c699eeedd" { // printf role/hashed | sha256sum
		t.Fatalf("hash %q", got)
	}
	ms := s.metrics(t)
	hashed := attribute.String("writelane.entity.hash", wlotel.EntityHash16("role/hashed"))
	named := attribute.String("writelane.entity", "role/named")
	for _, name := range []string{"writelane.writes", "writelane.conflicts"} {
		want := int64(2)
		if name == "writelane.conflicts" {
			want = 1
		}
		if got := sum(t, ms, name, hashed); got != want {
			t.Errorf("%s{%v} = %d, want %d", name, hashed, got, want)
		}
		if got := sum(t, ms, name, named); got != want {
			t.Errorf("%s{%v} = %d, want %d", name, named, got, want)
		}
	}
}

// An Observer given to a second Lane says so through otel.Handle.
func TestOneObserverPerLane(t *testing.T) {
	var got []error
	var mu sync.Mutex
	otelapi.SetErrorHandler(otelapi.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}))
	s := newSDK()
	obs := wlotel.NewObserver(wlotel.WithMeterProvider(s.mp), wlotel.WithTracerProvider(s.tp))
	for i := 0; i < 2; i++ {
		lane, err := writelane.New(`"iam"`, writelane.WithObserver(obs))
		if err != nil {
			t.Fatal(err)
		}
		defer lane.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0].Error(), "serves one Lane") {
		t.Fatalf("errors handled: %v", got)
	}
}

// With a lease store the lane wait ends with the lease: one value per run, the second
// writer's covering the first one's hold.
func TestLeaseWaitWithAStore(t *testing.T) {
	s := newSDK()
	lane, err := writelane.New(`"iam"`, writelane.WithStore(writelane.NewMemoryStore()),
		writelane.WithObserver(wlotel.NewObserver(wlotel.WithMeterProvider(s.mp), wlotel.WithTracerProvider(s.tp))))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := lane.Run(context.Background(), "role/leased", func(context.Context, writelane.Attempt) error {
				time.Sleep(50 * time.Millisecond)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ms := s.metrics(t)
	h := ms["writelane.lane.wait.duration"].Data.(metricdata.Histogram[float64])
	if len(h.DataPoints) != 1 || h.DataPoints[0].Count != 2 {
		t.Fatalf("lane waits: %+v", h.DataPoints)
	}
	if max, ok := h.DataPoints[0].Max.Value(); !ok || max < 0.04 {
		t.Errorf("the second writer waited %vs, want about the first one's 50 ms hold", max)
	}
	if got := sum(t, ms, "writelane.writes"); got != 2 {
		t.Errorf("writelane.writes = %d", got)
	}
}

// Updates (group commit) have a span each; the writes counted are the write calls the
// batches made.
func TestUpdatesHaveSpans(t *testing.T) {
	s := newSDK()
	lane, err := writelane.New(`"iam"`,
		writelane.WithObserver(wlotel.NewObserver(wlotel.WithMeterProvider(s.mp), wlotel.WithTracerProvider(s.tp))))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	var mu sync.Mutex
	doc, writes := "", 0
	read := func(context.Context) (string, *string, error) {
		mu.Lock()
		defer mu.Unlock()
		return doc, nil, nil
	}
	write := func(_ context.Context, d string, _ writelane.Attempt) error {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		doc, writes = d, writes+1
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			change := func(d string) (string, error) { return d + fmt.Sprint(i), nil }
			if err := lane.Update(context.Background(), "role/batched", read, change, write); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if len(doc) != 4 {
		t.Fatalf("document %q, want the four changes", doc)
	}
	ms := s.metrics(t)
	if got := sum(t, ms, "writelane.writes"); got != int64(writes) {
		t.Errorf("writelane.writes = %d, the updates made %d write calls", got, writes)
	}
	var runs int
	for _, sp := range s.spans.GetSpans() {
		if sp.Name == "writelane.run" {
			runs++
			if v, _ := attr(sp, "writelane.entity"); v.AsString() != "role/batched" {
				t.Errorf("span entity %q", v.AsString())
			}
		}
	}
	if runs != 4 {
		t.Errorf("%d writelane.run spans, want one per update", runs)
	}
	t.Logf("4 updates in %d writes", writes)
}
