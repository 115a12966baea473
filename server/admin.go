package server

import (
	"context"
	"maps"
	"slices"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication"
)

type adminService struct {
	sluicev1.UnimplementedAdminServiceServer
	s *Server
}

func (a *adminService) CreateTopic(ctx context.Context, req *sluicev1.CreateTopicRequest) (*sluicev1.CreateTopicResponse, error) {
	t, err := a.s.core.md.CreateTopic(ctx, cluster.TopicSpec{
		Name:              req.GetName(),
		Partitions:        req.GetPartitions(),
		ReplicationFactor: req.GetReplicationFactor(),
		Configs:           req.GetConfigs(),
		ValidateOnly:      req.GetValidateOnly(),
	})
	if err != nil {
		resp := new(sluicev1.CreateTopicResponse)
		if ok, ferr := a.s.toController(ctx, err, sluicev1.AdminService_CreateTopic_FullMethodName, req, resp); ok {
			return resp, a.s.callError(ctx, ferr)
		}
		return nil, a.s.callError(ctx, err)
	}
	a.s.logger.InfoContext(ctx, "topic created", "topic", t.Name, "partitions", len(t.Partitions), "validate_only", req.GetValidateOnly())
	return &sluicev1.CreateTopicResponse{Topic: a.s.describeTopic(t, !req.GetValidateOnly())}, nil
}

func (a *adminService) DeleteTopic(ctx context.Context, req *sluicev1.DeleteTopicRequest) (*sluicev1.DeleteTopicResponse, error) {
	if err := a.s.core.md.DeleteTopic(ctx, req.GetName()); err != nil {
		resp := new(sluicev1.DeleteTopicResponse)
		if ok, ferr := a.s.toController(ctx, err, sluicev1.AdminService_DeleteTopic_FullMethodName, req, resp); ok {
			return resp, a.s.callError(ctx, ferr)
		}
		return nil, a.s.callError(ctx, err)
	}
	a.s.metrics.forgetTopic(req.GetName())
	a.s.logger.InfoContext(ctx, "topic deleted", "topic", req.GetName())
	return &sluicev1.DeleteTopicResponse{}, nil
}

func (a *adminService) ListTopics(ctx context.Context, req *sluicev1.ListTopicsRequest) (*sluicev1.ListTopicsResponse, error) {
	st := a.s.core.md.State()
	resp := &sluicev1.ListTopicsResponse{}
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		internal := cluster.Internal(name)
		if internal && !req.GetIncludeInternal() {
			continue
		}
		resp.Topics = append(resp.Topics, &sluicev1.TopicSummary{
			Name: name, Partitions: int32(len(t.Partitions)), ReplicationFactor: t.ReplicationFactor, Internal: internal,
		})
	}
	return resp, nil
}

func (a *adminService) DescribeTopic(ctx context.Context, req *sluicev1.DescribeTopicRequest) (*sluicev1.DescribeTopicResponse, error) {
	t, ok := a.s.core.md.State().Topic(req.GetName())
	if !ok {
		return nil, a.s.callError(ctx, &cluster.UnknownTopicError{Topic: req.GetName()})
	}
	return &sluicev1.DescribeTopicResponse{Topic: a.s.describeTopic(t, true)}, nil
}

func (a *adminService) AddPartitions(ctx context.Context, req *sluicev1.AddPartitionsRequest) (*sluicev1.AddPartitionsResponse, error) {
	t, err := a.s.core.md.AddPartitions(ctx, req.GetName(), req.GetTotalPartitions(), req.GetValidateOnly())
	if err != nil {
		resp := new(sluicev1.AddPartitionsResponse)
		if ok, ferr := a.s.toController(ctx, err, sluicev1.AdminService_AddPartitions_FullMethodName, req, resp); ok {
			return resp, a.s.callError(ctx, ferr)
		}
		return nil, a.s.callError(ctx, err)
	}
	return &sluicev1.AddPartitionsResponse{Topic: a.s.describeTopic(t, true)}, nil
}

func (a *adminService) AlterTopicConfig(ctx context.Context, req *sluicev1.AlterTopicConfigRequest) (*sluicev1.AlterTopicConfigResponse, error) {
	t, err := a.s.core.md.AlterConfig(ctx, req.GetName(), req.GetSet(), req.GetReset_(), req.GetValidateOnly())
	if err != nil {
		resp := new(sluicev1.AlterTopicConfigResponse)
		if ok, ferr := a.s.toController(ctx, err, sluicev1.AdminService_AlterTopicConfig_FullMethodName, req, resp); ok {
			return resp, a.s.callError(ctx, ferr)
		}
		return nil, a.s.callError(ctx, err)
	}
	return &sluicev1.AlterTopicConfigResponse{Configs: topicConfigs(t)}, nil
}

