package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	writelane "github.com/writelane/writelane/go"
)

// policyIO is the read and write of one role's inline policy for Lane.Update: the
// document as JSON text ("null" when the role has none) and its canonical token.
func policyIO(c *iam.Client, role, name string) (func(context.Context) (string, *string, error), func(context.Context, string, writelane.Attempt) error) {
	read := func(ctx context.Context) (string, *string, error) {
		out, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name)})
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "NoSuchEntity" {
			return "null", nil, nil
		}
		if err != nil {
			return "", nil, err
		}
		text, err := url.QueryUnescape(aws.ToString(out.PolicyDocument))
		if err != nil {
			return "", nil, err
		}
		token, err := writelane.PolicyToken(text)
		if err != nil {
			return "", nil, err
		}
		return text, &token, nil
	}
	write := func(ctx context.Context, doc string, a writelane.Attempt) error {
		_, err := c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
		if err == nil {
			if token, terr := writelane.PolicyToken(doc); terr == nil {
				a.SetToken(token)
			}
		}
		return err
	}
	return read, write
}

func statement(sid string) string {
	return fmt.Sprintf(`{"Sid":%q,"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/%s"}`, sid, sid)
}

// 8 goroutines x 5 Update appends (group commit) to one role's inline policy, which
// already holds one statement, through one Lane: all 41 statements are there, no conflict
// reaches IAM, and the 40 appends take at most 10 IAM writes, counted at the lab.
func TestUpdateAppendsBatchThroughOneLane(t *testing.T) {
	c := client(aws.NopRetryer{})
	createRole(t, c, "batched")
	read, write := policyIO(c, "batched", "appends")
	initial, err := writelane.PutStatement("null", statement("Initial"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRolePolicy(context.Background(), &iam.PutRolePolicyInput{RoleName: aws.String("batched"),
		PolicyName: aws.String("appends"), PolicyDocument: aws.String(initial)}); err != nil {
		t.Fatal(err)
	}
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
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				st := statement(fmt.Sprintf("G%dN%d", g, i))
				change := func(doc string) (string, error) { return writelane.PutStatement(doc, st) }
				if err := lane.Update(context.Background(), "role/batched", read, change, write); err != nil {
					errs <- fmt.Errorf("G%dN%d: %w", g, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := stats(t)
	doc, _, err := getPolicy(context.Background(), c, "batched")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, st := range doc.Statement {
		seen[fmt.Sprint(st["Sid"])] = true
	}
	if len(doc.Statement) != 41 || len(seen) != 41 || !seen["Initial"] {
		t.Errorf("%d statements (%d distinct) in the policy, want 41 with the initial one", len(doc.Statement), len(seen))
	}
	if s.Conflicts != 0 {
		t.Errorf("%d conflicts reached the lab", s.Conflicts)
	}
	if s.Writes > 10 {
		t.Errorf("%d IAM writes for 40 updates, want at most 10", s.Writes)
	}
	t.Logf("41/%d statements, lab: %d writes, %d conflicts, %d calls", len(seen), s.Writes, s.Conflicts, s.Calls)
}

// Eight goroutines each put one statement; IAM refuses one of them (Effect "Perhaps":
// MalformedPolicyDocument). The batch's write is split until only that change is left
// out: its update alone fails, with IAM's error, and the seven others commit.
func TestUpdateMalformedChangeFailsOnlyItsWriter(t *testing.T) {
	c := client(aws.NopRetryer{})
	createRole(t, c, "malformed")
	read, write := policyIO(c, "malformed", "appends")
	initial, err := writelane.PutStatement("null", statement("Initial"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRolePolicy(context.Background(), &iam.PutRolePolicyInput{RoleName: aws.String("malformed"),
		PolicyName: aws.String("appends"), PolicyDocument: aws.String(initial)}); err != nil {
		t.Fatal(err)
	}
	labPost(t, "/_lab/reset", "{}")
	lane, err := writelane.New(`"iam"`)
	if err != nil {
		t.Fatal(err)
	}
	defer lane.Close()
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := statement(fmt.Sprintf("T%d", g))
			if g == 5 {
				st = `{"Sid":"T5","Effect":"Perhaps","Action":"s3:GetObject","Resource":"*"}`
			}
			change := func(doc string) (string, error) { return writelane.PutStatement(doc, st) }
			errs[g] = lane.Update(context.Background(), "role/malformed", read, change, write)
		}()
	}
	wg.Wait()
	for g, err := range errs {
		if g != 5 {
			if err != nil {
				t.Errorf("T%d: %v", g, err)
			}
			continue
		}
		var gu *writelane.GaveUpError
		var api smithy.APIError
		if !errors.As(err, &gu) || gu.Reason != "fatal" || gu.Code != "MalformedPolicyDocument" || !errors.As(err, &api) {
			t.Errorf("the malformed change: %v, want a fatal MalformedPolicyDocument unwrapping to IAM's error", err)
		}
	}
	seen := statements(t, "malformed")
	if len(seen) != 8 || !seen["Initial"] || seen["T5"] {
		t.Errorf("statements %v: want the initial one and the seven good ones", seen)
	}
	s := stats(t)
	if s.Conflicts != 0 {
		t.Errorf("%d conflicts reached the lab", s.Conflicts)
	}
	t.Logf("7/7 good statements and the initial one; lab: %d writes accepted, %d calls", s.Writes, s.Calls)
}
