package server

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicehq/sluice/replication"
)

// The cluster-wide partition view. Only a partition's leader knows its
// followers' lag, and only a replica knows the leader; a node answering
// about partitions it does not lead asks every node for the partitions it
// leads (internal LedPartitions call) and merges the answers. The view is
// cached for leaderViewTTL so admin calls and metric scrapes in a burst
// share one round.

const (
	ledPartitionsMethod = "/" + internalServiceName + "/LedPartitions"
	leaderViewTTL       = time.Second
	leaderViewTimeout   = 500 * time.Millisecond // a stopped node must not stall metadata answers
)

// ledPartition is a leader's report of one partition it leads.
type ledPartition struct {
	Group    uint64                        `json:"g"`
	Leader   uint64                        `json:"l"`
	Term     uint64                        `json:"t"`
	HW       uint64                        `json:"hw"`
	Start    uint64                        `json:"s"`
	Size     int64                         `json:"sz"`
	Voters   []uint64                      `json:"v"`
	Replicas []replication.ReplicaProgress `json:"r"`
	Under    bool                          `json:"u"`
}

// ledHere lists the partitions this node leads (the metadata group too).
func (s *Server) ledHere() []ledPartition {
	c := s.opened.Load()
	if c == nil {
		return nil
	}
	var out []ledPartition
	for _, p := range c.host.Partitions() {
		if !p.IsLeader() {
			continue
		}
		st := p.Status()
		if !st.IsLeader {
			continue
		}
		out = append(out, ledPartition{Group: st.GroupID, Leader: st.NodeID, Term: st.Term, HW: st.HighWatermark,
			Start: st.StartOffset, Size: p.LogSize(), Voters: st.Voters, Replicas: st.Replicas, Under: st.UnderReplicated()})
	}
	return out
}

func (s *Server) handleLedPartitions(context.Context, *emptypb.Empty) (*wrapperspb.BytesValue, error) {
	data, err := json.Marshal(s.ledHere())
	if err != nil {
		return nil, err
	}
	return wrapperspb.Bytes(data), nil
}

// leaderView is the merged reports of every reachable node, by group id.
type leaderView struct {
	mu struct {
		sync.Mutex
		at    time.Time
		view  map[uint64]ledPartition
		round chan struct{} // non-nil while a round is in flight; closed when done
	}
}

// leaders returns the cluster-wide view of led partitions (cached).
func (s *Server) leaders(ctx context.Context) map[uint64]ledPartition {
	lv := &s.leaderView
	for {
		lv.mu.Lock()
		if lv.mu.view != nil && time.Since(lv.mu.at) < leaderViewTTL {
			v := lv.mu.view
			lv.mu.Unlock()
			return v
		}
		if ch := lv.mu.round; ch != nil {
			lv.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return s.localView()
			}
		}
		ch := make(chan struct{})
		lv.mu.round = ch
		lv.mu.Unlock()
		v := s.collectLeaders(ctx)
		lv.mu.Lock()
		lv.mu.view, lv.mu.at, lv.mu.round = v, time.Now(), nil
		lv.mu.Unlock()
		close(ch)
		return v
	}
}

func (s *Server) localView() map[uint64]ledPartition {
	out := map[uint64]ledPartition{}
	for _, lp := range s.ledHere() {
		out[lp.Group] = lp
	}
	return out
}

// collectLeaders asks every registered node, in parallel, what it leads.
func (s *Server) collectLeaders(ctx context.Context) map[uint64]ledPartition {
	out := s.localView()
	c := s.opened.Load()
	if c == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, leaderViewTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, n := range c.md.State().Nodes {
		if id == s.cfg.NodeID || n.InternalAddr == "" {
			continue
		}
		conn, err := s.peers.conn(n.InternalAddr)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := new(wrapperspb.BytesValue)
			if err := conn.Invoke(ctx, ledPartitionsMethod, &emptypb.Empty{}, in); err != nil {
				return
			}
			var led []ledPartition
			if json.Unmarshal(in.GetValue(), &led) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, lp := range led {
				// Two nodes may both believe they lead for a moment: the
				// higher term is the current one.
				if old, ok := out[lp.Group]; !ok || lp.Term > old.Term {
					out[lp.Group] = lp
				}
			}
		}()
	}
	wg.Wait()
	return out
}