func (a *adminService) ListOffsets(ctx context.Context, req *sluicev1.ListOffsetsRequest) (*sluicev1.ListOffsetsResponse, error) {
	t, ok := a.s.core.md.State().Topic(req.GetTopic())
	if !ok {
		return nil, a.s.callError(ctx, &cluster.UnknownTopicError{Topic: req.GetTopic()})
	}
	parts := req.GetPartitions()
	if len(parts) == 0 {
		for _, p := range t.Partitions {
			parts = append(parts, p.Index)
		}
	}
	if node := a.s.readElsewhere(t, parts); node != 0 {
		resp := new(sluicev1.ListOffsetsResponse)
		if ok, err := a.s.forwardTo(ctx, node, sluicev1.AdminService_ListOffsets_FullMethodName, req, resp); ok {
			return resp, a.s.callError(ctx, err)
		}
	}
	// Each partition is answered by its leader: a follower's high
	// watermark trails the leader's, so its "latest" could leave out
	// records already acknowledged with acks=all. Partitions led elsewhere
	// go, grouped by leader, to their leaders.
	resp := &sluicev1.ListOffsetsResponse{}
	remote := map[uint64][]int{} // leader -> positions in resp.Offsets
	for _, idx := range parts {
		po := &sluicev1.PartitionOffset{Partition: idx, Offset: -1, TimestampMs: -1}
		resp.Offsets = append(resp.Offsets, po)
		p, _, err := a.s.core.md.Partition(req.GetTopic(), idx)
		if err != nil {
			po.Error = a.s.toAPIError(ctx, err).proto()
			continue
		}
		if !p.IsLeader() {
			leader := p.Leader()
			if leader == 0 { // a replica cut off from its leader forgets it; the nodes know
				leader = a.s.leaders(ctx)[p.GroupID()].Leader
			}
			if leader == 0 || leader == a.s.cfg.NodeID || len(forwardedBy(ctx)) >= maxForwardHops {
				po.Error = a.s.toAPIError(ctx, &replication.NotLeaderError{Leader: leader}).proto()
				continue
			}
			remote[leader] = append(remote[leader], len(resp.Offsets)-1)
			continue
		}
		a.localOffset(ctx, req, p, po)
	}
	for _, leader := range slices.Sorted(maps.Keys(remote)) {
		a.remoteOffsets(ctx, req, leader, resp.Offsets, remote[leader])
	}
	return resp, nil
}

// localOffset answers one partition of a ListOffsets from this node's
// replica, its leader.
func (a *adminService) localOffset(ctx context.Context, req *sluicev1.ListOffsetsRequest, p *replication.Partition, po *sluicev1.PartitionOffset) {
	start, hw := p.StartOffset(), p.HighWatermark()
	po.LogStartOffset, po.HighWatermark = int64(start), int64(hw)
	switch spec := req.GetSpec().GetSpec().(type) {
	case *sluicev1.OffsetSpec_Earliest:
		po.Offset = int64(start)
	case *sluicev1.OffsetSpec_TimestampMs:
		off, found, err := p.OffsetForTime(spec.TimestampMs)
		if err != nil {
			po.Error = a.s.toAPIError(ctx, err).proto()
			return
		}
		if found {
			po.Offset = int64(off)
			if bs, err := p.Read(off, 1); err == nil && len(bs) > 0 {
				po.TimestampMs = bs[0].MaxTimestamp
			}
		}
	default: // latest, and unset
		po.Offset = int64(hw)
	}
}

// remoteOffsets fills offs[at...], partitions led by leader, from
// leader's answer to a ListOffsets of just those partitions. A leader that
// cannot be reached leaves each of them a not-leader error (retriable).
func (a *adminService) remoteOffsets(ctx context.Context, req *sluicev1.ListOffsetsRequest, leader uint64, offs []*sluicev1.PartitionOffset, at []int) {
	sub := &sluicev1.ListOffsetsRequest{Topic: req.GetTopic(), Spec: req.GetSpec()}
	for _, i := range at {
		sub.Partitions = append(sub.Partitions, offs[i].GetPartition())
	}
	resp := new(sluicev1.ListOffsetsResponse)
	ok, err := a.s.forwardTo(ctx, leader, sluicev1.AdminService_ListOffsets_FullMethodName, sub, resp)
	if !ok {
		err = &replication.NotLeaderError{Leader: leader}
	}
	got := make(map[int32]*sluicev1.PartitionOffset, len(resp.GetOffsets()))
	for _, o := range resp.GetOffsets() {
		got[o.GetPartition()] = o
	}
	for _, i := range at {
		o, found := got[offs[i].GetPartition()]
		switch {
		case err != nil:
			offs[i].Error = a.s.toAPIError(ctx, err).proto()
		case !found:
			offs[i].Error = a.s.toAPIError(ctx, &replication.NotLeaderError{Leader: leader}).proto()
		default:
			offs[i] = o
		}
	}
}

