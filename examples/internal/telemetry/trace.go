package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SetupTracing installs an OpenTelemetry tracer provider and the W3C
// trace-context and baggage propagators as the process's globals (what
// otelhttp and otel.Tracer use), configured from the standard environment
// variables, and returns the function that flushes and stops it.
//
//   - OTEL_SDK_DISABLED=true: nothing is installed.
//   - OTEL_TRACES_EXPORTER: "otlp" exports over OTLP/HTTP; "none" exports
//     nothing. Unset, it is "otlp" when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else "none": no exporter
//     by default. Spans still get IDs, so logs carry trace_id and span_id.
//   - OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: only http/protobuf is built in
//     (gRPC would pull a gRPC stack into every example); grpc is an error
//     that says so. The OTLP exporter reads the other OTEL_EXPORTER_OTLP_*
//     variables (endpoint, headers, timeout, compression, certificate).
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the resource;
//     service defaults the name. OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_*
//     are read by the SDK.
//
// Errors: an unknown exporter or protocol, or an exporter that cannot be
// built, before anything is installed.
func SetupTracing(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	nop := func(context.Context) error { return nil }
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nop, nil
	}
	exporter := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))
	if exporter == "" {
		exporter = "none"
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			exporter = "otlp"
		}
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	opts := []sdktrace.TracerProviderOption{}
	switch exporter {
	case "none":
	case "otlp":
		switch protocol {
		case "", "http/protobuf":
		case "grpc":
			return nil, errors.New("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not built into these examples; use http/protobuf (the collector's port 4318)")
		default:
			return nil, fmt.Errorf("telemetry: OTLP protocol %q (want http/protobuf)", protocol)
		}
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	default:
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q (want otlp or none)", exporter)
	}
	// Later options win: the environment overrides the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}
