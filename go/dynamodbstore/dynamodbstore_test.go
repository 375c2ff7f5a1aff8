package dynamodbstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	writelane "github.com/writelane/writelane/go"
	"github.com/writelane/writelane/go/dynamodbstore"
	"github.com/writelane/writelane/go/storetest"
)

const table = "writelane-leases"

// moto is a moto server (DynamoDB) started by the tests on a free loopback port.
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
		// moto checks a condition and stores the item without a lock; this launcher
		// carries requests out one at a time, as DynamoDB's conditional writes are atomic.
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
	err = dynamodbstore.CreateTable(ctx, client(server.endpoint, nil, 3), table)
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "create table:", err, server.log.String())
	} else {
		code = m.Run()
	}
	server.stop()
	os.Exit(code)
}

func client(endpoint string, transport http.RoundTripper, attempts int) *dynamodb.Client {
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing"}, nil
		}),
		RetryMaxAttempts: attempts,
	}
	if transport != nil {
		cfg.HTTPClient = &http.Client{Transport: transport}
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(*testing.T) writelane.Store {
			return dynamodbstore.New(client(server.endpoint, nil, 3), table)
		},
		Unreachable: func(t *testing.T) writelane.Store {
			// A server of its own, with the table, then stopped.
			m, err := startMoto()
			if err != nil {
				t.Fatal(err)
			}
			c := client(m.endpoint, nil, 2)
			if err := dynamodbstore.CreateTable(context.Background(), c, table); err != nil {
				m.stop()
				t.Fatal(err)
			}
			m.stop()
			return dynamodbstore.New(c, table)
		},
		Writers: 12,
	})
}

// TestItemLayout checks the documented attribute types, which every binding shares.
func TestItemLayout(t *testing.T) {
	c := client(server.endpoint, nil, 3)
	s := dynamodbstore.New(c, table)
	token := "c1:sha256:ab"
	rec := writelane.LeaseRecord{Owner: "host:1:a", Epoch: 3, Rvn: 1<<53 - 1, LeaseMs: 10000, CommittedToken: &token}
	ctx := context.Background()
	if ok, _, err := s.PutIfAbsent(ctx, "role/layout", rec); !ok || err != nil {
		t.Fatal(ok, err)
	}
	out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"key": &types.AttributeValueMemberS{Value: "role/layout"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"key": "S:role/layout", "owner": "S:host:1:a", "epoch": "N:3", "rvn": "N:9007199254740991",
		"lease_ms": "N:10000", "committed_token": "S:c1:sha256:ab", "holder": "NULL"}
	if len(out.Item) != len(want) {
		t.Fatalf("item has %d attributes, want %d", len(out.Item), len(want))
	}
	for name, w := range want {
		var got string
		switch v := out.Item[name].(type) {
		case *types.AttributeValueMemberS:
			got = "S:" + v.Value
		case *types.AttributeValueMemberN:
			got = "N:" + v.Value
		case *types.AttributeValueMemberNULL:
			got = "NULL"
		}
		if got != w {
			t.Errorf("attribute %s = %q, want %q", name, got, w)
		}
	}
	// An item written without the optional attributes reads as nulls.
	item := dynamodbstore.Item("role/bare", rec)
	delete(item, "committed_token")
	delete(item, "holder")
	if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "role/bare")
	if err != nil || got == nil || got.CommittedToken != nil || got.Holder != nil || got.Rvn != rec.Rvn {
		t.Fatalf("bare item read as %+v %v", got, err)
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
	rec := writelane.LeaseRecord{Owner: "me", Epoch: 1, Rvn: 77, LeaseMs: 10000}
	// Without SDK retries a dropped reply to a conditional write is "lost" (it landed).
	drop := &dropReplies{}
	drop.n.Store(1)
	s := dynamodbstore.New(client(server.endpoint, drop, 1), table)
	r := writelane.ApplyStoreOp(ctx, s, writelane.StoreOp{Op: "put_if_absent", Key: "role/lost-1", Record: &rec})
	if r.Reply != writelane.ReplyLost || !errors.Is(r.Err, writelane.ErrStoreLost) {
		t.Fatalf("got %s %v, want lost", r.Reply, r.Err)
	}
	if got, err := s.Get(ctx, "role/lost-1"); err != nil || !got.Equal(&rec) {
		t.Fatalf("the write did not land: %+v %v", got, err)
	}
	// With SDK retries, the retry is refused with our own record. The adapter reports the
	// refusal as it is, with the record found; the core reads a refusal by the record it
	// intended as done (tests/vectors-lease/010), so no adapter decides it.
	drop.n.Store(1)
	s = dynamodbstore.New(client(server.endpoint, drop, 3), table)
	next := rec
	next.Rvn = 78
	expected := uint64(77)
	r = writelane.ApplyStoreOp(ctx, s, writelane.StoreOp{Op: "compare_and_swap", Key: "role/lost-1", ExpectedRvn: &expected, Record: &next})
	if r.Reply != writelane.ReplyRefused || !r.Current.Equal(&next) {
		t.Fatalf("got %s %+v %v, want refused with our own record (rvn 78)", r.Reply, r.Current, r.Err)
	}
	// Someone else's record is still a refusal.
	other := rec
	other.Owner, other.Rvn = "other", 79
	r = writelane.ApplyStoreOp(ctx, s, writelane.StoreOp{Op: "compare_and_swap", Key: "role/lost-1", ExpectedRvn: &expected, Record: &other})
	if r.Reply != writelane.ReplyRefused || !r.Current.Equal(&next) {
		t.Fatalf("got %s %+v, want refused with rvn 78", r.Reply, r.Current)
	}
}

