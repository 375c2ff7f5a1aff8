package writelane_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	writelane "github.com/writelane/writelane/go"
	"github.com/writelane/writelane/go/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	shared := writelane.NewMemoryStore()
	storetest.Run(t, storetest.Harness{
		Open: func(*testing.T) writelane.Store { return shared },
		Unreachable: func(*testing.T) writelane.Store {
			s := writelane.NewMemoryStore()
			_ = s.Close()
			return s
		},
	})
}

func TestFileStoreConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	storetest.Run(t, storetest.Harness{
		// A new handle per call: each takes its own flock, like another process would.
		Open: func(*testing.T) writelane.Store { return writelane.NewFileStore(path) },
		Unreachable: func(t *testing.T) writelane.Store {
			gone := filepath.Join(t.TempDir(), "removed")
			if err := os.Mkdir(gone, 0o700); err != nil {
				t.Fatal(err)
			}
			s := writelane.NewFileStore(filepath.Join(gone, "leases.json"))
			if err := os.Remove(gone); err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

// TestFileStoreProcesses races compare-and-swap from separate processes (this test
// binary re-run as a helper) on one file: exactly one wins and the file stays valid.
func TestFileStoreProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	s := writelane.NewFileStore(path)
	base := writelane.LeaseRecord{Epoch: 1, Rvn: 100, LeaseMs: 10000}
	if ok, _, err := s.PutIfAbsent(context.Background(), "role/app", base); !ok || err != nil {
		t.Fatalf("seed: %v %v", ok, err)
	}
	const n = 8
	cmds := make([]*exec.Cmd, n)
	outs := make([]*strings.Builder, n)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0])
		cmds[i].Env = append(os.Environ(), "WRITELANE_FILESTORE_HELPER="+path, "WRITELANE_FILESTORE_WRITER="+strconv.Itoa(i))
		outs[i] = &strings.Builder{}
		cmds[i].Stdout = outs[i]
		cmds[i].Stderr = outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	wins := 0
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("writer %d: %v\n%s", i, err, outs[i])
		}
		switch {
		case strings.Contains(outs[i].String(), `REPLY {"reply":"done"}`):
			wins++
		case strings.Contains(outs[i].String(), `REPLY {"reply":"refused"`):
		default:
			t.Fatalf("writer %d: %s", i, outs[i])
		}
	}
	if wins != 1 {
		t.Fatalf("%d processes won the same compare-and-swap, want 1", wins)
	}
	rec, err := s.Get(context.Background(), "role/app")
	if err != nil || rec == nil || rec.Epoch != 2 || rec.Rvn < 1000 {
		t.Fatalf("after the race: %+v %v", rec, err)
	}
}

