// End-to-end tests of the writelane Go package with the real AWS SDK for Go v2 against
// the IAM contention lab (tests/iamlab), which answers overlapping writes to one entity
// with IAM's own ConcurrentModification.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	writelane "github.com/writelane/writelane/go"
)

var lab struct {
	endpoint string
	// moto is the lab's moto server, which also serves DynamoDB (the lease table).
	moto string
	cmd  *exec.Cmd
}

func TestMain(m *testing.M) {
	if helper := os.Getenv("WRITELANE_E2E_HELPER"); helper != "" {
		os.Exit(runHelper(helper))
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	python := os.Getenv("PYTHON")
	if python == "" {
		python = "python3"
	}
	cmd := exec.Command(python, filepath.Join(root, "tests", "iamlab", "iamlab.py"), "--port", "0", "--service-ms", "20")
	// The lab logs every connection the SDK drops; keep that out of the test output
	// unless it fails to start.
	var labLog strings.Builder
	cmd.Stderr = &labLog
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "iamlab:", err)
		os.Exit(1)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the IAM lab:", err)
		os.Exit(1)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	var ready struct{ Endpoint, Moto string }
	if err != nil || json.Unmarshal([]byte(line), &ready) != nil || ready.Endpoint == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		fmt.Fprintf(os.Stderr, "the IAM lab did not start: %q %v\n%s\n", line, err, labLog.String())
		_ = cmd.Process.Kill()
		os.Exit(1)
	}
	lab.endpoint, lab.moto, lab.cmd = ready.Endpoint, ready.Moto, cmd
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

func client(retryer aws.Retryer) *iam.Client {
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
	}
	return iam.NewFromConfig(cfg, func(o *iam.Options) {
		o.BaseEndpoint = aws.String(lab.endpoint)
		if retryer != nil {
			o.Retryer = retryer
		}
	})
}

type labStats struct {
	Calls, Writes, Conflicts int
}

func labPost(t *testing.T, path, body string) {
	t.Helper()
	resp, err := http.Post(lab.endpoint+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", path, resp.Status)
	}
}

func stats(t *testing.T) labStats {
	t.Helper()
	resp, err := http.Get(lab.endpoint + "/_lab/stats")
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

const trust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

type policyDoc struct {
	Version   string           `json:"Version"`
	Statement []map[string]any `json:"Statement"`
}

func createRole(t *testing.T, c *iam.Client, name string) {
	t.Helper()
	_, err := c.CreateRole(context.Background(), &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)})
	if err != nil {
		t.Fatal(err)
	}
}

// getPolicy reads the inline policy; a missing policy is an empty document.
func getPolicy(ctx context.Context, c *iam.Client, role string) (policyDoc, string, error) {
	out, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("appends")})
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "NoSuchEntity" {
		return policyDoc{Version: "2012-10-17"}, "", nil
	}
	if err != nil {
		return policyDoc{}, "", err
	}
	text, err := url.QueryUnescape(aws.ToString(out.PolicyDocument))
	if err != nil {
		return policyDoc{}, "", err
	}
	var doc policyDoc
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		return policyDoc{}, "", err
	}
	token, err := writelane.PolicyToken(text)
	return doc, token, err
}

