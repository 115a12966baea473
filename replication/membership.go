package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// ReplicaChangeType is a kind of membership change.
type ReplicaChangeType int

const (
	// AddVoter adds a node as a voter (or promotes a learner).
	AddVoter ReplicaChangeType = iota + 1
	// AddLearner adds a non-voting replica that receives the log; add
	// new replicas as learners first and promote them once caught up.
	AddLearner
	// RemoveReplica removes a voter or learner.
	RemoveReplica
)

// ReplicaChange is one membership change of a group.
type ReplicaChange struct {
	Type   ReplicaChangeType
	NodeID uint64
}

// ErrConfChangeInProgress rejects a membership change while an earlier
// one is not yet applied. Nothing was proposed.
var ErrConfChangeInProgress = errors.New("replication: membership change in progress")

// ChangeReplicas proposes a membership change on the leader and waits
// until it applies here. Several changes at once go through a joint
// configuration that raft leaves automatically. The replica on a newly
// added node must be opened there (OpenPartition without itself among
// Voters); a removed node should RemovePartition once it applied. Pass a
// context with a deadline: raft may drop a change it finds invalid for the
// configuration, which then ends as ErrUnknownOutcome.
func (p *Partition) ChangeReplicas(ctx context.Context, changes ...ReplicaChange) error {
	if len(changes) == 0 {
		return nil
	}
	cc := &raftpb.ConfChangeV2{}
	for _, ch := range changes {
		t := raftpb.ConfChangeAddNode
		switch ch.Type {
		case AddVoter:
		case AddLearner:
			t = raftpb.ConfChangeAddLearnerNode
		case RemoveReplica:
			t = raftpb.ConfChangeRemoveNode
		default:
			return errors.New("replication: unknown replica change type")
		}
		if ch.NodeID == 0 {
			return errors.New("replication: replica change needs a node id")
		}
		cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: new(ch.NodeID)})
	}
	if err := p.lockReady(ctx); err != nil {
		return err
	}
	seq := p.h.nextSeq()
	cc.Context = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, p.h.cfg.NodeID), seq)
	pr := &proposal{seq: seq, cc: cc, acks: AcksAll, pid: -1, start: time.Now(), done: make(chan struct{})}
	p.enqueueLocked(pr)
	p.mu.Unlock()
	_, err := p.wait(ctx, pr, true)
	return err
}

// confChangeIdentity returns the proposal identity carried in a
// membership change's context.
func confChangeIdentity(ctx []byte) (origin, seq uint64, ok bool) {
	if len(ctx) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(ctx), binary.BigEndian.Uint64(ctx[8:]), true
}

// TransferLeadership asks the leader to hand leadership to node to (for
// balancing leaders across nodes). It returns at once; watch Leader.
func (p *Partition) TransferLeadership(to uint64) {
	p.runRaft(func(rn *raft.RawNode) { rn.TransferLeader(to) })
}

// Campaign makes this replica start an election now (e.g. to move
// leadership to a preferred replica without waiting for a timeout).
func (p *Partition) Campaign() {
	p.runRaft(func(rn *raft.RawNode) { _ = rn.Campaign() })
}

// runRaft queues f to run on the RawNode in the next scheduler pass.
func (p *Partition) runRaft(f func(rn *raft.RawNode)) {
	p.mu.Lock()
	p.mu.ops = append(p.mu.ops, f)
	p.mu.Unlock()
	p.h.sched.enqueue(p.id, workPropose)
}
