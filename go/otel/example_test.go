package otel_test

import (
	"context"
	"fmt"

	writelane "github.com/writelane/writelane/go"
	wlotel "github.com/writelane/writelane/go/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// One option switches telemetry on; here with the SDK reading into memory.
func ExampleNewObserver() {
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewInMemoryExporter()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))

	lane, err := writelane.New(`{"preset": "iam", "retry": {"conflict": {"base_ms": 1}}}`,
		writelane.WithObserver(wlotel.NewObserver(wlotel.WithMeterProvider(mp), wlotel.WithTracerProvider(tp))))
	if err != nil {
		panic(err)
	}
	defer lane.Close()
	conflicts := 1
	_ = lane.Run(context.Background(), "role/deploy", func(ctx context.Context, a writelane.Attempt) error {
		if conflicts > 0 {
			conflicts--
			return &writelane.Failure{Code: "ConcurrentModification", HTTPStatus: 409}
		}
		return nil
	})

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			fmt.Println(m.Name, sum.DataPoints[0].Value)
		}
	}
	for _, span := range spans.GetSpans() {
		fmt.Print(span.Name, ":")
		for _, ev := range span.Events {
			fmt.Print(" ", ev.Name)
		}
		fmt.Println()
	}
	// Unordered output:
	// writelane.writes 2
	// writelane.conflicts 1
	// writelane.retries 1
	// writelane.run: writelane.attempt writelane.conflict writelane.backoff writelane.attempt
}
