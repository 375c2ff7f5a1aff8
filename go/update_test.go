package writelane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// policyStore is an in-memory role policy with a counted, slow write.
type policyStore struct {
	mu      sync.Mutex
	doc     string
	version int
	writes  int
	reads   int
	limit   int // statements; 0: none
	delay   time.Duration
}

func (s *policyStore) read(ctx context.Context) (string, *string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	tok := fmt.Sprintf("v%d", s.version)
	return s.doc, &tok, nil
}

func (s *policyStore) write(ctx context.Context, doc string, a Attempt) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.limit > 0 && len(statementsOf(doc)) > s.limit {
		return &Failure{Code: "LimitExceeded", HTTPStatus: 409}
	}
	s.doc = doc
	s.version++
	a.SetToken(fmt.Sprintf("v%d", s.version))
	return nil
}

func statementsOf(doc string) []map[string]any {
	var d struct{ Statement []map[string]any }
	_ = json.Unmarshal([]byte(doc), &d)
	return d.Statement
}

func appendStatement(sid string) func(string) (string, error) {
	st := fmt.Sprintf(`{"Sid":%q,"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}`, sid)
	return func(doc string) (string, error) { return PutStatement(doc, st) }
}

// 8 goroutines x 5 appends on one document: every statement lands, in far fewer writes
// than updates, and every update commits.
func TestUpdateBatchesConcurrentAppends(t *testing.T) {
	lane, err := New(`"iam"`, WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	s := &policyStore{doc: "null", delay: 5 * time.Millisecond}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 5; k++ {
				if err := lane.Update(context.Background(), "role/app", s.read, appendStatement(fmt.Sprintf("S%d_%d", g, k)), s.write); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(statementsOf(s.doc)); n != 40 {
		t.Fatalf("%d statements, want 40", n)
	}
	if s.writes >= 40 {
		t.Errorf("%d writes for 40 updates: nothing was batched", s.writes)
	}
	stats, _ := lane.Engine().StatsJSON()
	if !strings.Contains(stats, `"conflicts":0`) {
		t.Errorf("conflicts in %s", stats)
	}
	t.Logf("40 updates in %d writes and %d reads", s.writes, s.reads)
}

type valueError struct{ msg string }

func (e *valueError) Error() string     { return e.msg }
func (e *valueError) ErrorCode() string { return "ValueError" }

// A refused change and a panicking one fail only their own update, with their own
// error; the others of the batch commit.
func TestUpdateRefusedChangeFailsOnlyItsUpdate(t *testing.T) {
	lane, err := New(`"iam"`, WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	s := &policyStore{doc: "null", delay: 20 * time.Millisecond}
	refusal := &valueError{"no such principal"}
	changes := []func(string) (string, error){
		appendStatement("A"),
		func(string) (string, error) { return "", refusal },
		func(string) (string, error) { panic("boom") },
		func(string) (string, error) { return "", errors.New("plain") },
		appendStatement("B"),
	}
	errs := make([]error, len(changes))
	var wg sync.WaitGroup
	for i, ch := range changes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = lane.Update(context.Background(), "role/app", s.read, ch, s.write)
		}()
		time.Sleep(2 * time.Millisecond) // FIFO order
	}
	wg.Wait()
	if errs[0] != nil || errs[4] != nil {
		t.Fatalf("the good changes failed: %v, %v", errs[0], errs[4])
	}
	for i, code := range map[int]string{1: "ValueError", 2: "ChangePanicked", 3: "ChangeRefused"} {
		var gu *GaveUpError
		if !errors.As(errs[i], &gu) || gu.Reason != "fatal" || gu.Code != code {
			t.Errorf("update %d: %v, want fatal %s", i, errs[i], code)
		}
	}
	if !errors.Is(errs[1], refusal) {
		t.Errorf("the refused update's error %v does not wrap its change's", errs[1])
	}
	var cp *ChangePanic
	if !errors.As(errs[2], &cp) || cp.Value != "boom" {
		t.Errorf("the panicking change's error: %v", errs[2])
	}
	if got := len(statementsOf(s.doc)); got != 2 {
		t.Errorf("%d statements, want 2: %s", got, s.doc)
	}
}

// A write refused as fatal is split until only the change that breaks it fails.
func TestUpdateFatalWriteFailsOnlyTheChangeThatBreaksIt(t *testing.T) {
	lane, err := New(`"iam"`, WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	s := &policyStore{doc: "null", limit: 3, delay: 10 * time.Millisecond}
	errs := make([]error, 5)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = lane.Update(context.Background(), "role/app", s.read, appendStatement(fmt.Sprintf("S%d", i)), s.write)
		}()
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		var gu *GaveUpError
		var f *Failure
		if errors.As(err, &gu) && gu.Code == "LimitExceeded" {
			failed++
			if !errors.As(err, &f) || f.Code != "LimitExceeded" {
				t.Errorf("an update dropped by the split write: %v does not wrap the write's error", err)
			}
		} else if err != nil {
			t.Errorf("unexpected error %v", err)
		}
	}
	if failed != 2 || len(statementsOf(s.doc)) != 3 {
		t.Errorf("%d failed, %d statements: want 2 and 3", failed, len(statementsOf(s.doc)))
	}
}