func TestMissingTableIsUnavailable(t *testing.T) {
	s := dynamodbstore.New(client(server.endpoint, nil, 1), "no-such-table")
	for _, op := range []string{`{"op":"get","key":"k"}`,
		`{"op":"put_if_absent","key":"k","record":{"owner":"","epoch":1,"rvn":1,"lease_ms":1,"committed_token":null,"holder":null}}`} {
		reply, err := writelane.ApplyStoreJSON(context.Background(), s, op)
		if err != nil || reply != `{"reply":"unavailable"}` {
			t.Fatalf("%s: %s %v", op, reply, err)
		}
	}
}

// An item that is not a lease record is refused by the core (the adapter only maps the
// attributes to the record's JSON): a read of it is an unavailable store naming the field.
func TestMalformedItemIsUnavailable(t *testing.T) {
	good := dynamodbstore.Item("role/bad", writelane.LeaseRecord{Owner: "o", Epoch: 1, Rvn: 5, LeaseMs: 1000})
	for _, c := range []struct {
		name, field string
		attr        types.AttributeValue
	}{
		{"epoch", "epoch", &types.AttributeValueMemberN{Value: "0"}},
		{"rvn", "rvn", &types.AttributeValueMemberN{Value: "9007199254740992"}},
		{"epoch", "$", &types.AttributeValueMemberS{Value: "1"}},
		{"owner", "$", &types.AttributeValueMemberBOOL{Value: true}},
		{"lease_ms", "$", &types.AttributeValueMemberN{Value: "1.5"}},
	} {
		item := map[string]types.AttributeValue{}
		for k, v := range good {
			item[k] = v
		}
		item[c.name] = c.attr
		_, err := dynamodbstore.Record(item)
		var re *writelane.RecordError
		if !errors.As(err, &re) || re.Field != c.field {
			t.Errorf("%s = %#v: got %v, want a RecordError on %q", c.name, c.attr, err, c.field)
		}
	}
	ctx := context.Background()
	c := client(server.endpoint, nil, 1)
	item := map[string]types.AttributeValue{}
	for k, v := range good {
		item[k] = v
	}
	item["epoch"] = &types.AttributeValueMemberN{Value: "0"}
	if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
	r := writelane.ApplyStoreOp(ctx, dynamodbstore.New(c, table), writelane.StoreOp{Op: writelane.StoreGet, Key: "role/bad"})
	var re *writelane.RecordError
	if r.Reply != writelane.ReplyUnavailable || !errors.Is(r.Err, writelane.ErrStoreUnavailable) || !errors.As(r.Err, &re) || re.Field != "epoch" {
		t.Fatalf("reading a record with epoch 0: %s %v", r.Reply, r.Err)
	}
}

// A version 2 record is kept as lane/src/store/dynamodb.rs keeps it: the counters as N
// (zeros included) and the queue as S of its JSON text ("[]" when empty).
func TestItemLayoutVersion2(t *testing.T) {
	c := client(server.endpoint, nil, 3)
	s := dynamodbstore.New(c, table)
	ctx := context.Background()
	rec := writelane.LeaseRecord{Version: 2, Owner: "host:1:a", Epoch: 3, Rvn: 41, LeaseMs: 10000, Beat: 4, NextTicket: 12, HoldMs: 350,
		Queue: []writelane.Ticket{{Owner: "host:2:b", Ticket: 9, Beat: 3}, {Owner: "host:3:<c>", Ticket: 10}, {Owner: "host:4:d", Ticket: 11, Beat: 7}}}
	attributes := func(key string) map[string]string {
		out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"key": &types.AttributeValueMemberS{Value: key}}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for name, v := range out.Item {
			switch v := v.(type) {
			case *types.AttributeValueMemberS:
				got[name] = "S:" + v.Value
			case *types.AttributeValueMemberN:
				got[name] = "N:" + v.Value
			case *types.AttributeValueMemberNULL:
				got[name] = "NULL"
			}
		}
		return got
	}
	if ok, _, err := s.PutIfAbsent(ctx, "role/layout-v2", rec); !ok || err != nil {
		t.Fatal(ok, err)
	}
	want := map[string]string{"key": "S:role/layout-v2", "owner": "S:host:1:a", "epoch": "N:3", "rvn": "N:41",
		"lease_ms": "N:10000", "committed_token": "NULL", "holder": "NULL", "version": "N:2", "beat": "N:4",
		"next_ticket": "N:12", "hold_ms": "N:350",
		"queue": `S:[{"owner":"host:2:b","ticket":9,"beat":3},{"owner":"host:3:<c>","ticket":10,"beat":0},{"owner":"host:4:d","ticket":11,"beat":7}]`}
	if got := attributes("role/layout-v2"); !reflect.DeepEqual(got, want) {
		t.Fatalf("item %v\nwant %v", got, want)
	}
	if got, err := s.Get(ctx, "role/layout-v2"); err != nil || !got.Equal(&rec) {
		t.Fatalf("read back %+v %v", got, err)
	}
	bare := writelane.LeaseRecord{Version: 2, Owner: "", Epoch: 3, Rvn: 42, LeaseMs: 10000}
	if ok, _, err := s.CompareAndSwap(ctx, "role/layout-v2", 41, bare); !ok || err != nil {
		t.Fatal(ok, err)
	}
	got := attributes("role/layout-v2")
	for name, w := range map[string]string{"version": "N:2", "beat": "N:0", "next_ticket": "N:0", "hold_ms": "N:0", "queue": "S:[]"} {
		if got[name] != w {
			t.Errorf("attribute %s = %q, want %q", name, got[name], w)
		}
	}
	if back, err := s.Get(ctx, "role/layout-v2"); err != nil || !back.Equal(&bare) || back.Version != 2 {
		t.Fatalf("read back %+v %v", back, err)
	}
}
