package clients

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Consumer reads assigned partitions with long-polling fetches to their leaders, each
// partition in at most one fetch at a time. A fetch a Poll starts may outlive it: a later
// Poll takes its answer; Close ends the fetches in flight and waits for them. It is safe for concurrent use; Polls
// are serialized.
type Consumer struct {
	cfg    config
	cl     *cluster
	pollMu sync.Mutex // one Poll at a time
	// lent are the fetch replies taken since the last Poll began, whose records that
	// Poll may have returned; with ReuseRecordMemory the next Poll releases them.
	// Guarded by pollMu.
	lent []*fetchReply

	// Fetches in flight run on goroutines of the consumer: life ends them (Close),
	// flights counts them, landed wakes a Poll when one is done.
	life     context.Context
	stopLife context.CancelFunc
	flights  sync.WaitGroup
	landed   chan struct{}

	mu struct {
		sync.Mutex
		closed bool
		parts  map[topicPartition]*cpart
		seq    uint64 // bumped by every Assign and Seek
		// retry is set when a partition hit a retriable error (a leader change): the
		// next fetch waits a backoff so a leaderless partition does not spin.
		retry bool
		// flights are the fetches in flight or landed and not yet taken by a Poll. A
		// partition is in at most one started by a Poll, and in at most one more started
		// when that one landed (prefetch): its answer starts where the first one's ends.
		flights map[*flight]struct{}
		started uint64 // counts flights started: their order, for taking answers in it
	}
}

// cpart is the read position of one assigned partition; guarded by Consumer.mu.
type cpart struct {
	tp       topicPartition
	start    Offset // where to start while !resolved
	resolved bool
	offset   int64 // next offset to return
	failed   error // a partition error stops reading until the next Seek
	moved    uint64
}

// PartitionError is a failure of one partition in a Poll. The partition is not read again
// until it is sought or assigned again.
type PartitionError struct {
	Topic     string
	Partition int32
	Err       error
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("%s/%d: %v", e.Topic, e.Partition, e.Err)
}

func (e *PartitionError) Unwrap() error { return e.Err }

// NewConsumer creates a consumer with the partitions of ConsumePartitions assigned.
func NewConsumer(opts ...ConsumerOpt) (*Consumer, error) {
	cfg := defaults()
	for _, o := range opts {
		o.applyConsumer(&cfg)
	}
	if len(cfg.brokers) == 0 {
		return nil, errors.New("sluice: no brokers configured")
	}
	pool := readPool // fetchcodec.go
	if cfg.reuseRecords {
		pool = experimental.WithBufferPool(newChunkPool(true)) // framepool.go
	}
	cfg.dialOpts = append([]grpc.DialOption{pool}, cfg.dialOpts...)
	c := &Consumer{cfg: cfg, cl: newCluster(&cfg), landed: make(chan struct{}, 1)}
	c.life, c.stopLife = context.WithCancel(context.Background())
	c.mu.parts = make(map[topicPartition]*cpart)
	c.mu.flights = make(map[*flight]struct{})
	for t, ps := range cfg.assign {
		c.Assign(t, ps)
	}
	return c, nil
}

// Assign adds partitions of topic, each starting at its Offset (reassigning a partition
// moves it).
func (c *Consumer) Assign(topic string, partitions map[int32]Offset) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.seq++
	for p, o := range partitions {
		c.mu.parts[topicPartition{topic, p}] = c.newPartLocked(topic, p, o)
	}
}

func (c *Consumer) newPartLocked(topic string, p int32, o Offset) *cpart {
	cp := &cpart{tp: topicPartition{topic, p}, start: o, moved: c.mu.seq}
	if o.kind == offsetExact {
		cp.resolved, cp.offset = true, o.offset
	}
	return cp
}

// AssignTopic assigns every partition of topic, starting at o.
func (c *Consumer) AssignTopic(ctx context.Context, topic string, o Offset) error {
	n, err := c.cl.partitions(ctx, topic)
	if err != nil {
		return err
	}
	ps := make(map[int32]Offset, n)
	for p := range n {
		ps[p] = o
	}
	c.Assign(topic, ps)
	return nil
}

