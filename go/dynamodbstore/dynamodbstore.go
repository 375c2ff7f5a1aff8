// Package dynamodbstore is a writelane lease store in a DynamoDB table, through the AWS
// SDK for Go v2, for writers on different machines.
//
// Table layout: partition key "key" (S, the entity name); one item per key with the
// attributes owner (S, "" when released), epoch (N), rvn (N), lease_ms (N),
// committed_token (S, or NULL when none) and holder (S, or NULL when none), and in
// version 2 records (the queue-like hand-off) version, beat, next_ticket, hold_ms (N,
// zeros included) and queue (S: the JSON text of the tickets, "[]" when empty). The same
// layout is used by every writelane binding, so processes in different languages can
// share one table. Expiry is judged by writelane on each reader's own clock; the table
// needs no TTL and must not have one on these items.
//
// Permissions: dynamodb:GetItem and dynamodb:PutItem on the table (plus
// dynamodb:CreateTable and dynamodb:DescribeTable for CreateTable).
package dynamodbstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	writelane "github.com/writelane/writelane/go"
)

// API is the part of *dynamodb.Client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Store is a writelane.Store in one DynamoDB table. Safe for concurrent use.
type Store struct {
	client API
	table  string
}

var _ writelane.Store = (*Store)(nil)

// New returns a store in table through client.
func New(client API, table string) *Store { return &Store{client: client, table: table} }

// CreateTable creates table with the store's key schema (partition key "key", S) in
// on-demand (PAY_PER_REQUEST) mode and waits until it is active. A table that already
// exists is fine.
func CreateTable(ctx context.Context, client *dynamodb.Client, table string) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("key"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("key"), KeyType: types.KeyTypeHash}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("writelane: create lease table %s: %w", table, err)
	}
	w := dynamodb.NewTableExistsWaiter(client)
	return w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 5*time.Minute)
}

func optional(s *string) types.AttributeValue {
	if s == nil {
		return &types.AttributeValueMemberNULL{Value: true}
	}
	return &types.AttributeValueMemberS{Value: *s}
}

func number(n uint64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatUint(n, 10)}
}

// Item is the DynamoDB item of record r at key. A version 2 record also gets version,
// beat, next_ticket, hold_ms (N, zeros included) and queue (S, the core's JSON text of the
// tickets), exactly as the Rust adapter writes them; a version 1 record keeps its six
// attributes.
func Item(key string, r writelane.LeaseRecord) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"key":             &types.AttributeValueMemberS{Value: key},
		"owner":           &types.AttributeValueMemberS{Value: r.Owner},
		"epoch":           number(r.Epoch),
		"rvn":             number(r.Rvn),
		"lease_ms":        number(r.LeaseMs),
		"committed_token": optional(r.CommittedToken),
		"holder":          optional(r.Holder),
	}
	if r.Version >= 2 {
		item["version"] = number(r.Version)
		item["beat"] = number(r.Beat)
		item["next_ticket"] = number(r.NextTicket)
		item["hold_ms"] = number(r.HoldMs)
		queue := r.Queue
		if queue == nil {
			queue = []writelane.Ticket{}
		}
		item["queue"] = &types.AttributeValueMemberS{Value: queueText(queue)}
	}
	return item
}

// queueText is the core's JSON text of a queue: compact, HTML characters unescaped as
// serde_json leaves them (owner ids are printable ASCII).
func queueText(queue []writelane.Ticket) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(queue) // strings and numbers only: cannot fail
	return strings.TrimSuffix(buf.String(), "\n")
}

// recordAttributes are the attributes Record reads: the six of version 1 and those of
// version 2.
var recordAttributes = []string{"version", "owner", "epoch", "rvn", "lease_ms", "committed_token", "holder",
	"beat", "next_ticket", "hold_ms", "queue"}

