package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	writelane "github.com/writelane/writelane/go"
	"github.com/writelane/writelane/go/dynamodbstore"
)

// leasePolicy: shared lanes with timings short enough for a test.
const leasePolicy = `{"preset": "iam", "lanes": {"mode": "shared"},
 "lease": {"lease_ms": 1500, "renew_ms": 400, "lock_delay_ms": 200, "poll_ms": 50, "unavailable_ms": 3000, "max_write_ms": 500}}`

const leaseTable = "writelane-e2e-leases"

func dynamo(endpoint string) *dynamodb.Client {
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// iamAt is an IAM client of the lab at endpoint, without SDK retries (the lane retries).
func iamAt(endpoint string) *iam.Client {
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
		Retryer: func() aws.Retryer { return aws.NopRetryer{} },
	}
	return iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// appendStatement is one read-modify-write append of statement sid to role's inline
// policy, under the lane. hold, when set, is called once the lease is held, before the
// write reaches IAM.
func appendStatement(ctx context.Context, lane *writelane.Lane, c *iam.Client, role, sid string, hold func()) error {
	return lane.Run(ctx, "role/"+role, func(ctx context.Context, a writelane.Attempt) error {
		if hold != nil {
			hold()
		}
		doc, _, err := getPolicy(ctx, c, role)
		if err != nil {
			return err
		}
		doc.Statement = append(doc.Statement, map[string]any{
			"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/" + sid,
		})
		text, _ := json.Marshal(doc)
		_, err = c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
			RoleName: aws.String(role), PolicyName: aws.String("appends"), PolicyDocument: aws.String(string(text)),
		})
		if err == nil {
			if token, terr := writelane.PolicyToken(string(text)); terr == nil {
				a.SetToken(token)
			}
		}
		return err
	}, writelane.WithRead(func(ctx context.Context) (string, bool, error) {
		_, token, err := getPolicy(ctx, c, role)
		return token, token != "", err
	}), writelane.WithRunHolder(fmt.Sprintf("e2e pid %d %s", os.Getpid(), sid)))
}

// runHelper is a separate writer process: WRITELANE_E2E_HELPER is
// "appends:ROLE:N" (N appends), "updates:ROLE:N" (N goroutines x 5 Lane.Update appends) or "hang:ROLE:MARKER" (take the lease, create MARKER,
// then block inside the write until killed). The lab and the lease table come from
// WRITELANE_E2E_IAM and WRITELANE_E2E_DYNAMODB.
func runHelper(spec string) int {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 {
		fmt.Println("bad helper spec", spec)
		return 2
	}
	store := dynamodbstore.New(dynamo(os.Getenv("WRITELANE_E2E_DYNAMODB")), leaseTable)
	lane, err := writelane.New(leasePolicy, writelane.WithStore(store))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer lane.Close()
	c := iamAt(os.Getenv("WRITELANE_E2E_IAM"))
	role := parts[1]
	switch parts[0] {
	case "appends":
		n, _ := strconv.Atoi(parts[2])
		for i := 0; i < n; i++ {
			sid := fmt.Sprintf("P%dN%d", os.Getpid(), i)
			if err := appendStatement(context.Background(), lane, c, role, sid, nil); err != nil {
				fmt.Println(sid, err)
				return 1
			}
		}
		return 0
	case "updates": // N goroutines x 5 Lane.Update appends, batched in this process's queue
		n, _ := strconv.Atoi(parts[2])
		read, write := policyIO(c, role, "appends")
		errs := make(chan error, 5*n)
		var wg sync.WaitGroup
		for g := 0; g < n; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					st := statement(fmt.Sprintf("P%dG%dN%d", os.Getpid(), g, i))
					change := func(doc string) (string, error) { return writelane.PutStatement(doc, st) }
					if err := lane.Update(context.Background(), "role/"+role, read, change, write); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		code := 0
		for err := range errs {
			fmt.Println(err)
			code = 1
		}
		return code
	case "hang":
		err := appendStatement(context.Background(), lane, c, role, "Killed", func() {
			_ = os.WriteFile(parts[2], []byte("held"), 0o600)
			select {}
		})
		fmt.Println("the hanging writer returned:", err)
		return 1
	}
	fmt.Println("bad helper spec", spec)
	return 2
}

