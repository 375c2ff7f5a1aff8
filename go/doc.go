// Package writelane embeds writelane, a write-discipline engine for cloud control
// planes: its C library compiled to WebAssembly and run by wazero, in pure Go (or, with
// the writelane_cgo build tag, the static C library linked with cgo).
//
// Automation that mutates the same IAM role, user or policy from several places at once
// gets ConcurrentModification (HTTP 409). A Lane serialises writers per entity, re-reads
// before every retry, backs off with jitter per error class and keeps retry budgets:
//
//	lane, err := writelane.New(`"iam"`)
//	if err != nil { ... }
//	defer lane.Close()
//	err = lane.Run(ctx, "role/deploy", func(ctx context.Context, a writelane.Attempt) error {
//		return putRolePolicy(ctx) // read-modify-write; any AWS SDK error is understood
//	})
//	if errors.Is(err, writelane.ErrGaveUp) { ... }
//
// Lane.Update is group commit: concurrent changes to one entity (a statement put into a
// policy, a trust principal, tags: PutStatement, AddTrustPrincipal, SetTags) ride in one
// read and one write; the change function must be pure, as it may run more than once, on
// fresher documents.
//
// Lane.Retryer plugs the same policy into an AWS SDK for Go v2 client as its aws.Retryer.
// Engine is the sans-IO engine for hosts with their own event loop.
//
// Build: nothing beyond `go get github.com/writelane/writelane/go`; CGO_ENABLED=0 and
// cross-compiling work. With -tags writelane_cgo the package links libwritelane.a found
// by pkg-config as writelane-static (see the README).
package writelane
