// Package awsv2 puts the calls of an AWS SDK for Go v2 client in writelane's lanes with no
// change at the call sites:
//
//	client := iam.NewFromConfig(cfg, awsv2.WithLanes(lane))
//
// Every write operation of the client then runs in the lane of the entity it writes (the
// core's entity table, the one every binding and `writelane trail` use, says which), using
// the lane's store, so writers in other processes and on other machines wait for it too:
//
//   - read operations (Get*, List*, ...) and calls of services without a table go straight
//     through, with no lane and no lane events;
//   - an operation that writes two entities (AddUserToGroup, AttachRolePolicy) takes both
//     lanes, in the canonical order of their keys, so two such writers never wait on each
//     other in a cycle;
//   - a conflict (ConcurrentModification) is retried inside the lane, which is held from
//     the first attempt to the last, with the lane's backoff, attempts and budget; other
//     errors go back to the caller as the SDK returned them, after the client's own
//     retryer (which does not retry conflicts) had its say;
//   - cancelling the call's context, or its deadline passing, releases the lane at once
//     (and the shared lease, with a store);
//   - an operation the table does not know, or a write whose entity cannot be determined
//     from its input, goes through unserialised and is counted (Stats), never refused.
//
// Lanes serialise calls. A read-modify-write made of two SDK calls (GetRolePolicy, then
// PutRolePolicy) is still two calls, each in the lane on its own: another writer may
// write between them. Only Lane.Run or Lane.Update holds the lane across the read and the
// write.
//
// This package is a module of its own, so that the main writelane module keeps no
// dependency on the AWS SDK.
package awsv2

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go/middleware"

	writelane "github.com/writelane/writelane/go"
)

// MiddlewareID is the ID of the middleware in the Initialize step of an operation's stack.
const MiddlewareID = "writelane.Lanes"

// Option configures New.
type Option func(*Lanes)

// WithEntityContext says which account (and partition, and calling IAM user) the client
// acts in. With an account, lane keys are ARNs (arn:aws:iam::123456789012:role/app);
// without one, type/name (role/app). Every writer sharing a lease store must key the
// same way.
func WithEntityContext(c writelane.EntityContext) Option {
	return func(l *Lanes) { l.ectx = c }
}

// WithUnserialised calls f for each call that goes through without a lane although its
// service has a table: an operation the table does not know (reason empty), or a write
// whose entity could not be determined (reason says why). f runs on the caller's
// goroutine and must not block.
func WithUnserialised(f func(service, operation, reason string)) Option {
	return func(l *Lanes) { l.onUnserialised = f }
}

// Lanes is the middleware over one Lane. One Lanes may be installed on any number of
// clients; it is safe for concurrent use.
type Lanes struct {
	lane           *writelane.Lane
	ectx           writelane.EntityContext
	onUnserialised func(service, operation, reason string)

	ops sync.Map // service + "\x00" + operation -> *opInfo

	// found caches the table's answers for writes by service, operation and the
	// parameters it read: the table is a pure function of them (and of ectx, fixed).
	mu    sync.Mutex
	found map[string]*writelane.CallEntities

	serialised, passed, unserialised, failed atomic.Uint64
}

// opInfo is what the table says about an operation, whatever its input.
type opInfo struct {
	access writelane.Access
	params []string
}

// Stats counts the calls the middleware saw.
type Stats struct {
	// Serialised is the number of write calls run in their entities' lanes.
	Serialised uint64
	// Passed is the number of reads, calls of services without a table, and writes that
	// name no existing entity (one only their response names): no lane needed.
	Passed uint64
	// Unserialised is the number of calls that went through without a lane although they
	// may write: operations the table does not know and writes whose entity could not
	// be determined.
	Unserialised uint64
	// TableErrors is the number of calls the entity table could not be asked about (an
	// error from the library, such as a closed lane's): they went through unserialised
	// too, and are counted in Unserialised.
	TableErrors uint64
}

// New returns the middleware over lane.
func New(lane *writelane.Lane, opts ...Option) *Lanes {
	l := &Lanes{lane: lane}
	for _, o := range opts {
		o(l)
	}
	return l
}

// WithLanes is New(lane, opts...).WithLanes(): the one-liner for an IAM client,
// iam.NewFromConfig(cfg, awsv2.WithLanes(lane)).
func WithLanes(lane *writelane.Lane, opts ...Option) func(*iam.Options) {
	return New(lane, opts...).WithLanes()
}

// WithLanes returns the option that installs the middleware on an IAM client:
// iam.NewFromConfig(cfg, lanes.WithLanes()).
func (l *Lanes) WithLanes() func(*iam.Options) {
	return func(o *iam.Options) { o.APIOptions = append(o.APIOptions, l.APIOption()) }
}

// APIOption returns the middleware as an API option, for any client's Options.APIOptions
// or for aws.Config.APIOptions (every client made from the config): calls of services
// without a table pass straight through.
func (l *Lanes) APIOption() func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(l, middleware.After)
	}
}

// Stats returns the counts so far.
func (l *Lanes) Stats() Stats {
	return Stats{Serialised: l.serialised.Load(), Passed: l.passed.Load(),
		Unserialised: l.unserialised.Load(), TableErrors: l.failed.Load()}
}

