package extauthz

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// ServiceName is the gRPC service Envoy calls.
const ServiceName = "envoy.service.auth.v3.Authorization"

// healthService is the standard gRPC health service (grpc.health.v1.Health)
// for "" (the server) and ServiceName. Its status is the readiness function
// asked at each Check, so it never lags behind the policy and issuers; Watch
// streams ask it every interval. Once the server stops, everything is
// NOT_SERVING and Watch streams end, so that a graceful stop is not held
// up by them.
type healthService struct {
	healthpb.UnimplementedHealthServer
	ready    func() error
	interval time.Duration

	stopOnce sync.Once
	stopped  chan struct{}
}

func newHealthService(ready func() error, interval time.Duration) *healthService {
	return &healthService{ready: ready, interval: interval, stopped: make(chan struct{})}
}

// stop turns every status to NOT_SERVING for good and ends Watch streams.
func (h *healthService) stop() { h.stopOnce.Do(func() { close(h.stopped) }) }

func (h *healthService) status(service string) healthpb.HealthCheckResponse_ServingStatus {
	if service != "" && service != ServiceName {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	select {
	case <-h.stopped:
		return healthpb.HealthCheckResponse_NOT_SERVING
	default:
	}
	if h.ready != nil && h.ready() != nil {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

func (h *healthService) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st := h.status(req.GetService())
	if st == healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		return nil, status.Error(codes.NotFound, "unknown service")
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

func (h *healthService) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	return &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{
		"":          {Status: h.status("")},
		ServiceName: {Status: h.status(ServiceName)},
	}}, nil
}

func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ticker := time.NewTicker(h.interval)
	defer ticker.Stop()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		st := h.status(req.GetService())
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-h.stopped:
			if last != healthpb.HealthCheckResponse_NOT_SERVING && last != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
				_ = stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING})
			}
			return status.Error(codes.Unavailable, "the server is stopping")
		case <-ticker.C:
		}
	}
}
