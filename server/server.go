package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/replication/grpctransport"
)

// Server is one Sluice node: the client gRPC API, the HTTP endpoint and
// the core (replication host and cluster metadata) beneath them.
type Server struct {
	cfg    Config
	logger *slog.Logger
	reg    *prometheus.Registry

	grpc     *grpc.Server
	internal *grpc.Server // node-to-node API
	// raftTransport is the Raft transport this server made (nil when
	// injected, or for a node alone); closed after the core.
	raftTransport *grpctransport.Transport
	peers         peers
	joined        joinedPeers // addresses learned by joining (join.go)
	leaderView    leaderView  // cluster-wide led partitions (leaders.go)
	health        *health.Server
	http          *http.Server
	core          *core // nil until Start
	metrics       *brokerMetrics
	// opened is core once open, for the internal API, which serves while
	// Start is still opening the core.
	opened atomic.Pointer[core]

	// stop is closed by Shutdown: long polls and streams end.
	stop     chan struct{}
	stopOnce sync.Once

	mu struct {
		sync.Mutex
		started  bool
		shutdown bool
		lis      net.Listener
		httpLis  net.Listener
		intLis   net.Listener
		ready    bool
	}
	wg sync.WaitGroup // serving goroutines
}

// Both listeners use static HTTP/2 flow-control windows, the sizes of the
// node-to-node transport: gRPC's dynamic windows ping the client once per
// round trip while requests arrive, and never stop on a stream of small
// ones (grpctransport.StreamWindow).
var (
	staticStreamWindow = grpc.StaticStreamWindowSize(grpctransport.StreamWindow)
	staticConnWindow   = grpc.StaticConnWindowSize(grpctransport.ConnWindow)
)

// New validates cfg and builds a server; Start opens the data and listens.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, reg: cfg.Registry, stop: make(chan struct{})}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.metrics = newBrokerMetrics(s.reg)

	reqMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}),
	))
	if err := s.reg.Register(reqMetrics); err != nil {
		return nil, fmt.Errorf("server: register request metrics: %w", err)
	}
	rlog := slogLogger(s.logger)
	recov := recovery.WithRecoveryHandlerContext(recoveryHandler(s.logger))
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		staticStreamWindow, staticConnWindow,
		grpc.ForceServerCodecV2(newServingCodec()), // servebuf.go
		// Clients may ping idle connections (long polls, quiet streams)
		// every 10s; the server pings after a minute of silence.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(
			reqMetrics.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(rlog, loggingOptions()...),
			recovery.UnaryServerInterceptor(recov),
			contextCodeUnary,
			validationUnary,
		),
		grpc.ChainStreamInterceptor(
			reqMetrics.StreamServerInterceptor(),
			logging.StreamServerInterceptor(rlog, loggingOptions()...),
			recovery.StreamServerInterceptor(recov),
			contextCodeStream,
			validationStream,
		),
	)
	s.internal = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		staticStreamWindow, staticConnWindow,
		grpc.ChainUnaryInterceptor(
			logging.UnaryServerInterceptor(rlog, loggingOptions()...),
			recovery.UnaryServerInterceptor(recov),
			contextCodeUnary,
		),
	)
	s.internal.RegisterService(&internalServiceDesc, s)
	if quorum, _ := parseQuorum(cfg.ControllerQuorum); (len(quorum) > 1 || len(cfg.Join) > 0) && cfg.Transport == nil {
		t, err := s.newRaftTransport(quorum)
		if err != nil {
			return nil, err
		}
		t.RegisterService(s.internal)
		s.raftTransport = t
		s.cfg.Transport = t
	}
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.registerServices()
	reqMetrics.InitializeMetrics(s.grpc)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// Start opens the node's data, joins (or bootstraps) the cluster, and