func TestUpdateRefusesWhatDoesNotApply(t *testing.T) {
	lane, err := New(`"iam"`)
	if err != nil {
		t.Fatal(err)
	}
	s := &policyStore{doc: "null"}
	var se *StatusError
	err = lane.Update(context.Background(), "role/app", s.read, appendStatement("A"), s.write, WithExpected("v1"))
	if !errors.As(err, &se) || se.Status != StatusInvalidArgument {
		t.Errorf("WithExpected: %v", err)
	}
	err = lane.Update(context.Background(), "role/app", nil, appendStatement("A"), s.write)
	if !errors.As(err, &se) {
		t.Errorf("no read: %v", err)
	}
	var ue *UsageError
	if err := lane.Update(context.Background(), "", s.read, appendStatement("A"), s.write); !errors.As(err, &ue) || ue.Kind != "invalid_entity" {
		t.Errorf("empty entity: %v", err)
	}
	lane.Close()
	if err := lane.Update(context.Background(), "role/app", s.read, appendStatement("A"), s.write); !errors.Is(err, ErrClosed) {
		t.Errorf("closed lane: %v", err)
	}
}

// The engine's apply step through the public Engine API: PollAction hands it out,
// PollCommand does not, and wrong answers are usage errors.
func TestEngineApplyStep(t *testing.T) {
	e, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, _ := e.SubmitUpdate("role/app", 0, UpdateOptions{})
	c, err := e.PollAction()
	if err != nil || c == nil || c.Kind != CommandRead || c.Op != a {
		t.Fatalf("first action %+v %v", c, err)
	}
	holder := "worker 2"
	b, err := e.SubmitUpdate("role/app", 1, UpdateOptions{Holder: &holder})
	if err != nil {
		t.Fatal(err)
	}
	tok := "v0"
	if err := e.Handle(2, Input{Kind: ReadDone, Op: a, Token: &tok}); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.PollCommandFor(a); c != nil {
		t.Fatalf("PollCommandFor handed out %+v", c)
	}
	c, err = e.PollActionFor(a)
	if err != nil || c == nil || c.Kind != CommandApply || c.Apply == nil || c.Apply.Op != a ||
		len(c.Apply.Ops) != 2 || c.Apply.Ops[0] != a || c.Apply.Ops[1] != b {
		t.Fatalf("apply %+v %v", c, err)
	}
	var ue *UsageError
	wrong := []ApplyResult{{Op: b, Applied: true}, {Op: a, Applied: true}}
	if err := e.Handle(3, Input{Kind: InputApplyDone, Op: a, Results: wrong}); !errors.As(err, &ue) || ue.Kind != "unexpected_input" {
		t.Fatalf("results out of order: %v", err)
	}
	long := strings.Repeat("X", 300)
	bad := []ApplyResult{{Op: a, Applied: true}, {Op: b, Code: &long}}
	if err := e.Handle(3, Input{Kind: InputApplyDone, Op: a, Results: bad}); !errors.As(err, &ue) || ue.Kind != "invalid_code" {
		t.Fatalf("long code: %v", err)
	}
	code := "ValueError"
	if err := e.Handle(3, Input{Kind: InputApplyDone, Op: a, Results: []ApplyResult{{Op: a, Applied: true}, {Op: b, Code: &code}}}); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]*Outcome{}
	for i := 0; i < 10; i++ {
		c, err := e.PollAction()
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			break
		}
		switch c.Kind {
		case CommandWrite:
			v1 := "v1"
			if err := e.Handle(4, Input{Kind: WriteDone, Op: c.Op, Token: &v1}); err != nil {
				t.Fatal(err)
			}
		case CommandFinish:
			seen[c.Op] = c.Outcome
		}
	}
	if o := seen[a]; o == nil || !o.Committed {
		t.Errorf("leader: %+v", o)
	}
	if o := seen[b]; o == nil || o.Reason != "fatal" || o.Code == nil || *o.Code != "ValueError" {
		t.Errorf("refused member: %+v", o)
	}
}

