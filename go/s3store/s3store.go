// Package s3store is a writelane lease store in an S3 bucket, through the AWS SDK for
// Go v2, for writers on different machines: every AWS account has S3, so this store
// needs no table.
//
// Layout: one object per entity at prefix + key, whose body is the record's JSON text as
// the core writes it (compact, the fields in the order version, owner, epoch, rvn,
// lease_ms, committed_token, holder, beat, next_ticket, hold_ms, queue, with version and
// the version 2 fields only in version 2 records and there only when not zero or empty).
// The Rust, Python and Node adapters read and write the same
// objects, so processes in different languages can share one bucket and prefix.
//
// The choice: the record's rvn lives inside the object (every binding reads the same
// record) and the ETag is only the condition. Get is GetObject (S3 reads are strongly
// consistent; no object is no record). PutIfAbsent is PutObject with If-None-Match: *.
// CompareAndSwap(expectedRvn) is PutObject with If-Match: <etag>, where the ETag is that
// of the object whose body holds expectedRvn: the one this store last read or wrote for
// the key, or else read now (a record at another rvn is refused without writing). An
// ETag names the exact body and every write draws a fresh rvn, so the put lands only if
// the record still has the expected rvn.
//
// Replies: a 412 PreconditionFailed is a refusal, reported with the record read right
// after it (a 404 on If-Match: refused, no record); a 409 ConditionalRequestConflict (a
// concurrent conditional write to the key) wraps writelane.ErrStoreUnavailable: nothing
// was written, and the lease client tries again after a poll. Nothing is ever deleted (a
// release is a compare-and-swap to a free record), so an old holder's epoch cannot come
// back. Other failures: a failed read, a request never sent and a 4xx are unavailable; a
// write with no reply (a timeout, a dropped connection, a 5xx) is lost.
//
// Permissions: s3:GetObject and s3:PutObject on arn:aws:s3:::BUCKET/PREFIX*.
package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	writelane "github.com/writelane/writelane/go"
)

// API is the part of *s3.Client the store uses.
type API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Store is a writelane.Store in one S3 bucket under one prefix. Safe for concurrent use.
type Store struct {
	client API
	bucket string
	prefix string

	mu sync.Mutex
	// etags holds, per key, the rvn and ETag of the object as last read or written here.
	etags map[string]seen
}

type seen struct {
	rvn  uint64
	etag string
}

var _ writelane.Store = (*Store)(nil)

// New returns a store in bucket, one object per entity at prefix + key, through client.
// Build the client without SDK retries (RetryMaxAttempts 1: the engine does its own
// retrying), with checksums only where S3 requires them
// (aws.RequestChecksumCalculationWhenRequired, as the other bindings do) and, against a
// local server such as moto or MinIO, with UsePathStyle. The bucket must exist. Requests
// are bounded by the context the lane passes (its policy's lease.store_timeout_ms).
func New(client API, bucket, prefix string) *Store {
	return &Store{client: client, bucket: bucket, prefix: prefix, etags: map[string]seen{}}
}

// ObjectKey is the object that holds the record of key: prefix + key.
func (s *Store) ObjectKey(key string) string { return s.prefix + key }