// Record reads a lease record from a DynamoDB item (nil for an empty item): its
// attributes become the record's JSON object (S as a string, N as a number, NULL or an
// absent committed_token or holder as null; queue stays the JSON text it is kept as,
// which the core takes in place of the array), which the core parses and checks
// (writelane.ParseLeaseRecord). An item that is not a lease record is a
// *writelane.RecordError naming the field.
func Record(item map[string]types.AttributeValue) (*writelane.LeaseRecord, error) {
	if len(item) == 0 {
		return nil, nil
	}
	obj := map[string]any{}
	for _, name := range recordAttributes {
		switch v := item[name].(type) {
		case nil:
		case *types.AttributeValueMemberS:
			obj[name] = v.Value
		case *types.AttributeValueMemberN:
			obj[name] = json.RawMessage(v.Value)
		case *types.AttributeValueMemberNULL:
			obj[name] = nil
		default:
			obj[name] = map[string]any{} // no lease field has this type: the core refuses it
		}
	}
	text, err := json.Marshal(obj)
	if err != nil { // an N attribute that is not a JSON number
		return nil, &writelane.RecordError{Field: "$", Message: fmt.Sprintf("invalid lease record: %v", err)}
	}
	return writelane.ParseLeaseRecord(text)
}

// classify wraps err with writelane.ErrStoreUnavailable when the request surely did not
// change the table (no connection, or the service refused it with a client error), and
// with writelane.ErrStoreLost otherwise (a timeout, a dropped connection, a server error:
// it may have been applied).
func classify(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w: %w", writelane.ErrStoreUnavailable, err)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("%w: %w", writelane.ErrStoreUnavailable, err)
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorFault() == smithy.FaultClient {
		return fmt.Errorf("%w: %w", writelane.ErrStoreUnavailable, err)
	}
	return fmt.Errorf("%w: %w", writelane.ErrStoreLost, err)
}

// Get reads the record at key with a strongly consistent read.
func (s *Store) Get(ctx context.Context, key string) (*writelane.LeaseRecord, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{"key": &types.AttributeValueMemberS{Value: key}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, classify(err)
	}
	rec, err := Record(out.Item)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %w", writelane.ErrStoreUnavailable, s.table, key, err)
	}
	return rec, nil
}

// put writes record at key under condition. When the condition fails it returns the item
// found (from ALL_OLD, else by a consistent read), as it is: a refusal by the very record
// this request wrote (the SDK retried it after its first try landed) is the core's to
// read as done.
func (s *Store) put(ctx context.Context, key string, record writelane.LeaseRecord, condition string, values map[string]types.AttributeValue) (bool, *writelane.LeaseRecord, error) {
	in := &dynamodb.PutItemInput{
		TableName:                           aws.String(s.table),
		Item:                                Item(key, record),
		ConditionExpression:                 aws.String(condition),
		ExpressionAttributeNames:            map[string]string{},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
		in.ExpressionAttributeNames["#rvn"] = "rvn"
	} else {
		in.ExpressionAttributeNames["#k"] = "key"
	}
	_, err := s.client.PutItem(ctx, in)
	if err == nil {
		return true, nil, nil
	}
	var failed *types.ConditionalCheckFailedException
	if !errors.As(err, &failed) {
		return false, nil, classify(err)
	}
	var cur *writelane.LeaseRecord
	if len(failed.Item) > 0 {
		cur, err = Record(failed.Item)
		if err != nil {
			return false, nil, fmt.Errorf("%w: %s %q: %w", writelane.ErrStoreUnavailable, s.table, key, err)
		}
	} else if cur, err = s.Get(ctx, key); err != nil {
		// The condition failed, so nothing was written; only the record is unknown.
		return false, nil, fmt.Errorf("%w: reading the record after a refused write: %w", writelane.ErrStoreLost, err)
	}
	return false, cur, nil
}

// PutIfAbsent creates the record at key if there is none (attribute_not_exists), else
// returns the record found.
func (s *Store) PutIfAbsent(ctx context.Context, key string, record writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return s.put(ctx, key, record, "attribute_not_exists(#k)", nil)
}

// CompareAndSwap replaces the record at key if its rvn is expectedRvn (#rvn = :expected),
// else returns the record found (nil when none).
func (s *Store) CompareAndSwap(ctx context.Context, key string, expectedRvn uint64, record writelane.LeaseRecord) (bool, *writelane.LeaseRecord, error) {
	return s.put(ctx, key, record, "#rvn = :expected", map[string]types.AttributeValue{":expected": number(expectedRvn)})
}