// Unassign stops reading partitions of topic (all of them when none are given).
func (c *Consumer) Unassign(topic string, partitions ...int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.seq++
	for tp := range c.mu.parts {
		if tp.topic == topic && (len(partitions) == 0 || contains(partitions, tp.partition)) {
			delete(c.mu.parts, tp)
		}
	}
}

func contains(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// Seek moves an assigned partition (assigning it if needed) to o and clears its error.
func (c *Consumer) Seek(topic string, partition int32, o Offset) {
	c.Assign(topic, map[int32]Offset{partition: o})
}

// Position returns the offset of the next record Poll returns for the partition, once
// its start position is resolved.
func (c *Consumer) Position(topic string, partition int32) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := c.mu.parts[topicPartition{topic, partition}]
	if cp == nil || !cp.resolved {
		return 0, false
	}
	return cp.offset, true
}

// Poll returns the next records of the assigned partitions, waiting until some arrive or
// ctx ends (then it returns ctx.Err()). Records of one partition are in offset order.
// Failures of single partitions come back as *PartitionError (joined) next to the records
// of the others; a failure to reach the cluster comes back as the error with no records.
func (c *Consumer) Poll(ctx context.Context) ([]*Record, error) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.cfg.reuseRecords {
		// The records of the last Poll are done with: their frames are read into again.
		for _, r := range c.lent {
			r.release()
		}
		clear(c.lent)
		c.lent = c.lent[:0]
	}
	attempt := 0
	for {
		recs, err := c.pollOnce(ctx)
		if len(recs) == 0 && err != nil && callerDone(ctx, err) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, context.DeadlineExceeded
		}
		if len(recs) > 0 || err != nil {
			return recs, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.mu.Lock()
		retry := c.mu.retry
		c.mu.retry = false
		c.mu.Unlock()
		if retry {
			attempt++
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(c.cfg.backoff(attempt)):
			}
			continue
		}
		attempt = 0
		c.mu.Lock()
		active := 0
		for _, cp := range c.mu.parts {
			if cp.failed == nil {
				active++
			}
		}
		c.mu.Unlock()
		if active == 0 {
			// Nothing to read: wait as a fetch would, so callers looping on Poll do not spin.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(c.cfg.fetchMaxWait):
			}
		}
	}
}

type fetchJob struct {
	addr  string
	topic string
	parts []*sluicev1.FetchPosition
	moved map[int32]uint64
	order uint64 // when it was started, among the consumer's flights
}

// from returns the offset j fetches partition p from (-1 if it does not fetch p).
func (j *fetchJob) from(p int32) int64 {
	for _, fp := range j.parts {
		if fp.GetPartition() == p {
			return fp.GetOffset()
		}
	}
	return -1
}

// flight is a fetch in progress. It outlives the Poll that started it: its answer is taken
// by the Poll that finds it done, so a fetch ends only when the server has records for it
// or its wait is over, never because records came from another leader first.
type flight struct {
	job  *fetchJob
	resp *fetchReply // set before done is closed
	err  error
	done chan struct{}
}

// covers reports whether f is fetching tp at its current position.
func (f *flight) covers(cp *cpart) bool {
	if f.job.topic != cp.tp.topic {
		return false
	}
	moved, ok := f.job.moved[cp.tp.partition]
	return ok && moved == cp.moved
}

