package extauthz

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestHealthFollowsReadiness(t *testing.T) {
	var notReady atomic.Bool
	ready := func() error {
		if notReady.Load() {
			return errors.New("no policy")
		}
		return nil
	}
	ts := startServer(t, &recorder{}, Options{Ready: ready, HealthInterval: 5 * time.Millisecond})
	statusOf := func(t *testing.T, service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := ts.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	for _, service := range []string{"", ServiceName} {
		if got := statusOf(t, service); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%q = %v while ready", service, got)
		}
	}
	notReady.Store(true)
	for _, service := range []string{"", ServiceName} {
		if got := statusOf(t, service); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("%q = %v while not ready", service, got)
		}
	}
	notReady.Store(false)

	t.Run("fail/an unknown service is NOT_FOUND", func(t *testing.T) {
		_, err := ts.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "grpc.other.v1.Other"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("= %v", err)
		}
	})
	t.Run("ok/list names both", func(t *testing.T) {
		resp, err := ts.health.List(t.Context(), &healthpb.HealthListRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetStatuses()) != 2 || resp.GetStatuses()[ServiceName].GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("= %v", resp.GetStatuses())
		}
	})
	t.Run("ok/watch sees readiness change, and the stop", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		stream, err := ts.health.Watch(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
		if err != nil {
			t.Fatal(err)
		}
		next := func() healthpb.HealthCheckResponse_ServingStatus {
			t.Helper()
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetStatus()
		}
		if got := next(); got != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("first = %v", got)
		}
		notReady.Store(true)
		if got := next(); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("after readiness was lost = %v", got)
		}
		notReady.Store(false)
		if got := next(); got != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("after readiness came back = %v", got)
		}
		// Stopping the server ends the watch (it would otherwise hold up the
		// graceful stop) after saying NOT_SERVING.
		stopped := make(chan error, 1)
		go func() { stopped <- ts.stop() }()
		if got := next(); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("on stop = %v", got)
		}
		if _, err := stream.Recv(); err == nil {
			t.Error("the watch went on after the stop")
		}
		if err := <-stopped; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
}

func TestHealthWithoutReadinessIsServing(t *testing.T) {
	ts := startServer(t, &recorder{}, Options{})
	resp, err := ts.health.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("= %v %v", resp, err)
	}
}
