package replication

import (
	"cmp"
	"slices"

	"go.etcd.io/raft/v3"
)

// PartitionStatus describes a replica for operators (cluster status,
// topic describe).
type PartitionStatus struct {
	GroupID       uint64
	NodeID        uint64
	Leader        uint64 // 0 = unknown
	IsLeader      bool
	Term          uint64
	Commit        uint64 // Raft commit index known to this replica
	Applied       uint64 // Raft index applied by this replica
	HighWatermark uint64
	StartOffset   uint64
	FirstIndex    uint64 // first Raft index the log holds (retention moves it)
	Voters        []uint64
	Learners      []uint64
	// Replicas is the leader's view of every replica (nil on followers).
	Replicas []ReplicaProgress
}

// ReplicaProgress is the leader's view of one replica.
type ReplicaProgress struct {
	NodeID uint64
	Match  uint64 // last Raft index known replicated there
	Lag    uint64 // entries behind the leader's last index
	Active bool   // heard from within an election timeout
}

// UnderReplicated reports whether a replica lags or is unreachable
// (leader view only).
func (s *PartitionStatus) UnderReplicated() bool {
	for _, r := range s.Replicas {
		if !r.Active || r.Match < s.Commit {
			return true
		}
	}
	return false
}

// Status reports the replica's Raft and log state.
func (p *Partition) Status() PartitionStatus {
	s := PartitionStatus{GroupID: p.id, NodeID: p.h.cfg.NodeID}
	p.raftMu.Lock()
	if rn := p.raftMu.rn; rn != nil {
		st := rn.Status()
		s.Term, s.Commit, s.Applied = st.GetTerm(), st.GetCommit(), p.raftMu.sm.applied
		s.Voters = setIDs(st.Config.Voters.IDs())
		s.Learners = setIDs(st.Config.Learners)
		if st.RaftState == raft.StateLeader {
			last := uint64(0)
			for _, pr := range st.Progress {
				last = max(last, pr.Match, pr.Next-1)
			}
			for id, pr := range st.Progress {
				s.Replicas = append(s.Replicas, ReplicaProgress{NodeID: id, Match: pr.Match,
					Lag: last - min(last, pr.Match), Active: pr.RecentActive})
			}
			slices.SortFunc(s.Replicas, func(a, b ReplicaProgress) int { return cmp.Compare(a.NodeID, b.NodeID) })
		}
	}
	p.raftMu.Unlock()
	if first, err := p.log.FirstIndex(); err == nil {
		s.FirstIndex = first
	}
	p.mu.Lock()
	s.Leader, s.IsLeader, s.HighWatermark, s.StartOffset = p.mu.leader, p.mu.isLeader, p.mu.hw, p.mu.start
	p.mu.Unlock()
	return s
}

func setIDs(m map[uint64]struct{}) []uint64 {
	var ids []uint64
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
