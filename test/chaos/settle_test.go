package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// readLocal reads a partition from one node, which answers from its own replica (every
// node holds one with three replicas on three nodes), from its start offset to its high
// watermark. With settled, a high watermark that moves while reading is an error;
// otherwise the read stops at the first one seen.
func readLocal(ctx context.Context, n *node, topic string, part int32, settled bool) (*replicaLog, error) {
	cc := sluicev1.NewConsumerServiceClient(n.conn)
	rl := &replicaLog{start: -1, vals: map[int64]string{}}
	var off int64
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := cc.Fetch(cctx, &sluicev1.FetchRequest{Topic: topic, MaxBytes: 4 << 20, PartitionMaxBytes: 4 << 20,
			Partitions: []*sluicev1.FetchPosition{{Partition: part, Offset: off}}})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("node %d fetch partition %d at %d: %w", n.id, part, off, err)
		}
		if len(resp.GetPartitions()) != 1 {
			return nil, fmt.Errorf("node %d fetch partition %d: %d partitions in the answer", n.id, part, len(resp.GetPartitions()))
		}
		fp := resp.GetPartitions()[0]
		if rl.start < 0 {
			rl.start, rl.hw = fp.GetLogStartOffset(), fp.GetHighWatermark()
			if off < rl.start {
				off = rl.start
				continue
			}
		}
		if e := fp.GetError(); e != nil {
			return nil, fmt.Errorf("node %d fetch partition %d at %d: %v", n.id, part, off, e)
		}
		if settled && fp.GetHighWatermark() != rl.hw {
			return nil, fmt.Errorf("node %d partition %d: high watermark moved from %d to %d while reading a settled cluster", n.id, part, rl.hw, fp.GetHighWatermark())
		}
		if off >= rl.hw {
			return rl, nil
		}
		if len(fp.GetBatches()) == 0 {
			return nil, fmt.Errorf("node %d partition %d: no batch at %d below the high watermark %d", n.id, part, off, rl.hw)
		}
		for _, rb := range fp.GetBatches() {
			recs, err := batch.Records(rb)
			if err != nil {
				return nil, fmt.Errorf("node %d partition %d batch at %d: %w", n.id, part, rb.GetBaseOffset(), err)
			}
			for i, r := range recs {
				o := rb.GetBaseOffset() + int64(i)
				if o >= off && o < rl.hw {
					if _, dup := rl.vals[o]; dup {
						return nil, fmt.Errorf("node %d partition %d: offset %d served twice", n.id, part, o)
					}
					rl.vals[o] = string(r.GetKey())
				}
			}
			off = max(off, rb.GetBaseOffset()+int64(len(recs)))
		}
	}
}

// settle waits until every node answers every partition with the same high watermark
// and start, at least need[p], then reads every replica. The wait is a failure guard.
func settle(c *cluster, topic string, partitions int32, need map[int32]int64) (map[int]map[int32]*replicaLog, error) {
	deadline := time.Now().Add(settleGuard)
	var last string
	for {
		out := map[int]map[int32]*replicaLog{}
		converged := true
		for _, n := range c.nodes {
			out[n.id] = map[int32]*replicaLog{}
			for p := range partitions {
				rl, err := readLocal(context.Background(), n, topic, p, true)
				if err != nil {
					converged, last = false, err.Error()
					continue
				}
				out[n.id][p] = rl
			}
		}
		if converged {
			for p := range partitions {
				first := out[c.nodes[0].id][p]
				for _, n := range c.nodes {
					rl := out[n.id][p]
					if rl.hw != first.hw || rl.hw < need[p] {
						converged = false
						last = fmt.Sprintf("partition %d: node %d at hw %d start %d, node %d at hw %d start %d, need %d",
							p, c.nodes[0].id, first.hw, first.start, n.id, rl.hw, rl.start, need[p])
					}
				}
			}
		}
		if converged {
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("replicas did not converge in %v: %s", settleGuard, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// heal resumes and restarts every node and heals the network.
func (c *cluster) healAll() {
	c.t.Helper()
	if err := c.net.heal(); err != nil {
		c.t.Error(err)
	}
	for _, n := range c.nodes {
		n.resume()
		if !n.running() {
			n.start()
		}
	}
}