// serves the client API and the HTTP endpoint. Its goroutines stop in
// Shutdown.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.started || s.mu.shutdown {
		return errors.New("server: already started")
	}
	s.mu.started = true
	lis, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", s.cfg.ListenAddr, err)
	}
	httpLis, err := net.Listen("tcp", s.cfg.HTTPListenAddr)
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("server: listen %s: %w", s.cfg.HTTPListenAddr, err)
	}
	intLis, err := net.Listen("tcp", s.cfg.InternalListenAddr)
	if err != nil {
		_ = lis.Close()
		_ = httpLis.Close()
		return fmt.Errorf("server: listen %s: %w", s.cfg.InternalListenAddr, err)
	}
	s.mu.intLis = intLis
	// Other nodes may forward to this one while it opens: the internal
	// API answers UNAVAILABLE until the core is open.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.internal.Serve(intLis); err != nil {
			s.logger.Error("internal API stopped", "err", err)
		}
	}()
	advertise := s.cfg.AdvertiseAddr
	if advertise == "" {
		advertise = lis.Addr().String()
	}
	cfg := s.cfg
	if len(cfg.Join) > 0 {
		jctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		ji, err := s.join(jctx, cluster.NodeInfo{ID: cfg.NodeID, Addr: advertise, InternalAddr: intLis.Addr().String(), Rack: cfg.Rack})
		cancel()
		if err != nil {
			_ = lis.Close()
			_ = httpLis.Close()
			s.internal.Stop()
			return err
		}
		s.joined.set(ji.Nodes)
		cfg.ControllerVoters = ji.Voters
	}
	c, err := openCore(cfg, advertise, intLis.Addr().String(), s.forwardMetadata, s.reg, s.logger)
	if err != nil {
		_ = lis.Close()
		_ = httpLis.Close()
		s.internal.Stop()
		return err
	}
	s.opened.Store(c)
	s.core = c
	s.mu.lis, s.mu.httpLis = lis, httpLis
	s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(lis); err != nil {
			s.logger.Error("client API stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("HTTP endpoint stopped", "err", err)
		}
	}()
	s.core.start(s)
	s.wg.Add(1)
	go s.heartbeatLoop(c)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.mu.ready = true
	s.logger.Info("node started", "node", s.cfg.NodeID, "addr", lis.Addr().String(),
		"http", httpLis.Addr().String(), "data", s.cfg.DataDir)
	return nil
}

// Addr is the client API address (the bound port when configured as 0).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.lis == nil {
		return s.cfg.ListenAddr
	}
	return s.mu.lis.Addr().String()
}

// InternalAddr is the node-to-node address (the bound port when
// configured as 0): what Config.Join of another node names.
func (s *Server) InternalAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.intLis == nil {
		return s.cfg.InternalListenAddr
	}
	return s.mu.intLis.Addr().String()
}

// HTTPAddr is the address of /metrics, /healthz and /readyz.
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.httpLis == nil {
		return s.cfg.HTTPListenAddr
	}
	return s.mu.httpLis.Addr().String()
}

// ready: serving, and the cluster metadata is being applied.
func (s *Server) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.ready && s.core != nil && s.core.md.Err() == nil
}

// Shutdown stops accepting calls, lets running calls finish (long polls
// and streams are told to end), then closes the core. When ctx ends first
// the remaining calls are cut off. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.mu.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.mu.shutdown = true
	s.mu.ready = false
	started := s.mu.started && s.core != nil
	s.mu.Unlock()
	s.health.Shutdown()
	s.stopOnce.Do(func() { close(s.stop) })
	if !started {
		s.grpc.Stop()
		s.internal.Stop()
		s.peers.close()
		s.wg.Wait()
		if s.raftTransport != nil {
			return s.raftTransport.Close()
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		err = ctx.Err()
	}
	s.internal.Stop() // forwarded calls in flight fail; their senders retry
	s.peers.close()
	hctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if herr := s.http.Shutdown(hctx); herr != nil {
		_ = s.http.Close()
	}
	cancel()
	s.wg.Wait()
	if cerr := s.core.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if s.raftTransport != nil {
		err = errors.Join(err, s.raftTransport.Close())
	}
	s.logger.Info("node stopped", "node", s.cfg.NodeID)
	return err
}
