package e2e

// The lane middleware of go/awsv2 with the real SDK against the IAM lab: plain SDK calls,
// no lane.Run at the call sites.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	writelane "github.com/writelane/writelane/go"
	"github.com/writelane/writelane/go/awsv2"
	"github.com/writelane/writelane/go/dynamodbstore"
)

// A writer process of TestMiddlewareSharedLeaseAcrossProcesses, started with
// WRITELANE_E2E_MW_HELPER=ROLE:GOROUTINES:CALLS (before TestMain starts a lab of its own).
func init() {
	if spec := os.Getenv("WRITELANE_E2E_MW_HELPER"); spec != "" {
		os.Exit(runMiddlewareHelper(spec))
	}
}

func runMiddlewareHelper(spec string) int {
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		fmt.Println("bad helper spec", spec)
		return 2
	}
	goroutines, _ := strconv.Atoi(parts[1])
	calls, _ := strconv.Atoi(parts[2])
	store := dynamodbstore.New(dynamo(os.Getenv("WRITELANE_E2E_DYNAMODB")), leaseTable)
	lane, err := writelane.New(leasePolicy, writelane.WithStore(store))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer lane.Close()
	c := mwClient(os.Getenv("WRITELANE_E2E_IAM"), awsv2.WithLanes(lane))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if err := putPolicy(context.Background(), c, parts[0], fmt.Sprintf("P%dG%dN%d", os.Getpid(), g, i)); err != nil {
					fmt.Println(err)
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		return 1
	}
	return 0
}

// mwClient is an IAM client of the lab with the SDK's default retryer (which does not
// retry ConcurrentModification).
func mwClient(endpoint string, opts ...func(*iam.Options)) *iam.Client {
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
	}
	return iam.NewFromConfig(cfg, append([]func(*iam.Options){func(o *iam.Options) { o.BaseEndpoint = aws.String(endpoint) }}, opts...)...)
}

// putPolicy is a plain PutRolePolicy of inline policy name on role.
func putPolicy(ctx context.Context, c *iam.Client, role, name string) error {
	_, err := c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)})
	return err
}

// concurrently runs n goroutines of f at once; the number that failed.
func concurrently(n int, f func(i int) error) (failures int64, first error) {
	var wg sync.WaitGroup
	var failed atomic.Int64
	var once sync.Once
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := f(i); err != nil {
				failed.Add(1)
				once.Do(func() { first = err })
			}
		}()
	}
	close(start)
	wg.Wait()
	return failed.Load(), first
}

// 8 goroutines of plain PutRolePolicy on one role through a client with the middleware:
// no conflict reaches the lab and every call succeeds. The same calls through the bare
// client collide (so the test can fail).
func TestMiddlewareSerialisesPlainCalls(t *testing.T) {
	lane, err := writelane.New(`"iam"`)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	lanes := awsv2.New(lane)
	bare, wrapped := mwClient(lab.endpoint), mwClient(lab.endpoint, lanes.WithLanes())
	createRole(t, bare, "mw-plain")
	for _, run := range []struct {
		name string
		c    *iam.Client
	}{{"bare", bare}, {"middleware", wrapped}} {
		labPost(t, "/_lab/reset", "{}")
		failures, first := concurrently(8, func(i int) error {
			return putPolicy(context.Background(), run.c, "mw-plain", fmt.Sprintf("p%d", i))
		})
		s := stats(t)
		t.Logf("%s: 8 PutRolePolicy: %d failures, lab %+v", run.name, failures, s)
		if run.name == "bare" {
			if s.Conflicts == 0 {
				t.Fatal("the bare client met no conflict: this test proves nothing")
			}
			continue
		}
		if failures != 0 || s.Conflicts != 0 || s.Writes != 8 {
			t.Fatalf("with the middleware: %d failures (%v), %d conflicts, %d writes; want 0, 0, 8", failures, first, s.Conflicts, s.Writes)
		}
	}
	if st := lanes.Stats(); st.Serialised != 8 || st.Unserialised != 0 {
		t.Fatalf("middleware stats %+v", st)
	}
}

