package writelane_test

import (
	"context"
	"errors"
	"fmt"

	writelane "github.com/writelane/writelane/go"
)

// A write that meets one ConcurrentModification and commits on its second attempt.
func ExampleLane_Run() {
	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 5}}}`)
	if err != nil {
		panic(err)
	}
	defer lane.Close()
	failures := 1
	err = lane.Run(context.Background(), "role/deploy", func(ctx context.Context, a writelane.Attempt) error {
		if failures > 0 {
			failures--
			return &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
		}
		fmt.Println("wrote on attempt", a.Number)
		return nil
	})
	fmt.Println("gave up:", errors.Is(err, writelane.ErrGaveUp))
	// Output:
	// wrote on attempt 2
	// gave up: false
}

// The canonical change token of an IAM policy document.
func ExamplePolicyToken() {
	a, _ := writelane.PolicyToken(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
	b, _ := writelane.PolicyToken(`{"Statement":{"Resource":"*","Effect":"Allow","Action":["S3:GetObject"]},"Version":"2012-10-17"}`)
	fmt.Println(a == b, a[:10])
	// Output: true c1:sha256:
}