func helper(t *testing.T, spec string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "WRITELANE_E2E_HELPER="+spec, "WRITELANE_E2E_IAM="+lab.endpoint, "WRITELANE_E2E_DYNAMODB="+lab.moto)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

func leaseTableReady(t *testing.T) *dynamodbstore.Store {
	t.Helper()
	if lab.moto == "" {
		t.Fatal("the IAM lab did not report its moto endpoint")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dynamodbstore.CreateTable(ctx, dynamo(lab.moto), leaseTable); err != nil {
		t.Fatal(err)
	}
	return dynamodbstore.New(dynamo(lab.moto), leaseTable)
}

func statements(t *testing.T, role string) map[string]bool {
	t.Helper()
	doc, _, err := getPolicy(context.Background(), client(aws.NopRetryer{}), role)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, st := range doc.Statement {
		seen[fmt.Sprint(st["Sid"])] = true
	}
	if len(seen) != len(doc.Statement) {
		t.Fatalf("duplicate statements: %d for %d sids", len(doc.Statement), len(seen))
	}
	return seen
}

// 4 separate processes x 10 read-modify-write appends to one role's inline policy,
// through one DynamoDB lease table: no conflict reaches IAM and all 40 statements land.
func TestSharedLeaseAcrossProcesses(t *testing.T) {
	store := leaseTableReady(t)
	createRole(t, client(aws.NopRetryer{}), "shared")
	labPost(t, "/_lab/reset", "{}")
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < 4; i++ {
		cmd, out := helper(t, "appends:shared:10")
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process %d: %v\n%s", i, err, outs[i])
		}
	}
	s := stats(t)
	if s.Conflicts != 0 {
		t.Errorf("%d conflicts reached the lab", s.Conflicts)
	}
	if n := len(statements(t, "shared")); n != 40 {
		t.Fatalf("%d statements landed, want 40", n)
	}
	rec, err := store.Get(context.Background(), "role/shared")
	if err != nil || rec == nil || rec.Owner != "" || rec.CommittedToken == nil {
		t.Fatalf("lease record after the run: %+v %v", rec, err)
	}
	t.Logf("lab: %+v, lease epoch %d", s, rec.Epoch)
}

