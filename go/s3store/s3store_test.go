package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	writelane "github.com/writelane/writelane/go"
	"github.com/writelane/writelane/go/s3store"
	"github.com/writelane/writelane/go/storetest"
)

const bucket = "writelane-leases"

// moto is a moto server (S3) started by the tests on a free loopback port.
type moto struct {
	endpoint string
	cmd      *exec.Cmd
	log      *strings.Builder
	exited   chan struct{}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startMoto() (*moto, error) {
	python := os.Getenv("PYTHON")
	if python == "" {
		python = "python3"
	}
	for try := 0; try < 3; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &moto{endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), log: &strings.Builder{}}
		// moto checks If-None-Match and If-Match and stores the object in separate steps
		// without a lock; this launcher carries requests out one at a time, as S3's
		// conditional writes are atomic.
		m.cmd = exec.Command(python, "../../tests/iamlab/moto_atomic.py", fmt.Sprint(port))
		m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
		if err := m.cmd.Start(); err != nil {
			return nil, fmt.Errorf("cannot start the moto server: %w", err)
		}
		m.exited = make(chan struct{})
		go func() { _ = m.cmd.Wait(); close(m.exited) }()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			select {
			case <-m.exited:
				deadline = time.Time{} // the port was taken meanwhile: try another
				continue
			default:
			}
			if resp, err := http.Get(m.endpoint + "/moto-api/"); err == nil {
				resp.Body.Close()
				return m, nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		m.stop()
	}
	return nil, errors.New("the moto server did not start")
}

func (m *moto) stop() {
	if m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(5 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
}

var server *moto

func TestMain(m *testing.M) {
	var err error
	server, err = startMoto()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_, err = client(server.endpoint, nil, 3).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "create bucket:", err, server.log.String())
	} else {
		code = m.Run()
	}
	server.stop()
	os.Exit(code)
}

// client is an S3 client for a local server: path-style, checksums only where required.
func client(endpoint string, transport http.RoundTripper, attempts int) *s3.Client {
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
		RetryMaxAttempts:           attempts,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	}
	if transport != nil {
		cfg.HTTPClient = &http.Client{Transport: transport}
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
}

var prefixes atomic.Int64

// prefix is a folder of the bucket no other test uses.
func prefix() string {
	return fmt.Sprintf("writelane/leases/go-%d-%d/", os.Getpid(), prefixes.Add(1))
}

func TestConformance(t *testing.T) {
	p := prefix()
	storetest.Run(t, storetest.Harness{
		Open: func(*testing.T) writelane.Store {
			return s3store.New(client(server.endpoint, nil, 1), bucket, p)
		},
		Unreachable: func(t *testing.T) writelane.Store {
			// A server of its own, with the bucket, then stopped.
			m, err := startMoto()
			if err != nil {
				t.Fatal(err)
			}
			c := client(m.endpoint, nil, 1)
			if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
				m.stop()
				t.Fatal(err)
			}
			m.stop()
			return s3store.New(c, bucket, p)
		},
		Writers: 12,
	})
}

func str(s string) *string { return &s }

// TestObjectLayout checks the documented object: prefix + key, holding the core's JSON
// text of the record, which every binding shares.
func TestObjectLayout(t *testing.T) {
	ctx := context.Background()
	c := client(server.endpoint, nil, 1)
	p := prefix()
	s := s3store.New(c, bucket, p)
	key := "arn:aws:iam::123456789012:role/deploy"
	rec := writelane.LeaseRecord{Owner: "host:1:a", Epoch: 3, Rvn: 1<<53 - 1, LeaseMs: 10000,
		CommittedToken: str("c1:sha256:ab"), Holder: str("deploy <pipeline> & run — 7")}
	if ok, _, err := s.PutIfAbsent(ctx, key, rec); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if s.ObjectKey(key) != p+key {
		t.Fatalf("object key %q", s.ObjectKey(key))
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(p + key)})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	want := `{"owner":"host:1:a","epoch":3,"rvn":9007199254740991,"lease_ms":10000,` +
		`"committed_token":"c1:sha256:ab","holder":"deploy <pipeline> & run — 7"}`
	if string(body) != want {
		t.Fatalf("body %s\nwant %s", body, want)
	}
	if aws.ToString(out.ContentType) != "application/json" {
		t.Fatalf("content type %q", aws.ToString(out.ContentType))
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(p)})
	if err != nil || len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != p+key {
		t.Fatalf("objects under the prefix: %+v %v", list, err)
	}
	// Another prefix in the same bucket is another namespace.
	if got, err := s3store.New(c, bucket, prefix()).Get(ctx, key); got != nil || err != nil {
		t.Fatalf("another prefix found %+v %v", got, err)
	}
}