// 4 processes x 2 goroutines x 5 plain PutRolePolicy calls on one role, each process with
// its own lane on one DynamoDB lease table (moto): no conflict reaches the lab.
func TestMiddlewareSharedLeaseAcrossProcesses(t *testing.T) {
	store := leaseTableReady(t)
	createRole(t, client(aws.NopRetryer{}), "mw-shared")
	labPost(t, "/_lab/reset", "{}")
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range 4 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "WRITELANE_E2E_MW_HELPER=mw-shared:2:5", "WRITELANE_E2E_IAM="+lab.endpoint, "WRITELANE_E2E_DYNAMODB="+lab.moto)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process %d: %v\n%s", i, err, outs[i])
		}
	}
	s := stats(t)
	t.Logf("4 processes x 2 goroutines x 5 PutRolePolicy: lab %+v", s)
	if s.Conflicts != 0 || s.Writes != 40 {
		t.Fatalf("%d conflicts, %d writes at the lab; want 0 and 40", s.Conflicts, s.Writes)
	}
	rec, err := store.Get(context.Background(), "role/mw-shared")
	if err != nil || rec == nil || rec.Owner != "" {
		t.Fatalf("lease record after the run: %+v %v", rec, err)
	}
}

// AddUserToGroup (lanes group/G and user/U) against concurrent PutUserPolicy (user/U):
// serialised on the user, so none conflicts at the lab (which holds AddUserToGroup on the
// user). The bare client's calls collide.
func TestMiddlewareTwoEntityOperationSerialised(t *testing.T) {
	lane, err := writelane.New(`"iam"`)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	bare, wrapped := mwClient(lab.endpoint), mwClient(lab.endpoint, awsv2.WithLanes(lane))
	ctx := context.Background()
	if _, err := bare.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("mw-user")}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := bare.CreateGroup(ctx, &iam.CreateGroupInput{GroupName: aws.String(fmt.Sprintf("mw-group%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, run := range []struct {
		name string
		c    *iam.Client
	}{{"bare", bare}, {"middleware", wrapped}} {
		labPost(t, "/_lab/reset", "{}")
		failures, first := concurrently(8, func(i int) error {
			if i%2 == 0 {
				_, err := run.c.AddUserToGroup(ctx, &iam.AddUserToGroupInput{UserName: aws.String("mw-user"), GroupName: aws.String(fmt.Sprintf("mw-group%d", i/2))})
				return err
			}
			_, err := run.c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("mw-user"), PolicyName: aws.String(fmt.Sprintf("p%d", i)),
				PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)})
			return err
		})
		s := stats(t)
		t.Logf("%s: 4 AddUserToGroup + 4 PutUserPolicy: %d failures, lab %+v", run.name, failures, s)
		if run.name == "bare" {
			if s.Conflicts == 0 {
				t.Fatal("the bare client met no conflict: this test proves nothing")
			}
			continue
		}
		if failures != 0 || s.Conflicts != 0 || s.Writes != 8 {
			t.Fatalf("with the middleware: %d failures (%v), %d conflicts, %d writes; want 0, 0, 8", failures, first, s.Conflicts, s.Writes)
		}
	}
	groups, err := bare.ListGroupsForUser(ctx, &iam.ListGroupsForUserInput{UserName: aws.String("mw-user")})
	if err != nil || len(groups.Groups) != 4 {
		t.Fatalf("groups of mw-user: %v %v", groups, err)
	}
}