func (c *Consumer) pollOnce(ctx context.Context) ([]*Record, error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	var unresolved []*cpart
	for _, cp := range c.mu.parts {
		if cp.failed == nil && !cp.resolved {
			unresolved = append(unresolved, &cpart{tp: cp.tp, start: cp.start, moved: cp.moved})
		}
	}
	c.mu.Unlock()
	var errs []error
	if len(unresolved) > 0 {
		errs = append(errs, c.resolve(ctx, unresolved)...)
	}

	// Group the readable partitions no fetch is reading by leader and topic.
	jobs := make(map[[2]string]*fetchJob)
	refreshed := false
	c.mu.Lock()
	var readable []*cpart
	for _, cp := range c.mu.parts {
		if cp.failed == nil && cp.resolved && !c.inFlightLocked(cp) {
			readable = append(readable, cp)
		}
	}
	flying := len(c.mu.flights)
	c.mu.Unlock()
	if len(readable) == 0 && flying == 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(readable, func(i, j int) bool {
		if readable[i].tp.topic != readable[j].tp.topic {
			return readable[i].tp.topic < readable[j].tp.topic
		}
		return readable[i].tp.partition < readable[j].tp.partition
	})
	c.mu.Lock()
	positions := make([]int64, len(readable))
	moved := make([]uint64, len(readable))
	for i, cp := range readable {
		positions[i], moved[i] = cp.offset, cp.moved
	}
	c.mu.Unlock()
	for i, cp := range readable {
		addr := c.cl.leaderAddr(cp.tp.topic, cp.tp.partition)
		if addr == "" && !refreshed {
			refreshed = true
			if _, err := c.cl.refresh(ctx, c.topicsLocked()...); err != nil {
				c.cfg.logger.Debug("metadata refresh failed", "err", err)
			}
			addr = c.cl.leaderAddr(cp.tp.topic, cp.tp.partition)
		}
		if addr == "" {
			addr = c.cfg.brokers[0] // any node forwards
		}
		key := [2]string{addr, cp.tp.topic}
		j := jobs[key]
		if j == nil {
			j = &fetchJob{addr: addr, topic: cp.tp.topic, moved: make(map[int32]uint64)}
			jobs[key] = j
		}
		j.parts = append(j.parts, &sluicev1.FetchPosition{Partition: cp.tp.partition, Offset: positions[i]})
		j.moved[cp.tp.partition] = moved[i]
	}

	// Fetch from every leader at once; return what the first fetches to answer bring.
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	for _, j := range jobs {
		c.startLocked(j)
	}
	c.mu.Unlock()
	done := c.waitFlights(ctx)
	if len(done) == 0 {
		if len(errs) == 0 {
			return nil, ctx.Err()
		}
		return nil, errors.Join(errs...)
	}
	c.mu.Lock()
	closed := c.mu.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	var recs []*Record
	failed := 0
	var transportErr error
	for _, f := range done {
		if f.err != nil {
			failed++
			transportErr = f.err
			// A fetch is a read: a node that cannot be reached (its leader died) is
			// worth a metadata refresh and a retry, like a leader change.
			if readRetriable(f.err) {
				c.cl.refresh(ctx, f.job.topic) //nolint:errcheck // best effort
				c.mu.Lock()
				c.mu.retry = true
				c.mu.Unlock()
			}
			continue
		}
		rs, perrs := c.take(ctx, f.job, f.resp)
		if c.cfg.reuseRecords {
			c.lent = append(c.lent, f.resp) // pollOnce runs under pollMu
		}
		recs = append(recs, rs...)
		errs = append(errs, perrs...)
	}
	if failed == len(done) && transportErr != nil && ctx.Err() == nil && !readRetriable(transportErr) {
		errs = append(errs, transportErr)
	}
	return recs, errors.Join(errs...)
}

// inFlightLocked reports whether a fetch in flight reads cp at its current position.
func (c *Consumer) inFlightLocked(cp *cpart) bool {
	for f := range c.mu.flights {
		if f.covers(cp) {
			return true
		}
	}
	return false
}

// startLocked starts fetching j on a goroutine of the consumer (Close cancels and waits
// for it).
func (c *Consumer) startLocked(j *fetchJob) {
	c.mu.started++
	j.order = c.mu.started
	f := &flight{job: j, done: make(chan struct{})}
	c.mu.flights[f] = struct{}{}
	c.flights.Add(1)
	go func() {
		defer c.flights.Done()
		f.resp, f.err = c.fetch(c.life, j)
		c.mu.Lock()
		close(f.done)
		c.prefetchLocked(f)
		c.mu.Unlock()
		select { // wake a Poll waiting for any fetch
		case c.landed <- struct{}{}:
		default:
		}
	}()
}