// A swap from a store whose cached ETag is stale is refused by S3 (412) and reported with
// the record found; an object removed by hand is refused with none.
func TestStaleETag(t *testing.T) {
	ctx := context.Background()
	p := prefix()
	mine := s3store.New(client(server.endpoint, nil, 1), bucket, p)
	theirs := s3store.New(client(server.endpoint, nil, 1), bucket, p)
	first := writelane.LeaseRecord{Owner: "a", Epoch: 1, Rvn: 5, LeaseMs: 1000}
	second := writelane.LeaseRecord{Owner: "b", Epoch: 2, Rvn: 6, LeaseMs: 1000}
	if ok, _, err := mine.PutIfAbsent(ctx, "role/x", first); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _, err := theirs.CompareAndSwap(ctx, "role/x", 5, second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	late := writelane.LeaseRecord{Owner: "a", Epoch: 2, Rvn: 7, LeaseMs: 1000}
	ok, cur, err := mine.CompareAndSwap(ctx, "role/x", 5, late)
	if ok || err != nil || !cur.Equal(&second) {
		t.Fatalf("got %v %+v %v, want refused with rvn 6", ok, cur, err)
	}
	if ok, _, err := mine.CompareAndSwap(ctx, "role/x", 6, late); !ok || err != nil {
		t.Fatalf("a swap from the record read: %v %v", ok, err)
	}
	c := client(server.endpoint, nil, 1)
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(p + "role/x")}); err != nil {
		t.Fatal(err)
	}
	next := late
	next.Rvn = 8
	if ok, cur, err := mine.CompareAndSwap(ctx, "role/x", 7, next); ok || cur != nil || err != nil {
		t.Fatalf("a swap on a removed object: %v %+v %v, want refused with none", ok, cur, err)
	}
}

// answering makes every PutObject fail as S3 can answer (moto never sends a 409), reads
// passing through to a real client.
type answering struct {
	real   *s3.Client
	code   string
	status int
}

func (a answering) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return a.real.GetObject(ctx, in, opts...)
}

func (a answering) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: a.status}}
	return nil, &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: resp, Err: &smithy.GenericAPIError{Code: a.code, Message: "m"}},
	}}
}

func TestAnswersMapToUnavailableOrLost(t *testing.T) {
	ctx := context.Background()
	p := prefix()
	real := client(server.endpoint, nil, 1)
	first := writelane.LeaseRecord{Owner: "a", Epoch: 1, Rvn: 5, LeaseMs: 1000}
	if ok, _, err := s3store.New(real, bucket, p).PutIfAbsent(ctx, "role/y", first); !ok || err != nil {
		t.Fatal(ok, err)
	}
	next := writelane.LeaseRecord{Owner: "b", Epoch: 2, Rvn: 6, LeaseMs: 1000}
	expected := uint64(5)
	for _, c := range []struct {
		code   string
		status int
		reply  string
	}{
		{"ConditionalRequestConflict", 409, writelane.ReplyUnavailable},
		{"AccessDenied", 403, writelane.ReplyUnavailable},
		{"SlowDown", 503, writelane.ReplyLost},
		{"InternalError", 500, writelane.ReplyLost},
	} {
		s := s3store.New(answering{real: real, code: c.code, status: c.status}, bucket, p)
		for _, op := range []writelane.StoreOp{
			{Op: writelane.StorePutIfAbsent, Key: "role/fresh", Record: &next},
			{Op: writelane.StoreCompareAndSwap, Key: "role/y", ExpectedRvn: &expected, Record: &next},
		} {
			if r := writelane.ApplyStoreOp(ctx, s, op); r.Reply != c.reply {
				t.Errorf("%s %d on %s: %s (%v), want %s", c.code, c.status, op.Op, r.Reply, r.Err, c.reply)
			}
		}
	}
	missing := s3store.New(real, "no-such-bucket", p)
	for _, op := range []writelane.StoreOp{
		{Op: writelane.StoreGet, Key: "role/y"},
		{Op: writelane.StorePutIfAbsent, Key: "role/y", Record: &next},
		{Op: writelane.StoreCompareAndSwap, Key: "role/y", ExpectedRvn: &expected, Record: &next},
	} {
		if r := writelane.ApplyStoreOp(ctx, missing, op); r.Reply != writelane.ReplyUnavailable {
			t.Errorf("%s on a missing bucket: %s (%v), want unavailable", op.Op, r.Reply, r.Err)
		}
	}
}