// 4 separate processes x 2 goroutines x 5 Lane.Update appends to one role's inline
// policy (one statement already there), through one DynamoDB lease table: each process
// batches its own queue under the shared lease, all 41 statements land and no conflict
// reaches IAM.
func TestSharedLeaseUpdatesAcrossProcesses(t *testing.T) {
	leaseTableReady(t)
	c := client(aws.NopRetryer{})
	createRole(t, c, "sharedbatch")
	initial, err := writelane.PutStatement("null", statement("Initial"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRolePolicy(context.Background(), &iam.PutRolePolicyInput{RoleName: aws.String("sharedbatch"),
		PolicyName: aws.String("appends"), PolicyDocument: aws.String(initial)}); err != nil {
		t.Fatal(err)
	}
	labPost(t, "/_lab/reset", "{}")
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < 4; i++ {
		cmd, out := helper(t, "updates:sharedbatch:2")
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process %d: %v\n%s", i, err, outs[i])
		}
	}
	s := stats(t)
	if s.Conflicts != 0 {
		t.Errorf("%d conflicts reached the lab", s.Conflicts)
	}
	seen := statements(t, "sharedbatch")
	if len(seen) != 41 || !seen["Initial"] {
		t.Fatalf("%d statements, want 41 with the initial one", len(seen))
	}
	if s.Writes >= 40 {
		t.Errorf("%d IAM writes for 40 updates: nothing was batched", s.Writes)
	}
	t.Logf("41/%d statements, lab: %d writes, %d conflicts", len(seen), s.Writes, s.Conflicts)
}

// kill -9 of the holder in the middle of its write: another writer takes the lease over
// once it has stood still for a whole lease, with the epoch bumped, and nothing
// committed before is lost.
func TestKilledHolderIsTakenOver(t *testing.T) {
	store := leaseTableReady(t)
	createRole(t, client(aws.NopRetryer{}), "killed")
	// One committed append first, by another process.
	first, out := helper(t, "appends:killed:1")
	if err := first.Wait(); err != nil {
		t.Fatalf("first writer: %v\n%s", err, out)
	}
	marker := filepath.Join(t.TempDir(), "held")
	holder, out := helper(t, "hang:killed:"+marker)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = holder.Process.Kill()
			t.Fatalf("the holder never took the lease\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	held, err := store.Get(context.Background(), "role/killed")
	if err != nil || held == nil || held.Owner == "" {
		t.Fatalf("record while held: %+v %v", held, err)
	}
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()

	lane, err := writelane.New(leasePolicy, writelane.WithStore(store), writelane.WithOwner("e2e-taker"))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	start := time.Now()
	if err := appendStatement(context.Background(), lane, client(aws.NopRetryer{}), "killed", "Taker", nil); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	if waited < 1500*time.Millisecond {
		t.Fatalf("took the lease over after %v, before a whole lease (1.5s) of silence", waited)
	}
	rec, err := store.Get(context.Background(), "role/killed")
	if err != nil || rec == nil || rec.Epoch != held.Epoch+1 || rec.Owner != "" {
		t.Fatalf("record after the takeover: %+v %v (held at epoch %d)", rec, err, held.Epoch)
	}
	seen := statements(t, "killed")
	if len(seen) != 2 || !seen["Taker"] || seen["Killed"] {
		t.Fatalf("statements after the takeover: %v, want the first writer's and Taker's", seen)
	}
	t.Logf("taken over after %v, epoch %d -> %d", waited.Round(time.Millisecond), held.Epoch, rec.Epoch)
}

// The store stopped: a writer waits unavailable_ms, then gives up with lock_unavailable,
// and never writes without a lease.
func TestStoreDownGivesUp(t *testing.T) {
	store := dynamodbstore.New(dynamo("http://127.0.0.1:1"), leaseTable)
	policy := strings.Replace(leasePolicy, `"unavailable_ms": 3000`, `"unavailable_ms": 500`, 1)
	lane, err := writelane.New(policy, writelane.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	labPost(t, "/_lab/reset", "{}")
	wrote := false
	err = lane.Run(context.Background(), "role/nowhere", func(context.Context, writelane.Attempt) error {
		wrote = true
		return nil
	})
	if !errors.Is(err, writelane.ErrLockUnavailable) || wrote {
		t.Fatalf("got %v (wrote %v), want lock_unavailable without a write", err, wrote)
	}
	if s := stats(t); s.Calls != 0 {
		t.Fatalf("IAM was called without a lease: %+v", s)
	}
}

// startMoto starts a moto server of the test's own on a free loopback port; stop kills it.
func startMoto(t *testing.T) (endpoint string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	python := os.Getenv("PYTHON")
	if python == "" {
		python = "python3"
	}
	cmd := exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(stop)
	endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(endpoint + "/moto-api/"); err == nil {
			resp.Body.Close()
			return endpoint, stop
		}
		select {
		case <-exited:
			t.Fatal("the moto server exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the moto server did not start")
		}
	}
}

// The store stops while one writer holds the lease (mid-write) and another waits: the
// holder's write, already under way, lands once; the waiter keeps trying for
// unavailable_ms and gives up with lock_unavailable without writing.
func TestStoreStoppedMidRun(t *testing.T) {
	endpoint, stop := startMoto(t)
	ctx := context.Background()
	if err := dynamodbstore.CreateTable(ctx, dynamo(endpoint), leaseTable); err != nil {
		t.Fatal(err)
	}
	policy := strings.Replace(leasePolicy, `"unavailable_ms": 3000`, `"unavailable_ms": 1000`, 1)
	lane := func(owner string) *writelane.Lane {
		l, err := writelane.New(policy, writelane.WithOwner(owner),
			writelane.WithStore(dynamodbstore.New(dynamo(endpoint), leaseTable)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	holder, waiter := lane("holder"), lane("waiter")
	c := client(aws.NopRetryer{})
	createRole(t, c, "stopped")
	labPost(t, "/_lab/reset", "{}")
	holding, proceed := make(chan struct{}), make(chan struct{})
	holderDone := make(chan error, 1)
	go func() {
		holderDone <- appendStatement(ctx, holder, c, "stopped", "Holder", func() {
			close(holding)
			<-proceed
		})
	}()
	<-holding
	waiterDone := make(chan error, 1)
	waiterWrote := false
	go func() {
		waiterDone <- waiter.Run(ctx, "role/stopped", func(context.Context, writelane.Attempt) error {
			waiterWrote = true
			return nil
		})
	}()
	time.Sleep(200 * time.Millisecond) // the waiter is polling the held record
	stop()
	close(proceed)
	holderErr := <-holderDone
	waiterErr := <-waiterDone
	if !errors.Is(waiterErr, writelane.ErrLockUnavailable) || waiterWrote {
		t.Fatalf("waiter: %v (wrote %v), want lock_unavailable without a write", waiterErr, waiterWrote)
	}
	// The holder's write landed before the store went away: it reports the commit (its
	// release could not reach the store; the lease expires on its own).
	if holderErr != nil {
		t.Fatalf("holder: %v", holderErr)
	}
	s := stats(t)
	if s.Writes != 1 || s.Conflicts != 0 {
		t.Fatalf("lab: %+v, want the holder's one write", s)
	}
	if seen := statements(t, "stopped"); len(seen) != 1 || !seen["Holder"] {
		t.Fatalf("statements: %v", seen)
	}
	t.Logf("holder: %v; waiter: %v", holderErr, waiterErr)
}

// The Go laneworker command (the protocol of the Python binding's laneworker.py, for
// mixed-language runs): 4 processes x 10 appends through the DynamoDB lease table, no
// conflict, 40 statements, and 40 distinct fences (every holding bumps the epoch).
func TestLaneworkerProcesses(t *testing.T) {
	leaseTableReady(t)
	bin := filepath.Join(t.TempDir(), "laneworker")
	build := exec.Command("go", "build", "-o", bin, "./laneworker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	createRole(t, client(aws.NopRetryer{}), "workers")
	labPost(t, "/_lab/reset", "{}")
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < 4; i++ {
		cfg, _ := json.Marshal(map[string]any{
			"endpoint": lab.endpoint, "role": "workers", "id": fmt.Sprintf("go%d", i), "count": 10,
			"spec":   map[string]any{"kind": "dynamodb", "endpoint": lab.moto, "table": leaseTable},
			"policy": json.RawMessage(`{"lease": {"lease_ms": 1500, "renew_ms": 500, "lock_delay_ms": 200, "poll_ms": 20, "unavailable_ms": 1500, "max_write_ms": 300}}`),
			"start":  float64(time.Now().Add(500*time.Millisecond).UnixNano()) / 1e9,
		})
		cmd := exec.Command(bin, string(cfg))
		out := &strings.Builder{}
		cmd.Stdout = out
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	fences := map[float64]bool{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("laneworker %d: %v\n%s", i, err, outs[i])
		}
		lines := strings.Split(strings.TrimSpace(outs[i].String()), "\n")
		if len(lines) != 11 {
			t.Fatalf("laneworker %d printed %d lines:\n%s", i, len(lines), outs[i])
		}
		for _, line := range lines[:10] {
			var r struct {
				OK    bool    `json:"ok"`
				Fence float64 `json:"fence"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil || !r.OK || r.Fence < 1 {
				t.Fatalf("laneworker %d: %s", i, line)
			}
			fences[r.Fence] = true
		}
		var done struct {
			Done   bool            `json:"done"`
			Fences []float64       `json:"fences"`
			Stats  map[string]uint `json:"stats"`
		}
		if err := json.Unmarshal([]byte(lines[10]), &done); err != nil || !done.Done || len(done.Fences) != 10 || done.Stats["committed"] != 10 {
			t.Fatalf("laneworker %d summary: %s", i, lines[10])
		}
	}
	if len(fences) != 40 {
		t.Fatalf("%d distinct fences over 40 writes, want 40", len(fences))
	}
	if s := stats(t); s.Conflicts != 0 {
		t.Fatalf("%d conflicts reached the lab", s.Conflicts)
	}
	seen := map[string]bool{}
	out, err := client(aws.NopRetryer{}).GetRolePolicy(context.Background(), &iam.GetRolePolicyInput{RoleName: aws.String("workers"), PolicyName: aws.String("appended")})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := url.QueryUnescape(aws.ToString(out.PolicyDocument))
	var appended policyDoc
	if err := json.Unmarshal([]byte(text), &appended); err != nil {
		t.Fatal(err)
	}
	for _, st := range appended.Statement {
		seen[fmt.Sprint(st["Sid"])] = true
	}
	if len(appended.Statement) != 40 || len(seen) != 40 {
		t.Fatalf("%d statements (%d distinct), want 40", len(appended.Statement), len(seen))
	}
}