// TestMain runs the helpers of TestFileStoreProcesses and TestSharedLanesAcrossProcesses
// when this binary is started as one.
func TestMain(m *testing.M) {
	if path := os.Getenv("WRITELANE_FILESTORE_HELPER"); path != "" {
		i, _ := strconv.Atoi(os.Getenv("WRITELANE_FILESTORE_WRITER"))
		op := fmt.Sprintf(`{"op":"compare_and_swap","key":"role/app","expected_rvn":100,"record":{"owner":"p%d","epoch":2,"rvn":%d,"lease_ms":10000,"committed_token":null,"holder":null}}`, i, 1000+i)
		reply, err := writelane.ApplyStoreJSON(context.Background(), writelane.NewFileStore(path), op)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("REPLY", reply)
		os.Exit(0)
	}
	if dir := os.Getenv("WRITELANE_LANE_HELPER"); dir != "" {
		if err := laneHelper(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFileStoreCorruptFileIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	reply, err := writelane.ApplyStoreJSON(context.Background(), writelane.NewFileStore(path), `{"op":"get","key":"k"}`)
	if err != nil || reply != `{"reply":"unavailable"}` {
		t.Fatalf("got %s %v", reply, err)
	}
}

func TestFileStoreMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	s := writelane.NewFileStoreMode(path, 0o640)
	if ok, _, err := s.PutIfAbsent(context.Background(), "k", writelane.LeaseRecord{Rvn: 1}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
}

func TestApplyStoreJSONRefusesMalformedOperations(t *testing.T) {
	s := writelane.NewMemoryStore()
	for _, c := range []struct{ op, field string }{
		{`{"op":"delete","key":"k"}`, "op"},
		{`{"op":"get"}`, "key"},
		{`{"op":"get","key":"k","extra":1}`, "extra"},
		{`{"op":"put_if_absent","key":"k"}`, "record"},
		{`{"op":"compare_and_swap","key":"k","record":{"owner":"","epoch":1,"rvn":1,"lease_ms":1,"committed_token":null,"holder":null}}`, "expected_rvn"},
		{`{"op":"put_if_absent","key":"k","record":{"owner":"","epoch":-1,"rvn":1,"lease_ms":1,"committed_token":null,"holder":null}}`, "record.epoch"},
		{`{"op":"put_if_absent","key":"k","record":{"owner":"","epoch":1,"rvn":1,"lease_ms":1,"committed_token":null,"holder":null,"x":2}}`, "x"},
		{`not json`, "$"},
		{`{"op":"get","key":"k"} {}`, "$"},
	} {
		_, err := writelane.ApplyStoreJSON(context.Background(), s, c.op)
		var opErr *writelane.StoreOpError
		if !errors.As(err, &opErr) || opErr.Field != c.field {
			t.Errorf("%s: got %v, want a StoreOpError on %q", c.op, err, c.field)
		}
	}
}

// failing is an adapter whose every call fails with err.
type failing struct{ err error }

func (f failing) Get(context.Context, string) (*writelane.LeaseRecord, error) { return nil, f.err }
func (f failing) PutIfAbsent(context.Context, string, writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return false, nil, f.err
}
func (f failing) CompareAndSwap(context.Context, string, uint64, writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return false, nil, f.err
}

func TestApplyStoreOpMapsAdapterErrors(t *testing.T) {
	rec := writelane.LeaseRecord{Rvn: 1}
	rvn := uint64(1)
	get := writelane.StoreOp{Op: "get", Key: "k"}
	put := writelane.StoreOp{Op: "put_if_absent", Key: "k", Record: &rec}
	cas := writelane.StoreOp{Op: "compare_and_swap", Key: "k", ExpectedRvn: &rvn, Record: &rec}
	plain := errors.New("connection reset")
	for _, c := range []struct {
		err  error
		op   writelane.StoreOp
		want string
	}{
		{fmt.Errorf("dial: %w", writelane.ErrStoreUnavailable), put, "unavailable"},
		{fmt.Errorf("timeout: %w", writelane.ErrStoreLost), get, "lost"},
		{fmt.Errorf("timeout: %w", writelane.ErrStoreLost), cas, "lost"},
		{plain, get, "unavailable"}, // nothing was changed by a read
		{plain, put, "lost"},        // a write's fate is unknown: the engine reads back
		{plain, cas, "lost"},
	} {
		r := writelane.ApplyStoreOp(context.Background(), failing{c.err}, c.op)
		if r.Reply != c.want || !errors.Is(r.Err, c.err) {
			t.Errorf("%s with %v: got %s (%v), want %s", c.op.Op, c.err, r.Reply, r.Err, c.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := writelane.ApplyStoreOp(ctx, writelane.NewMemoryStore(), put); r.Reply != "unavailable" {
		t.Errorf("a cancelled context: %s, want unavailable (nothing sent)", r.Reply)
	}
}

func TestStoreReplyJSON(t *testing.T) {
	for _, text := range []string{
		`{"reply":"found","record":null}`,
		`{"reply":"found","record":{"owner":"o","epoch":1,"rvn":2,"lease_ms":3,"committed_token":"t","holder":null}}`,
		`{"reply":"done"}`,
		`{"reply":"refused","current":null}`,
		`{"reply":"lost"}`,
		`{"reply":"unavailable"}`,
	} {
		var r writelane.StoreReply
		if err := json.Unmarshal([]byte(text), &r); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		b, err := json.Marshal(r)
		if err != nil || string(b) != text {
			t.Errorf("round trip of %s gave %s %v", text, b, err)
		}
	}
	var r writelane.StoreReply
	if err := json.Unmarshal([]byte(`{"reply":"maybe"}`), &r); err == nil {
		t.Error("an unknown reply was accepted")
	}
}