// prefetchLocked starts, for a fetch that landed with records, the fetch of what follows
// them from the same leader, so that it waits at the server while the application
// handles these (Kafka's consumer fetches ahead the same way). Only the partitions whose
// answer had batches and no error, and are still read where f read them, are fetched
// ahead; and only from a flight that is the sole landed one of its partitions, so at most
// two answers per partition wait for a Poll. A Poll takes answers in the order their
// fetches started, and take skips a partition whose answer does not start at its
// position.
func (c *Consumer) prefetchLocked(f *flight) {
	if c.mu.closed || f.err != nil || f.resp == nil {
		return
	}
	j := f.job
	next := &fetchJob{addr: j.addr, topic: j.topic, moved: make(map[int32]uint64)}
	for _, fp := range f.resp.resp.GetPartitions() {
		p := fp.GetPartition()
		cp := c.mu.parts[topicPartition{j.topic, p}]
		if fp.GetError() != nil || len(fp.GetBatches()) == 0 || cp == nil || !cp.resolved || cp.failed != nil ||
			cp.moved != j.moved[p] || c.landedOtherLocked(f, cp) {
			continue
		}
		end := j.from(p)
		for _, rb := range fp.GetBatches() {
			end = max(end, rb.GetBaseOffset()+int64(rb.GetRecordCount()))
		}
		next.parts = append(next.parts, &sluicev1.FetchPosition{Partition: p, Offset: end})
		next.moved[p] = cp.moved
	}
	if len(next.parts) > 0 {
		c.startLocked(next)
	}
}

// landedOtherLocked reports whether a landed flight other than f, not yet taken, reads cp.
func (c *Consumer) landedOtherLocked(f *flight, cp *cpart) bool {
	for o := range c.mu.flights {
		if o == f || !o.covers(cp) {
			continue
		}
		select {
		case <-o.done:
			return true
		default:
		}
	}
	return false
}

// waitFlights waits until at least one fetch in flight is done (or ctx ends) and takes
// every done one out of the flights.
func (c *Consumer) waitFlights(ctx context.Context) []*flight {
	for {
		var done []*flight
		c.mu.Lock()
		for f := range c.mu.flights {
			select {
			case <-f.done:
				done = append(done, f)
				delete(c.mu.flights, f)
			default:
			}
		}
		empty := len(c.mu.flights) == 0
		c.mu.Unlock()
		if len(done) > 0 || empty {
			sort.Slice(done, func(a, b int) bool { return done[a].job.order < done[b].job.order })
			return done
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.landed:
		}
	}
}

// callerDone reports whether err is the end of the caller's ctx: its own error, or a
// deadline or cancellation status that the server sent as the deadline passed.
func callerDone(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	e, ok := AsError(err)
	if !ok || (e.Code != codes.DeadlineExceeded && e.Code != codes.Canceled) {
		return false
	}
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < 50*time.Millisecond
}

func (c *Consumer) topicsLocked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool)
	var ts []string
	for tp := range c.mu.parts {
		if !seen[tp.topic] {
			seen[tp.topic] = true
			ts = append(ts, tp.topic)
		}
	}
	return ts
}

func (c *Consumer) fetch(ctx context.Context, j *fetchJob) (*fetchReply, error) {
	cc, err := c.cl.conn(j.addr)
	if err != nil {
		return nil, err
	}
	iso := sluicev1.IsolationLevel_ISOLATION_LEVEL_READ_UNCOMMITTED
	if c.cfg.readCommitted {
		iso = sluicev1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED
	}
	wait := c.cfg.fetchMaxWait
	rctx, cancel := context.WithTimeout(ctx, wait+c.cfg.requestTimeout)
	defer cancel()
	// Invoked directly (not through the generated client) so that fetchCodec decodes
	// into a fetchReply: records alias the response, and CRC failures come with it.
	reply := new(fetchReply)
	err = cc.Invoke(rctx, sluicev1.ConsumerService_Fetch_FullMethodName, &sluicev1.FetchRequest{
		Topic: j.topic, Partitions: j.parts, MaxBytes: c.cfg.fetchMaxBytes, PartitionMaxBytes: c.cfg.partMaxBytes,
		MinBytes: c.cfg.fetchMinBytes, MaxWaitMs: int32(wait / time.Millisecond), IsolationLevel: iso,
		RecordFormat: sluicev1.RecordFormat_RECORD_FORMAT_STORED,
	}, reply, fetchCall, grpc.MaxCallRecvMsgSize(fetchRecvLimit(c.cfg.fetchMaxBytes)))
	if err != nil {
		return nil, fromStatus(err)
	}
	return reply, nil
}

