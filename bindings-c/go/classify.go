package writelane

import (
	"context"
	"errors"
	"net"
)

// FailureOf describes an error the way the engine needs it, without importing any SDK:
//
//   - a *Failure anywhere in the chain is used as it is;
//   - an error with `ErrorCode() string` (smithy-go's APIError, which every AWS SDK for
//     Go v2 service error implements) gives the code;
//   - an error with `HTTPStatusCode() int` (the SDK's ResponseError) gives the status;
//   - a timeout (`Timeout() bool` true, context.DeadlineExceeded) is an unknown outcome:
//     the request may have landed;
//   - a connection error before any reply (a *net.OpError from dialing) is code
//     ConnectionError, which the default code table retries as transient.
func FailureOf(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	out := &Failure{}
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		out.Code = coded.ErrorCode()
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		out.HTTPStatus = status.HTTPStatusCode()
	}
	if out.Code == "" && out.HTTPStatus == 0 {
		var op *net.OpError
		var timeout interface{ Timeout() bool }
		switch {
		case errors.As(err, &op) && op.Op == "dial":
			out.Code = "ConnectionError"
		case errors.Is(err, context.DeadlineExceeded),
			errors.As(err, &timeout) && timeout.Timeout():
			out.OutcomeUnknown = true
		}
	}
	return out
}
