package awsv2

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go/middleware"

	writelane "github.com/writelane/writelane/go"
)

// The middleware's cost per call: PutRolePolicy through an IAM client whose HTTP client
// answers in process (no network, no service time), bare and with lanes on a local lane
// and on a file-store lease. The difference to "bare" is what the lane adds to a call.
func BenchmarkPutRolePolicy(b *testing.B) {
	shared := `{"preset": "iam", "lanes": {"mode": "shared"}}`
	cases := []struct {
		name string
		lane func(b *testing.B) *writelane.Lane
	}{
		{"bare", nil},
		{"local-lane", func(b *testing.B) *writelane.Lane { return newLane(b, nil) }},
		{"file-store", func(b *testing.B) *writelane.Lane {
			l, err := writelane.New(shared, writelane.WithStore(writelane.NewFileStore(filepath.Join(b.TempDir(), "leases.json"))))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Close() })
			return l
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var opts []func(*iam.Options)
			if c.lane != nil {
				opts = append(opts, WithLanes(c.lane(b)))
			}
			client := iam.NewFromConfig(fakeConfig(&fakeIAM{}), opts...)
			ctx := context.Background()
			if err := put(client, ctx, "app"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := put(client, ctx, "app"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The read path: GetRole with and without the middleware (no lane is taken).
func BenchmarkGetRole(b *testing.B) {
	for _, withLanes := range []bool{false, true} {
		name := "bare"
		var opts []func(*iam.Options)
		if withLanes {
			name = "middleware"
			opts = append(opts, WithLanes(newLane(b, nil)))
		}
		b.Run(name, func(b *testing.B) {
			client := iam.NewFromConfig(fakeConfig(&fakeIAM{}), opts...)
			ctx := context.Background()
			in := &iam.GetRoleInput{RoleName: new(string)}
			*in.RoleName = "app"
			for range b.N {
				if _, err := client.GetRole(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The middleware alone, without the SDK: HandleInitialize of a PutRolePolicy input with a
// next handler that returns at once, against a local lane (the entity lookup and one
// uncontended lane.Run), and of a GetRole (a cached read: no lane).
func BenchmarkMiddlewareAlone(b *testing.B) {
	next := middleware.InitializeHandlerFunc(func(context.Context, middleware.InitializeInput) (middleware.InitializeOutput, middleware.Metadata, error) {
		return middleware.InitializeOutput{}, middleware.Metadata{}, nil
	})
	for _, c := range []struct {
		op string
		in any
	}{
		{"PutRolePolicy", &iam.PutRolePolicyInput{RoleName: aws.String("app"), PolicyName: aws.String("p"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)}},
		{"GetRole", &iam.GetRoleInput{RoleName: aws.String("app")}},
	} {
		b.Run(c.op, func(b *testing.B) {
			l := New(newLane(b, nil))
			ctx := middleware.WithOperationName(middleware.WithServiceID(context.Background(), "IAM"), c.op)
			in := middleware.InitializeInput{Parameters: c.in}
			for range b.N {
				if _, _, err := l.HandleInitialize(ctx, in, next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