func TestIAMHelpers(t *testing.T) {
	doc, err := PutStatement("null", `{"Sid":"A","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Statement":[{"Action":"s3:GetObject","Effect":"Allow","Resource":"*","Sid":"A"}],"Version":"2012-10-17"}`; doc != want {
		t.Fatalf("PutStatement: %s", doc)
	}
	again, err := PutStatement(doc, `{"Sid":"A","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}`)
	if err != nil || again != doc {
		t.Fatalf("not idempotent: %s %v", again, err)
	}
	doc, _ = PutStatement(doc, `{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"}`)
	doc, err = RemoveStatement(doc, "A")
	if err != nil || len(statementsOf(doc)) != 1 || statementsOf(doc)[0]["Sid"] != "B" {
		t.Fatalf("RemoveStatement: %s %v", doc, err)
	}
	trust, err := AddTrustPrincipal("null", "Trust", "Service", "lambda.amazonaws.com")
	if err == nil {
		trust, err = AddTrustPrincipal(trust, "Trust", "Service", "ec2.amazonaws.com")
	}
	if err != nil || !strings.Contains(trust, `["lambda.amazonaws.com","ec2.amazonaws.com"]`) {
		t.Fatalf("AddTrustPrincipal: %s %v", trust, err)
	}
	tags, err := SetTags("null", Tag{"team", "a"}, Tag{"env", "prod"})
	if err == nil {
		tags, err = SetTags(tags, Tag{"team", "b"})
	}
	if want := `[{"Key":"team","Value":"b"},{"Key":"env","Value":"prod"}]`; err != nil || tags != want {
		t.Fatalf("SetTags: %s %v", tags, err)
	}
	for _, c := range []struct {
		err  error
		path string
	}{
		{second(PutStatement(`{"Statement":`, `{"Sid":"A"}`)), "document"},
		{second(PutStatement("null", `{"Effect":"Allow"}`)), "statement.Sid"},
		{second(PutStatement(`{"Statement":[1]}`, `{"Sid":"A"}`)), "Statement[0]"},
		{second(AddTrustPrincipal("null", "T", "Root", "x")), "kind"},
		{second(SetTags(`[{"Value":"x"}]`)), "[0].Key"},
		{second(SetTags("null", Tag{"", "x"})), "key"},
	} {
		var de *DocumentError
		if !errors.As(c.err, &de) || de.Path != c.path {
			t.Errorf("error %v, want a *DocumentError at %s", c.err, c.path)
		}
	}
}

func second(_ string, err error) error { return err }