// fetchRecvLimit bounds a fetch response: grpc's default (4 MiB) is below the default
// FetchMaxBytes. A response holds up to maxBytes of batches, or one batch more than that
// when its first batch alone is larger; a batch is at most what a node accepts in one
// request (64 MiB by default).
func fetchRecvLimit(maxBytes int32) int {
	const batchMax, overhead = 64 << 20, 1 << 20
	return int(max(maxBytes, 0)) + batchMax + overhead
}

// take turns a fetch response into records and advances positions, unless the partition
// was sought meanwhile.
func (c *Consumer) take(ctx context.Context, j *fetchJob, reply *fetchReply) ([]*Record, []error) {
	var recs []*Record
	var errs []error
	for _, fp := range reply.resp.GetPartitions() {
		tp := topicPartition{j.topic, fp.GetPartition()}
		c.mu.Lock()
		cp := c.mu.parts[tp]
		if cp == nil || cp.moved != j.moved[tp.partition] || !cp.resolved || cp.failed != nil {
			c.mu.Unlock()
			continue
		}
		pos := cp.offset
		c.mu.Unlock()
		if j.from(tp.partition) > pos {
			// Fetched ahead from where the answer before it ended, and that one did not
			// bring the position there (it failed, or was sought past): read again.
			continue
		}
		if pe := fp.GetError(); pe != nil {
			err := fromProto(pe)
			next, ok := c.recover(ctx, tp, pos, err, fp)
			c.mu.Lock()
			if readRetriable(err) {
				c.mu.retry = true
			}
			if cp == c.mu.parts[tp] && cp.moved == j.moved[tp.partition] {
				if ok {
					cp.offset = next
				} else {
					cp.failed = err
					errs = append(errs, &PartitionError{Topic: tp.topic, Partition: tp.partition, Err: err})
				}
			}
			c.mu.Unlock()
			continue
		}
		next := pos
		var prs []*Record
		var perr error
		for _, rb := range fp.GetBatches() {
			if rb.GetControl() {
				// Transaction markers are not records: step over them.
				next = max(next, rb.GetBaseOffset()+int64(rb.GetRecordCount()))
				continue
			}
			rs, err := reply.records(rb, tp.topic, tp.partition) // fetchrecords.go
			if err != nil {
				perr = &Error{Reason: sluicev1.ErrorReason_ERROR_REASON_CORRUPT_BATCH, Message: err.Error(),
					Metadata: map[string]string{"offset": strconv.FormatInt(rb.GetBaseOffset(), 10)}}
				break
			}
			if prs == nil {
				prs = make([]*Record, 0, len(rs))
			}
			for i := range rs {
				if rs[i].Offset < next {
					continue
				}
				prs = append(prs, &rs[i])
				next = rs[i].Offset + 1
			}
		}
		c.mu.Lock()
		if cp == c.mu.parts[tp] && cp.moved == j.moved[tp.partition] && cp.offset == pos {
			cp.offset = next
			recs = append(recs, prs...)
			if perr != nil {
				cp.failed = perr
				errs = append(errs, &PartitionError{Topic: tp.topic, Partition: tp.partition, Err: perr})
			}
		}
		c.mu.Unlock()
	}
	return recs, errs
}

// Close stops the consumer and closes its connections. A Poll in progress returns.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	c.mu.Unlock()
	c.stopLife()
	c.flights.Wait()
	return c.cl.close()
}