// Reads, calls to another service (DynamoDB, on the same aws.Config with the middleware
// in its APIOptions) and an operation newer than the table: no lane events. The unknown
// operation is counted.
func TestMiddlewareLeavesReadsAndOtherServicesAlone(t *testing.T) {
	var events atomic.Int64
	lane, err := writelane.New(`"iam"`, writelane.WithEvents(func(string) { events.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	lanes := awsv2.New(lane)
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
	}
	cfg.APIOptions = append(cfg.APIOptions, lanes.APIOption())
	ic := iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(lab.endpoint) })
	dc := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(lab.moto) })
	ctx := context.Background()
	createRole(t, client(nil), "mw-reads")
	if _, err := ic.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("mw-reads")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.ListRoles(ctx, &iam.ListRolesInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatal(err)
	}
	// PutAccountProperties is newer than the table: it goes to IAM (moto may refuse it)
	// without a lane, counted.
	_, _ = ic.PutAccountProperties(ctx, &iam.PutAccountPropertiesInput{Properties: map[string]string{"ns/p": "true"}})
	if n := events.Load(); n != 0 {
		t.Fatalf("%d lane events, want none", n)
	}
	if st := lanes.Stats(); st.Passed != 3 || st.Unserialised != 1 || st.Serialised != 0 {
		t.Fatalf("middleware stats %+v, want 3 passed and 1 unserialised", st)
	}
	// A write then takes a lane: events come.
	if err := putPolicy(ctx, ic, "mw-reads", "p"); err != nil || events.Load() == 0 {
		t.Fatalf("a write: %v, %d events", err, events.Load())
	}
}

// The latency a call pays for its lane: sequential PutRolePolicy calls on one role
// through the bare client, a local lane, a file-store lease and a DynamoDB lease (moto),
// against the lab (service time 20 ms). Figures are logged; the check is that every call
// succeeds.
func TestMiddlewareLatencyPerStore(t *testing.T) {
	const n = 40
	leaseTableReady(t)
	createRole(t, client(nil), "mw-latency")
	dir := t.TempDir()
	stores := []struct {
		name string
		opts func() (*writelane.Lane, error)
	}{
		{"bare", nil},
		{"local lane", func() (*writelane.Lane, error) { return writelane.New(`"iam"`) }},
		{"file store", func() (*writelane.Lane, error) {
			return writelane.New(leasePolicy, writelane.WithStore(writelane.NewFileStore(filepath.Join(dir, "leases.json"))))
		}},
		{"dynamodb (moto)", func() (*writelane.Lane, error) {
			return writelane.New(leasePolicy, writelane.WithStore(dynamodbstore.New(dynamo(lab.moto), leaseTable)))
		}},
	}
	var base time.Duration
	for round := range 2 { // the first round warms up connections and the engine
		for i, s := range stores {
			var opts []func(*iam.Options)
			var lane *writelane.Lane
			if s.opts != nil {
				var err error
				if lane, err = s.opts(); err != nil {
					t.Fatal(err)
				}
				defer lane.Close()
				opts = append(opts, awsv2.WithLanes(lane))
			}
			c := mwClient(lab.endpoint, opts...)
			times := make([]time.Duration, 0, n)
			for j := range n {
				start := time.Now()
				if err := putPolicy(context.Background(), c, "mw-latency", fmt.Sprintf("p%d", j%4)); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				times = append(times, time.Since(start))
			}
			sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
			med := times[n/2]
			if i == 0 {
				base = med
			}
			storeOps := 0.0
			if lane != nil {
				var st struct {
					Global struct {
						StoreOps int `json:"store_ops"`
					}
				}
				text, err := lane.Engine().StatsJSON()
				if err != nil || json.Unmarshal([]byte(text), &st) != nil {
					t.Fatalf("stats: %v %s", err, text)
				}
				storeOps = float64(st.Global.StoreOps) / n
			}
			if round == 1 {
				t.Logf("%-16s median %6.2f ms, p90 %6.2f ms per call; added %+.2f ms; %.1f store operations per call", s.name,
					ms(med), ms(times[n*9/10]), ms(med-base), storeOps)
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