// 8 goroutines x 5 read-modify-write appends to one role's inline policy through one
// Lane: no conflict reaches IAM and all 40 statements land.
func TestAppendsThroughOneLane(t *testing.T) {
	c := client(aws.NopRetryer{})
	createRole(t, c, "appends")
	labPost(t, "/_lab/reset", "{}")
	lane, err := writelane.New(`"iam"`)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				sid := fmt.Sprintf("G%dN%d", g, i)
				err := lane.Run(context.Background(), "role/appends", func(ctx context.Context, a writelane.Attempt) error {
					doc, _, err := getPolicy(ctx, c, "appends")
					if err != nil {
						return err
					}
					doc.Statement = append(doc.Statement, map[string]any{
						"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject",
						"Resource": "arn:aws:s3:::bucket/" + sid,
					})
					text, _ := json.Marshal(doc)
					_, err = c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
						RoleName: aws.String("appends"), PolicyName: aws.String("appends"), PolicyDocument: aws.String(string(text)),
					})
					if err == nil {
						if token, terr := writelane.PolicyToken(string(text)); terr == nil {
							a.SetToken(token)
						}
					}
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", sid, err)
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := stats(t)
	if s.Conflicts != 0 {
		t.Errorf("%d conflicts reached the lab", s.Conflicts)
	}
	doc, _, err := getPolicy(context.Background(), c, "appends")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, st := range doc.Statement {
		seen[fmt.Sprint(st["Sid"])] = true
	}
	if len(doc.Statement) != 40 || len(seen) != 40 {
		t.Fatalf("%d statements (%d distinct) landed, want 40", len(doc.Statement), len(seen))
	}
	t.Logf("lab: %+v", s)
}

// Without writelane the same appends from 8 goroutines collide: the lab is contentious.
func TestAppendsWithoutALaneCollide(t *testing.T) {
	c := client(aws.NopRetryer{})
	createRole(t, c, "bare")
	labPost(t, "/_lab/reset", "{}")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				doc, _, err := getPolicy(context.Background(), c, "bare")
				if err != nil {
					continue
				}
				doc.Statement = append(doc.Statement, map[string]any{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
				text, _ := json.Marshal(doc)
				_, _ = c.PutRolePolicy(context.Background(), &iam.PutRolePolicyInput{
					RoleName: aws.String("bare"), PolicyName: aws.String("appends"), PolicyDocument: aws.String(string(text)),
				})
			}
		}()
	}
	wg.Wait()
	if s := stats(t); s.Conflicts == 0 {
		t.Fatalf("expected conflicts without a lane, lab: %+v", s)
	}
}

// An IAM client configured with lane.Retryer() survives injected conflicts, where the
// SDK's own retryer gives up on ConcurrentModification.
func TestRetryerSurvivesInjectedConflicts(t *testing.T) {
	lane, err := writelane.New(`"iam"`)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	createRole(t, client(aws.NopRetryer{}), "retryer")
	put := func(c *iam.Client) error {
		_, err := c.PutRolePolicy(context.Background(), &iam.PutRolePolicyInput{
			RoleName: aws.String("retryer"), PolicyName: aws.String("p"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`),
		})
		return err
	}

	labPost(t, "/_lab/reset", "{}")
	labPost(t, "/_lab/config", `{"inject_conflicts": 1}`)
	err = put(client(nil)) // the SDK's standard retryer
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ConcurrentModification" {
		t.Fatalf("the standard retryer was expected to give up on ConcurrentModification, got %v", err)
	}

	labPost(t, "/_lab/reset", "{}")
	labPost(t, "/_lab/config", `{"inject_conflicts": 3}`)
	if err := put(client(lane.Retryer())); err != nil {
		t.Fatalf("with lane.Retryer(): %v", err)
	}
	s := stats(t)
	if s.Conflicts != 3 || s.Writes != 1 {
		t.Fatalf("lab: %+v, want 3 conflicts and 1 accepted write", s)
	}
	budget, _ := lane.Engine().RetryCapacity("aws")
	t.Logf("lab: %+v, budget left %d", s, budget)

	// A quota error is never retried.
	labPost(t, "/_lab/reset", "{}")
	_, err = client(lane.Retryer()).GetRole(context.Background(), &iam.GetRoleInput{RoleName: aws.String("no-such-role")})
	if !errors.As(err, &api) || api.ErrorCode() != "NoSuchEntity" {
		t.Fatalf("got %v", err)
	}
	if s := stats(t); s.Calls != 1 {
		t.Fatalf("NoSuchEntity was retried: %+v", s)
	}
}
