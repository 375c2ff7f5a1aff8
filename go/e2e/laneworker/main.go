// Command laneworker is a Go writer process for multi-process and mixed-language tests of
// shared lanes. It speaks the protocol of the Python binding's tests/laneworker.py:
//
//	laneworker CONFIG_JSON
//
// CONFIG_JSON: {"endpoint": IAM lab URL, "role": R, "id": ID, "count": N,
// "spec": {"kind": "dynamodb", "endpoint": URL, "table": T} | {"kind": "s3", "endpoint":
// URL, "bucket": B, "prefix": P} | {"kind": "file", "path": P} | {"kind": "none"}, "policy": overrides of the "iam" preset, "start": unix time to start
// at, "hang_at": j, "stop_on_give_up": bool}.
//
// It makes N read-modify-write appends of statement "W{id}N{n}" to the role's inline
// policy "appended" through a writelane.Lane sharing the lease store, and prints one JSON
// line per write ({"n": j, "ok": true, "fence": F} or {"n": j, "gave_up": REASON}) and a
// last line {"done": true, "id": ID, "fences": [...], "takeovers": K, "stats": {...}}.
// With "hang_at": j it prints {"writing": j, "fence": F} inside write j, after reading
// the policy and before writing it, then blocks until killed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	writelane "github.com/writelane/writelane/go"
	"github.com/writelane/writelane/go/dynamodbstore"
	"github.com/writelane/writelane/go/s3store"
)

const policyName = "appended"

type config struct {
	Endpoint string `json:"endpoint"`
	Role     string `json:"role"`
	ID       any    `json:"id"`
	Count    int    `json:"count"`
	Spec     struct {
		Kind     string `json:"kind"`
		Endpoint string `json:"endpoint"`
		Table    string `json:"table"`
		Bucket   string `json:"bucket"`
		Prefix   string `json:"prefix"`
		Path     string `json:"path"`
	} `json:"spec"`
	Policy       map[string]any `json:"policy"`
	Start        float64        `json:"start"`
	HangAt       *int           `json:"hang_at"`
	StopOnGiveUp bool           `json:"stop_on_give_up"`
}

func out(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func credentials() aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
	})
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "laneworker:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return errors.New("usage: laneworker CONFIG_JSON")
	}
	var cfg config
	if err := json.Unmarshal([]byte(os.Args[1]), &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	me := fmt.Sprint(cfg.ID)
	c := iam.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials(),
		Retryer: func() aws.Retryer { return aws.NopRetryer{} }}, func(o *iam.Options) { o.BaseEndpoint = aws.String(cfg.Endpoint) })

	policy := map[string]any{"preset": "iam"}
	for k, v := range cfg.Policy {
		policy[k] = v
	}
	policyText, _ := json.Marshal(policy)
	var takeovers atomic.Int32
	opts := []writelane.Option{writelane.WithHolder("laneworker (go) " + me), writelane.WithEvents(func(ev string) {
		var e struct {
			Type     string `json:"type"`
			Takeover bool   `json:"takeover"`
		}
		if json.Unmarshal([]byte(ev), &e) == nil && e.Type == "lease_acquired" && e.Takeover {
			takeovers.Add(1)
		}
	})}
	switch cfg.Spec.Kind {
	case "dynamodb":
		d := dynamodb.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials()},
			func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(cfg.Spec.Endpoint) })
		opts = append(opts, writelane.WithStore(dynamodbstore.New(d, cfg.Spec.Table)))
	case "s3":
		b := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials(), RetryMaxAttempts: 1,
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired},
			func(o *s3.Options) { o.BaseEndpoint = aws.String(cfg.Spec.Endpoint); o.UsePathStyle = true })
		opts = append(opts, writelane.WithStore(s3store.New(b, cfg.Spec.Bucket, cfg.Spec.Prefix)))
	case "file":
		opts = append(opts, writelane.WithStore(writelane.NewFileStore(cfg.Spec.Path)))
	case "none":
	default:
		return fmt.Errorf("unknown store kind %q", cfg.Spec.Kind)
	}
	lane, err := writelane.New(string(policyText), opts...)
	if err != nil {
		return err
	}
	defer lane.Close()

	// document reads the inline policy: nil when there is none.
	document := func(ctx context.Context) (map[string]any, string, error) {
		o, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(cfg.Role), PolicyName: aws.String(policyName)})
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "NoSuchEntity" {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		text, err := url.QueryUnescape(aws.ToString(o.PolicyDocument))
		if err != nil {
			return nil, "", err
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			return nil, "", err
		}
		return doc, text, nil
	}
	read := func(ctx context.Context) (string, bool, error) {
		_, text, err := document(ctx)
		if err != nil || text == "" {
			return "", false, err
		}
		token, err := writelane.PolicyToken(text)
		return token, err == nil, err
	}
	if wait := time.Until(time.Unix(0, int64(cfg.Start*1e9))); cfg.Start > 0 && wait > 0 {
		time.Sleep(wait)
	}
	fences := []uint64{}
writes:
	for n := 0; n < cfg.Count; n++ {
		sid := fmt.Sprintf("W%sN%d", me, n)
		var fence uint64
		err := lane.Run(context.Background(), "role/"+cfg.Role, func(ctx context.Context, a writelane.Attempt) error {
			doc, _, err := document(ctx)
			if err != nil {
				return err
			}
			if doc == nil {
				doc = map[string]any{"Version": "2012-10-17", "Statement": []any{}}
			}
			statements, ok := doc["Statement"].([]any)
			if !ok {
				statements = []any{doc["Statement"]}
			}
			doc["Statement"] = append(statements, map[string]any{"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
			if a.Fence != nil {
				fence = *a.Fence
			}
			if cfg.HangAt != nil && *cfg.HangAt == n {
				out(map[string]any{"writing": n, "fence": a.Fence})
				select {}
			}
			text, _ := json.Marshal(doc)
			_, err = c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(cfg.Role),
				PolicyName: aws.String(policyName), PolicyDocument: aws.String(string(text))})
			if err == nil {
				if token, terr := writelane.PolicyToken(string(text)); terr == nil {
					a.SetToken(token)
				}
			}
			return err
		}, writelane.WithRead(read))
		var gaveUp *writelane.GaveUpError
		switch {
		case err == nil:
			fences = append(fences, fence)
			out(map[string]any{"n": n, "ok": true, "fence": fence})
		case errors.As(err, &gaveUp):
			out(map[string]any{"n": n, "gave_up": gaveUp.Reason})
			if cfg.StopOnGiveUp {
				break writes
			}
		default:
			return err
		}
	}
	statsText, err := lane.Engine().StatsJSON()
	if err != nil {
		return err
	}
	var stats struct {
		Global json.RawMessage `json:"global"`
	}
	_ = json.Unmarshal([]byte(statsText), &stats)
	out(map[string]any{"done": true, "id": cfg.ID, "fences": fences, "takeovers": takeovers.Load(), "stats": stats.Global})
	return nil
}
