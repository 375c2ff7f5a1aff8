package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	writelane "github.com/writelane/writelane/go"
)

// The errors of the real AWS SDK for Go v2 (smithy.OperationError wrapping the SDK's
// ResponseError wrapping the service's APIError) give writelane.FailureOf the code, the
// HTTP status and the x-amz-retry-after hint, and a client timeout is an unknown outcome:
// the shapes the Go package's lane-vector test rebuilds without the SDK.
func TestFailureOfTheSDKsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		code, status := "ConcurrentModification", http.StatusConflict
		switch r.Form.Get("RoleName") {
		case "throttled":
			code, status = "Throttling", http.StatusBadRequest
			w.Header().Set("X-Amz-Retry-After", "1500")
		case "slow":
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>`+
			`<Code>%s</Code><Message>scripted</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`, code)
	}))
	defer srv.Close()
	c := iam.NewFromConfig(aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
	}, func(o *iam.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.Retryer = aws.NopRetryer{}
	})
	put := func(ctx context.Context, role string) error {
		_, err := c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role),
			PolicyName: aws.String("p"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
		return err
	}

	err := put(context.Background(), "app")
	var api smithy.APIError
	if !errors.As(err, &api) {
		t.Fatalf("%v is not an SDK API error", err)
	}
	f := writelane.FailureOf(err)
	if f.Code != "ConcurrentModification" || f.HTTPStatus != 409 || f.RetryAfterHeader != nil || f.OutcomeUnknown {
		t.Fatalf("conflict: %+v", f)
	}
	f = writelane.FailureOf(put(context.Background(), "throttled"))
	if f.Code != "Throttling" || f.HTTPStatus != 400 || f.RetryAfterHeader == nil || *f.RetryAfterHeader != "1500" {
		t.Fatalf("throttling with a hint: %+v (hint %v)", f, f.RetryAfterHeader)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	f = writelane.FailureOf(put(ctx, "slow"))
	if !f.OutcomeUnknown || f.Code != "" {
		t.Fatalf("a timed-out request: %+v", f)
	}
}