func (a *adminService) DeleteRecords(ctx context.Context, req *sluicev1.DeleteRecordsRequest) (*sluicev1.DeleteRecordsResponse, error) {
	if _, ok := a.s.core.md.State().Topic(req.GetTopic()); !ok {
		return nil, a.s.callError(ctx, &cluster.UnknownTopicError{Topic: req.GetTopic()})
	}
	if cluster.Internal(req.GetTopic()) {
		return nil, internalTopicWrite(req.GetTopic())
	}
	resp := &sluicev1.DeleteRecordsResponse{}
	for _, idx := range slices.Sorted(maps.Keys(req.GetBeforeOffsets())) {
		before := req.GetBeforeOffsets()[idx]
		dr := &sluicev1.DeletedRecords{Partition: idx}
		resp.Partitions = append(resp.Partitions, dr)
		p, _, err := a.s.core.md.Partition(req.GetTopic(), idx)
		if err != nil {
			dr.Error = a.s.toAPIError(ctx, err).proto()
			continue
		}
		if before == -1 {
			before = int64(p.HighWatermark())
		}
		start, err := p.DeleteRecords(ctx, uint64(before))
		if err != nil {
			dr.Error = a.s.toAPIError(ctx, err).proto()
			dr.LogStartOffset = int64(p.StartOffset())
			continue
		}
		dr.LogStartOffset = int64(start)
	}
	return resp, nil
}

// describeTopic describes a topic; with live set it adds each partition's
// leader, offsets and replica lag, from the local replica when it leads,
// else from the cluster-wide view of leaders (leaders.go).
func (s *Server) describeTopic(t *cluster.Topic, live bool) *sluicev1.TopicDescription {
	d := &sluicev1.TopicDescription{
		Name: t.Name, TopicId: t.ID, ReplicationFactor: t.ReplicationFactor,
		Configs: topicConfigs(t), Internal: cluster.Internal(t.Name),
	}
	var view map[uint64]ledPartition
	for _, pi := range t.Partitions {
		pd := &sluicev1.PartitionDescription{Partition: pi.Index, Leader: -1}
		var p *replication.Partition
		if live {
			p, _ = s.core.host.Partition(pi.GroupID)
		}
		leader := uint64(0)
		lag := map[uint64]int64{}
		voters := map[uint64]bool{}
		if p != nil {
			st := p.Status()
			leader = st.Leader
			pd.LogStartOffset, pd.HighWatermark, pd.SizeBytes = int64(st.StartOffset), int64(st.HighWatermark), p.LogSize()
			for _, r := range st.Replicas {
				lag[r.NodeID] = int64(r.Lag)
			}
			for _, v := range st.Voters {
				voters[v] = true
			}
		}
		if live && (p == nil || !p.IsLeader()) {
			// The leader knows the lag (and, without a replica here, the
			// rest): ask the cluster.
			if view == nil {
				view = s.leaders(context.Background())
			}
			if lp, ok := view[pi.GroupID]; ok {
				leader = lp.Leader
				pd.LogStartOffset, pd.HighWatermark, pd.SizeBytes = int64(lp.Start), int64(lp.HW), lp.Size
				clear(lag)
				for _, r := range lp.Replicas {
					lag[r.NodeID] = int64(r.Lag)
				}
				clear(voters)
				for _, v := range lp.Voters {
					voters[v] = true
				}
			}
		}
		if leader != 0 {
			pd.Leader = int32(leader)
		}
		for _, r := range pi.Replicas {
			pd.Replicas = append(pd.Replicas, &sluicev1.ReplicaStatus{NodeId: int32(r), Leader: r == leader,
				Lag: lag[r], Voter: len(voters) == 0 || voters[r]})
		}
		d.Partitions = append(d.Partitions, pd)
	}
	return d
}

func topicConfigs(t *cluster.Topic) []*sluicev1.TopicConfig {
	var out []*sluicev1.TopicConfig
	for _, e := range t.ConfigEntries() {
		out = append(out, &sluicev1.TopicConfig{Key: e.Key, Value: e.Value, IsDefault: e.IsDefault})
	}
	return out
}