// dropReplies forwards requests to the server and then loses the first n replies, like a
// connection dropped after the request was sent.
type dropReplies struct{ n atomic.Int32 }

func (d *dropReplies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && d.n.Add(-1) >= 0 {
		resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return resp, err
}

func TestLostReply(t *testing.T) {
	ctx := context.Background()
	drop := &dropReplies{}
	p := prefix()
	s := s3store.New(client(server.endpoint, drop, 1), bucket, p)
	rec := writelane.LeaseRecord{Owner: "me", Epoch: 1, Rvn: 77, LeaseMs: 10000}
	drop.n.Store(1)
	r := writelane.ApplyStoreOp(ctx, s, writelane.StoreOp{Op: writelane.StorePutIfAbsent, Key: "role/lost", Record: &rec})
	if r.Reply != writelane.ReplyLost || !errors.Is(r.Err, writelane.ErrStoreLost) {
		t.Fatalf("got %s %v, want lost", r.Reply, r.Err)
	}
	// It landed; the engine reads it back.
	if got, err := s.Get(ctx, "role/lost"); err != nil || !got.Equal(&rec) {
		t.Fatalf("the write did not land: %+v %v", got, err)
	}
	// A store with no ETag cached reads before it swaps: a dropped reply to that read
	// means no write was sent, so unavailable.
	next := rec
	next.Rvn = 78
	expected := uint64(77)
	other := s3store.New(client(server.endpoint, drop, 1), bucket, p)
	drop.n.Store(1)
	r = writelane.ApplyStoreOp(ctx, other, writelane.StoreOp{Op: writelane.StoreCompareAndSwap, Key: "role/lost", ExpectedRvn: &expected, Record: &next})
	if r.Reply != writelane.ReplyUnavailable {
		t.Fatalf("a swap whose read got no reply: %s %v, want unavailable", r.Reply, r.Err)
	}
	// With the ETag known (read now), a dropped reply to the swap is lost, and it landed.
	drop.n.Store(1)
	r = writelane.ApplyStoreOp(ctx, s, writelane.StoreOp{Op: writelane.StoreCompareAndSwap, Key: "role/lost", ExpectedRvn: &expected, Record: &next})
	if r.Reply != writelane.ReplyLost {
		t.Fatalf("a swap whose reply was dropped: %s %v, want lost", r.Reply, r.Err)
	}
	if got, err := s.Get(ctx, "role/lost"); err != nil || !got.Equal(&next) {
		t.Fatalf("the swap did not land: %+v %v", got, err)
	}
}

// An object that is not a lease record is refused by the core (the adapter only hands the
// body over): a read of it is an unavailable store naming the field.
func TestMalformedObjectIsUnavailable(t *testing.T) {
	ctx := context.Background()
	c := client(server.endpoint, nil, 1)
	p := prefix()
	body := `{"owner":"o","epoch":0,"rvn":5,"lease_ms":1000,"committed_token":null,"holder":null}`
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(p + "role/bad"), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	r := writelane.ApplyStoreOp(ctx, s3store.New(c, bucket, p), writelane.StoreOp{Op: writelane.StoreGet, Key: "role/bad"})
	var re *writelane.RecordError
	if r.Reply != writelane.ReplyUnavailable || !errors.Is(r.Err, writelane.ErrStoreUnavailable) || !errors.As(r.Err, &re) || re.Field != "epoch" {
		t.Fatalf("reading a record with epoch 0: %s %v", r.Reply, r.Err)
	}
}

// Body writes what the core writes: the same text as writelane's own JSON of the record.
func TestBodyIsTheCoreJSON(t *testing.T) {
	rec := writelane.LeaseRecord{Owner: "h:1:2", Epoch: 1, Rvn: 2, LeaseMs: 3, Holder: str(`a "b" <c> & \ é`)}
	b, err := s3store.Body(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"owner":"h:1:2","epoch":1,"rvn":2,"lease_ms":3,"committed_token":null,"holder":"a \"b\" <c> & \\ é"}`
	if string(b) != want {
		t.Fatalf("body %s\nwant %s", b, want)
	}
	back, err := writelane.ParseLeaseRecord(b)
	if err != nil || !back.Equal(&rec) {
		t.Fatalf("parsed back %+v %v", back, err)
	}
	// The line and paragraph separators as they are (encoding/json escapes them, the core
	// does not), a backslash before "u2028" kept, control characters as the core escapes them.
	rec.Holder = str("a\u2028b\u2029c \\u2028 \n\t\x01\b\f\x7f é")
	b, err = s3store.Body(rec)
	if err != nil {
		t.Fatal(err)
	}
	want = "{\"owner\":\"h:1:2\",\"epoch\":1,\"rvn\":2,\"lease_ms\":3,\"committed_token\":null," +
		"\"holder\":\"a\u2028b\u2029c \\\\u2028 \\n\\t\\u0001\\b\\f\x7f é\"}"
	if string(b) != want {
		t.Fatalf("body %q\nwant %q", b, want)
	}
	if back, err := writelane.ParseLeaseRecord(b); err != nil || !back.Equal(&rec) {
		t.Fatalf("parsed back %+v %v", back, err)
	}
}

// A version 2 record's body is the core's JSON text: version first, the version 2 fields
// after holder, each ticket's fields as the core orders them.
func TestBodyVersion2IsTheCoreJSON(t *testing.T) {
	rec := writelane.LeaseRecord{Version: 2, Owner: "h:1:2", Epoch: 1, Rvn: 2, LeaseMs: 3, Beat: 4, NextTicket: 12, HoldMs: 350,
		Queue: []writelane.Ticket{{Owner: "h:2:3", Ticket: 9, Beat: 3}, {Owner: "h:3:4", Ticket: 10}, {Owner: "h:4:5", Ticket: 11, Beat: 7}}}
	b, err := s3store.Body(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":2,"owner":"h:1:2","epoch":1,"rvn":2,"lease_ms":3,"committed_token":null,"holder":null,` +
		`"beat":4,"next_ticket":12,"hold_ms":350,"queue":[{"owner":"h:2:3","ticket":9,"beat":3},` +
		`{"owner":"h:3:4","ticket":10,"beat":0},{"owner":"h:4:5","ticket":11,"beat":7}]}`
	if string(b) != want {
		t.Fatalf("body %s\nwant %s", b, want)
	}
	back, err := writelane.ParseLeaseRecord(b)
	if err != nil || !back.Equal(&rec) {
		t.Fatalf("parsed back %+v %v", back, err)
	}
	// Zero counters and no queue are left out, as the core leaves them out.
	b, err = s3store.Body(writelane.LeaseRecord{Version: 2, Owner: "", Epoch: 1, Rvn: 2, LeaseMs: 3})
	if want = `{"version":2,"owner":"","epoch":1,"rvn":2,"lease_ms":3,"committed_token":null,"holder":null}`; err != nil || string(b) != want {
		t.Fatalf("body %s %v\nwant %s", b, err, want)
	}
}