// ID is the middleware's ID (MiddlewareID).
func (l *Lanes) ID() string { return MiddlewareID }

// HandleInitialize runs the rest of the stack (serialisation, the SDK's retry loop, the
// HTTP call) inside the lanes of the call's entities.
func (l *Lanes) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (
	middleware.InitializeOutput, middleware.Metadata, error,
) {
	service, operation := middleware.GetServiceID(ctx), middleware.GetOperationName(ctx)
	info, err := l.info(service, operation)
	if err != nil {
		return l.unserialisedCall(ctx, in, next, service, operation, err.Error(), true)
	}
	switch info.access {
	case writelane.AccessWrite:
	case writelane.AccessUnknown:
		return l.unserialisedCall(ctx, in, next, service, operation, "", false)
	default:
		l.passed.Add(1)
		return next.HandleInitialize(ctx, in)
	}
	found, err := l.entities(service, operation, paramsJSON(in.Parameters, info.params))
	switch {
	case err != nil:
		return l.unserialisedCall(ctx, in, next, service, operation, err.Error(), true)
	case found.Undetermined != "":
		return l.unserialisedCall(ctx, in, next, service, operation, found.Undetermined, false)
	case len(found.Keys) == 0:
		l.passed.Add(1)
		return next.HandleInitialize(ctx, in)
	}
	l.serialised.Add(1)
	var out middleware.InitializeOutput
	var md middleware.Metadata
	call := func(ctx context.Context) error {
		var err error
		out, md, err = next.HandleInitialize(ctx, in)
		return err
	}
	err = l.run(ctx, found.Keys, call)
	return out, md, err
}

func (l *Lanes) unserialisedCall(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler,
	service, operation, reason string, tableError bool,
) (middleware.InitializeOutput, middleware.Metadata, error) {
	l.unserialised.Add(1)
	if tableError {
		l.failed.Add(1)
	}
	if l.onUnserialised != nil {
		l.onUnserialised(service, operation, reason)
	}
	return next.HandleInitialize(ctx, in)
}

// info is the table's answer for an operation whatever its input, asked once.
func (l *Lanes) info(service, operation string) (*opInfo, error) {
	key := service + "\x00" + operation
	if v, ok := l.ops.Load(key); ok {
		return v.(*opInfo), nil
	}
	found, err := writelane.EntitiesOf(service, operation, "", l.ectx)
	if err != nil {
		return nil, err
	}
	info := &opInfo{access: found.Access, params: found.Params}
	l.ops.Store(key, info)
	return info, nil
}

// maxCached bounds the cache of the table's answers; it starts afresh when full.
const maxCached = 4096

// entities is the table's answer for a write with these parameters, asked once.
func (l *Lanes) entities(service, operation, params string) (*writelane.CallEntities, error) {
	key := service + "\x00" + operation + "\x00" + params
	l.mu.Lock()
	found, ok := l.found[key]
	l.mu.Unlock()
	if ok {
		return found, nil
	}
	found, err := writelane.EntitiesOf(service, operation, params, l.ectx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.found == nil || len(l.found) >= maxCached {
		l.found = make(map[string]*writelane.CallEntities)
	}
	l.found[key] = found
	l.mu.Unlock()
	return found, nil
}

// paramsJSON is the JSON object of the named string fields of an SDK input (a pointer
// to a struct whose fields are named as the API's parameters: RoleName *string).
func paramsJSON(input any, names []string) string {
	v := reflect.ValueOf(input)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "null"
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "null"
	}
	fields := make(map[string]string, len(names))
	for _, name := range names {
		f := v.FieldByName(name)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			f = f.Elem()
		}
		if f.Kind() == reflect.String {
			fields[name] = f.String()
		}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return "null"
	}
	return string(b)
}

// passedOn is what a lane's write function returns when the call failed with an error
// that lane must not retry: no code and no status, which every policy classes as fatal.
// The call's own error is kept aside and returned to the caller.
type passedOn struct{}

func (passedOn) Error() string { return "writelane/awsv2: the call's error goes back to the caller" }

// run calls call in the lanes of keys (sorted), the first taken first. Only the innermost
// lane retries: it retries conflicts, and hands every other error back as it came. The
// outer lanes see a fatal error when the inner one failed, so they never retry the call
// themselves.
func (l *Lanes) run(ctx context.Context, keys []string, call func(context.Context) error) error {
	var callErr error // the call's last error, when it is not a conflict
	var inner error   // the inner lanes' error, for an outer lane
	err := l.lane.Run(ctx, keys[0], func(ctx context.Context, _ writelane.Attempt) error {
		if len(keys) > 1 {
			if inner = l.run(ctx, keys[1:], call); inner != nil {
				return passedOn{}
			}
			return nil
		}
		callErr = call(ctx)
		if callErr == nil {
			return nil
		}
		if class, cerr := l.lane.Engine().Classify(writelane.FailureOf(callErr)); cerr == nil && class == "conflict" {
			err := callErr
			callErr = nil
			return err
		}
		return passedOn{}
	})
	switch {
	case inner != nil:
		return inner
	case callErr != nil:
		return callErr
	}
	return err
}
