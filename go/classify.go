package writelane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
)

// FailureOf describes an error the way the engine needs it, without importing any SDK:
//
//   - a *Failure anywhere in the chain is used as it is;
//   - an error with `ErrorCode() string` (smithy-go's APIError, which every AWS SDK for
//     Go v2 service error implements) gives the code;
//   - an error with `HTTPStatusCode() int` (the SDK's ResponseError) gives the status, and
//     its `HTTPResponse()` (smithy-go's Response, embedding the *http.Response) gives the
//     `x-amz-retry-after` header, the retry-after hint the SDK's own retryer honours;
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
		if h := retryAfterHeader(status); h != "" {
			out.RetryAfterHeader = &h
		}
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

// retryAfterHeader reads `x-amz-retry-after` from the HTTP response of an SDK error: its
// HTTPResponse method returns smithy-go's Response, which embeds *http.Response. The
// SDK's types are reached by reflection, so that this package imports no SDK.
func retryAfterHeader(err any) (header string) {
	defer func() {
		if recover() != nil {
			header = ""
		}
	}()
	m := reflect.ValueOf(err).MethodByName("HTTPResponse")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return ""
	}
	v := m.Call(nil)[0]
	resp, ok := v.Interface().(*http.Response)
	for depth := 0; !ok && depth < 2 && v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct; depth++ {
		v = v.Elem().FieldByName("Response") // smithyhttp.Response{*http.Response}
		if !v.IsValid() || !v.CanInterface() {
			return ""
		}
		resp, ok = v.Interface().(*http.Response)
	}
	if !ok || resp == nil {
		return ""
	}
	return resp.Header.Get("X-Amz-Retry-After")
}
