// Package writelane embeds writelane, a write-discipline engine for cloud control
// planes, through its C library (libwritelane, linked statically with cgo).
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
// Lane.Retryer plugs the same policy into an AWS SDK for Go v2 client as its aws.Retryer.
// Engine is the sans-IO engine for hosts with their own event loop.
//
// Build: the package links ../../target/release/libwritelane.a (relative to this
// directory); build it first with `cargo build --release -p writelane-c` from the
// repository root. No LD_LIBRARY_PATH is needed.
package writelane
