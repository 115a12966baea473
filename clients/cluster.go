package clients

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// cluster owns the gRPC connections of one client and its view of the cluster's
// metadata: nodes' addresses and each known topic's partition leaders.
type cluster struct {
	cfg *config

	mu struct {
		sync.Mutex
		conns  map[string]*grpc.ClientConn // by address
		nodes  map[int32]string            // node id -> address
		topics map[string][]int32          // topic -> leader node id per partition (-1: none)
		loaded map[string]time.Time        // when each topic's metadata was loaded
		// suspect are addresses that last failed to answer within the request
		// timeout (a paused or cut-off node), with when: calls try them last,
		// the most recent last.
		suspect map[string]time.Time
		closed  bool
	}
}

func newCluster(cfg *config) *cluster {
	c := &cluster{cfg: cfg}
	c.mu.conns = make(map[string]*grpc.ClientConn)
	c.mu.nodes = make(map[int32]string)
	c.mu.topics = make(map[string][]int32)
	c.mu.loaded = make(map[string]time.Time)
	c.mu.suspect = make(map[string]time.Time)
	return c
}

// conn returns the connection to addr, dialing it (lazily; gRPC connects on first use).
func (c *cluster) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.mu.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, c.cfg.dialOptions()...)
	if err != nil {
		return nil, err
	}
	c.mu.conns[addr] = cc
	return cc, nil
}

// setSuspect records whether addr last failed to answer in time.
func (c *cluster) setSuspect(addr string, suspect bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if suspect {
		c.mu.suspect[addr] = time.Now()
	} else {
		delete(c.mu.suspect, addr)
	}
}

// brokerOrder lists the brokers starting at a random one, those that last timed out
// at the end, the one that timed out most recently last (a node paused a while ago
// may be back; the one that just failed probably is not).
func (c *cluster) brokerOrder() []string {
	seeds := c.cfg.brokers
	start := rand.IntN(max(len(seeds), 1))
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(seeds))
	var late []string
	for i := range seeds {
		a := seeds[(start+i)%len(seeds)]
		if _, ok := c.mu.suspect[a]; ok {
			late = append(late, a)
		} else {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(late, func(a, b string) int { return c.mu.suspect[a].Compare(c.mu.suspect[b]) })
	return append(out, late...)
}

// call runs fn against the brokers in turn until one answers without a transport error.
func (c *cluster) call(ctx context.Context, fn func(context.Context, *grpc.ClientConn) error) error {
	return c.callBrokers(ctx, false, fn)
}

// callBrokers is call; with read (fn changes nothing, so asking another node is always
// safe) a broker that does not answer within the request timeout is passed over too:
// it may be paused or cut off.
func (c *cluster) callBrokers(ctx context.Context, read bool, fn func(context.Context, *grpc.ClientConn) error) error {
	seeds := c.brokerOrder()
	if len(seeds) == 0 {
		return errors.New("sluice: no brokers configured")
	}
	var err error
	for _, addr := range seeds {
		cc, cerr := c.conn(addr)
		if cerr != nil {
			return cerr
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.requestTimeout)
		err = fromStatus(fn(rctx, cc))
		cancel()
		e, ok := AsError(err)
		timedOut := ok && e.Code == codes.DeadlineExceeded && e.Reason == sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED && ctx.Err() == nil
		c.setSuspect(addr, timedOut)
		if !ok || e.Reason != sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			return err
		}
		if e.Code != codes.Unavailable && !(read && timedOut) {
			return err
		}
	}
	return err
}

// refresh loads the metadata of topics (all topics when none are given).
func (c *cluster) refresh(ctx context.Context, topics ...string) (*sluicev1.GetMetadataResponse, error) {
	var resp *sluicev1.GetMetadataResponse
	err := c.callBrokers(ctx, true, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = sluicev1.NewClusterServiceClient(cc).GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: topics})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range resp.GetNodes() {
		c.mu.nodes[n.GetNodeId()] = n.GetAddress()
	}
	for _, t := range resp.GetTopics() {
		leaders := make([]int32, len(t.GetPartitions()))
		for i, p := range t.GetPartitions() {
			leaders[i] = p.GetLeader()
			if int(p.GetPartition()) != i {
				leaders[i] = -1
			}
		}
		c.mu.topics[t.GetName()] = leaders
		c.mu.loaded[t.GetName()] = time.Now()
	}
	return resp, nil
}

// partitions returns the partition count of topic, loading its metadata when it is not
// known or older than MetadataMaxAge. A topic the cluster does not know fails with
// UNKNOWN_TOPIC.
func (c *cluster) partitions(ctx context.Context, topic string) (int32, error) {
	c.mu.Lock()
	leaders, ok := c.mu.topics[topic]
	fresh := time.Since(c.mu.loaded[topic]) < c.cfg.metadataMaxAge
	if ok && !fresh {
		c.mu.loaded[topic] = time.Now() // this caller refreshes; the others go on
	}
	c.mu.Unlock()
	if ok && fresh {
		return int32(len(leaders)), nil
	}
	if _, err := c.refresh(ctx, topic); err != nil {
		if ok { // keep using what we know
			c.cfg.logger.Debug("metadata refresh failed", "topic", topic, "err", err)
			return int32(len(leaders)), nil
		}
		return 0, err
	}
	c.mu.Lock()
	leaders, ok = c.mu.topics[topic]
	c.mu.Unlock()
	if !ok {
		return 0, &Error{Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC, Message: "topic " + strconv.Quote(topic) + " does not exist", Metadata: map[string]string{"topic": topic}}
	}
	return int32(len(leaders)), nil
}

// leaderAddr returns the address of the partition's leader, or "" when unknown.
func (c *cluster) leaderAddr(topic string, partition int32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	leaders := c.mu.topics[topic]
	if partition < 0 || int(partition) >= len(leaders) || leaders[partition] < 0 {
		return ""
	}
	return c.mu.nodes[leaders[partition]]
}

// knownTopics lists the topics whose metadata is cached.
func (c *cluster) knownTopics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := make([]string, 0, len(c.mu.topics))
	for t := range c.mu.topics {
		ts = append(ts, t)
	}
	return ts
}

// noteLeader applies a NOT_LEADER hint: metadata "leader" (node id) and
// "leader_address". It reports whether the hint named a usable leader.
func (c *cluster) noteLeader(topic string, partition int32, md map[string]string) bool {
	id, err := strconv.ParseInt(md["leader"], 10, 32)
	addr := md["leader_address"]
	c.mu.Lock()
	defer c.mu.Unlock()
	leaders := c.mu.topics[topic]
	if err != nil || partition < 0 || int(partition) >= len(leaders) {
		return false
	}
	if addr != "" {
		c.mu.nodes[int32(id)] = addr
	}
	if _, ok := c.mu.nodes[int32(id)]; !ok {
		return false
	}
	leaders[partition] = int32(id)
	return true
}

func (c *cluster) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.closed = true
	var errs []error
	for _, cc := range c.mu.conns {
		errs = append(errs, cc.Close())
	}
	c.mu.conns = nil
	return errors.Join(errs...)
}

// backoff returns the wait before retry attempt n (1-based): exponential with jitter.
func (cfg *config) backoff(n int) time.Duration {
	d := cfg.backoffMin
	for i := 1; i < n && d < cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, cfg.backoffMax)
	return d/2 + rand.N(d/2+1)
}
