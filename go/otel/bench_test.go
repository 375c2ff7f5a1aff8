package otel_test

import (
	"context"
	"testing"

	writelane "github.com/writelane/writelane/go"
	wlotel "github.com/writelane/writelane/go/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// The policy of the writelane package's BenchmarkLaneRun.
const benchPolicy = `{"preset":"iam","retry":{"conflict":{"base_ms":1,"cap_ms":1,"jitter":"none"}},"spike":{"enabled":false},"budget":{"enabled":false},"tokens":{"handoff":false}}`

// BenchmarkLaneRun of the writelane package (one uncontended Run: submit, one write, finish)
// with the Observer on: the real SDK, every span sampled and handed to an exporter that
// drops it, metrics aggregated for a ManualReader.
func BenchmarkLaneRunObserved(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	l, err := writelane.New(benchPolicy, writelane.WithSeed(1),
		writelane.WithObserver(wlotel.NewObserver(wlotel.WithMeterProvider(mp), wlotel.WithTracerProvider(tp))))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	write := func(context.Context, writelane.Attempt) error { return nil }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.Run(ctx, "role/a", write); err != nil {
			b.Fatal(err)
		}
	}
}