// Body is the object body of record r: the core's JSON text of it, byte for byte what the
// other bindings write (HTML characters and U+2028, U+2029 unescaped, as the core leaves
// them).
func Body(r writelane.LeaseRecord) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return unescapeSeparators(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// unescapeSeparators turns the \u2028 and \u2029 escapes encoding/json always writes back
// into the characters, which the core (serde_json), Python and JavaScript write as they
// are. It walks escape by escape, so an escaped backslash followed by "u2028" is kept.
func unescapeSeparators(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if rest := b[i+1:]; len(rest) >= 5 && (string(rest[:5]) == "u2028" || string(rest[:5]) == "u2029") {
			if rest[4] == '8' {
				out = append(out, "\u2028"...)
			} else {
				out = append(out, "\u2029"...)
			}
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

func (s *Store) remember(key string, rvn uint64, etag *string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if etag != nil && *etag != "" {
		s.etags[key] = seen{rvn: rvn, etag: *etag}
	} else {
		delete(s.etags, key)
	}
}

func (s *Store) cached(key string, rvn uint64) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.etags[key]
	if !ok || e.rvn != rvn {
		return "", false
	}
	return e.etag, true
}

func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// classify wraps err with writelane.ErrStoreUnavailable when the request surely did not
// change the bucket (no connection, or S3 answered with a 4xx), and with
// writelane.ErrStoreLost otherwise (a timeout, a dropped connection, a 5xx: it may have
// been applied).
func classify(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", writelane.ErrStoreUnavailable, err)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("%w: %w", writelane.ErrStoreUnavailable, err)
	}
	if st := status(err); st >= 400 && st < 500 {
		return fmt.Errorf("%w: %w", writelane.ErrStoreUnavailable, err)
	}
	return fmt.Errorf("%w: %w", writelane.ErrStoreLost, err)
}

// read returns the record at key and its ETag (nil, nil when there is no object). Every
// failure wraps writelane.ErrStoreUnavailable: a read changes nothing.
func (s *Store) read(ctx context.Context, key string) (*writelane.LeaseRecord, *string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.ObjectKey(key))})
	if err != nil {
		var missing *types.NoSuchKey
		if errors.As(err, &missing) || code(err) == "NoSuchKey" {
			s.remember(key, 0, nil)
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("%w: s3://%s/%s: %w", writelane.ErrStoreUnavailable, s.bucket, s.ObjectKey(key), err)
	}
	body, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: s3://%s/%s: reading the body: %w", writelane.ErrStoreUnavailable, s.bucket, s.ObjectKey(key), err)
	}
	rec, err := writelane.ParseLeaseRecord(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: s3://%s/%s: %w", writelane.ErrStoreUnavailable, s.bucket, s.ObjectKey(key), err)
	}
	s.remember(key, rec.Rvn, out.ETag)
	return rec, out.ETag, nil
}

// Get reads the record at key (S3 reads are strongly consistent); nil when there is none.
func (s *Store) Get(ctx context.Context, key string) (*writelane.LeaseRecord, error) {
	rec, _, err := s.read(ctx, key)
	return rec, err
}

// put writes record at key with If-Match: ifMatch, or If-None-Match: * when ifMatch is
// empty.
func (s *Store) put(ctx context.Context, key string, record writelane.LeaseRecord, ifMatch string) (bool, *writelane.LeaseRecord, error) {
	body, err := Body(record)
	if err != nil {
		return false, nil, fmt.Errorf("%w: %w", writelane.ErrStoreUnavailable, err)
	}
	in := &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(s.ObjectKey(key)),
		Body:        bytes.NewReader(body),
		ContentType: aws.String("application/json"),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := s.client.PutObject(ctx, in)
	if err == nil {
		s.remember(key, record.Rvn, out.ETag)
		return true, nil, nil
	}
	st, c := status(err), code(err)
	switch {
	case st == 412 || c == "PreconditionFailed":
		cur, _, rerr := s.read(ctx, key)
		if rerr != nil {
			// The condition failed, so nothing was written; only the record is unknown.
			return false, nil, fmt.Errorf("refused, and the record could not be read: %w", rerr)
		}
		return false, cur, nil
	case c == "NoSuchKey" || (st == 404 && c != "NoSuchBucket"):
		return false, nil, nil // If-Match on an object that is gone
	case c == "ConditionalRequestConflict":
		return false, nil, fmt.Errorf("%w: a concurrent conditional write; nothing was written: %w", writelane.ErrStoreUnavailable, err)
	}
	return false, nil, classify(err)
}

// PutIfAbsent creates the record at key if there is none (If-None-Match: *), else returns
// the record found.
func (s *Store) PutIfAbsent(ctx context.Context, key string, record writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return s.put(ctx, key, record, "")
}

// CompareAndSwap replaces the record at key if its rvn is expectedRvn (If-Match on the
// ETag of the object that holds it), else returns the record found (nil when none).
func (s *Store) CompareAndSwap(ctx context.Context, key string, expectedRvn uint64, record writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	etag, ok := s.cached(key, expectedRvn)
	if !ok {
		cur, tag, err := s.read(ctx, key)
		switch {
		case err != nil:
			return false, nil, err
		case cur == nil:
			return false, nil, nil
		case cur.Rvn != expectedRvn:
			return false, cur, nil
		case tag == nil || *tag == "":
			return false, nil, fmt.Errorf("%w: s3://%s/%s came back without an ETag; nothing was written", writelane.ErrStoreUnavailable, s.bucket, s.ObjectKey(key))
		}
		etag = *tag
	}
	return s.put(ctx, key, record, etag)
}
