package server

import (
	"context"
	"maps"
	"slices"

	"github.com/sluicehq/sluice/coordinator"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// ListGroups lists the groups of every node: this node's own, and those
// of the other nodes (asked once, not forwarded further).
func (g *groupService) ListGroups(ctx context.Context, req *sluicev1.ListGroupsRequest) (*sluicev1.ListGroupsResponse, error) {
	c, err := g.coord()
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError("", err))
	}
	byID := map[string]*sluicev1.GroupSummary{}
	for _, gi := range c.List() {
		byID[gi.ID] = &sluicev1.GroupSummary{GroupId: gi.ID, State: sluicev1.GroupState(gi.State),
			Members: int32(len(gi.Members)), Coordinator: int32(g.s.cfg.NodeID)}
	}
	if !forwarded(ctx) {
		for _, id := range g.s.core.md.State().NodeIDs() {
			resp := new(sluicev1.ListGroupsResponse)
			if ok, err := g.s.forwardTo(ctx, id, sluicev1.GroupService_ListGroups_FullMethodName, req, resp); !ok || err != nil {
				continue
			}
			for _, gs := range resp.GetGroups() {
				byID[gs.GetGroupId()] = gs
			}
		}
	}
	out := &sluicev1.ListGroupsResponse{}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out.Groups = append(out.Groups, byID[id])
	}
	return out, nil
}

// partitionOffsets returns the log start offset and high watermark of
// partitions of a topic (through ListOffsets, which finds the leader).
func (g *groupService) partitionOffsets(ctx context.Context, topic string, parts []int32, spec *sluicev1.OffsetSpec) map[int32]*sluicev1.PartitionOffset {
	out := map[int32]*sluicev1.PartitionOffset{}
	resp, err := (&adminService{s: g.s}).ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: parts, Spec: spec})
	if err != nil {
		return out
	}
	for _, po := range resp.GetOffsets() {
		if po.GetError() == nil {
			out[po.GetPartition()] = po
		}
	}
	return out
}

func (g *groupService) DescribeGroup(ctx context.Context, req *sluicev1.DescribeGroupRequest) (*sluicev1.DescribeGroupResponse, error) {
	if req.GetGroupId() == "" {
		return nil, invalidField("group_id", "required")
	}
	c, err := g.coord()
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	gi, err := c.Describe(ctx, req.GetGroupId())
	resp := new(sluicev1.DescribeGroupResponse)
	if ok, ferr := g.forward(ctx, err, sluicev1.GroupService_DescribeGroup_FullMethodName, req, resp); ok {
		return resp, ferr
	}
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	resp = &sluicev1.DescribeGroupResponse{GroupId: gi.ID, State: sluicev1.GroupState(gi.State),
		Assignor: sluicev1.Assignor(gi.Assignor), GroupEpoch: gi.Epoch, Coordinator: int32(g.s.cfg.NodeID)}
	for _, m := range gi.Members {
		resp.Members = append(resp.Members, &sluicev1.GroupMember{MemberId: m.ID, InstanceId: m.InstanceID,
			ClientId: m.ClientID, MemberEpoch: m.Epoch, Assigned: topicPartitions(m.Assigned),
			Revoking: topicPartitions(m.Revoking), ClientAddress: m.ClientAddr})
	}
	// Lag of every partition the group owns or has committed.
	tps := slices.Collect(maps.Keys(gi.Offsets))
	for tp := range gi.Owner {
		if _, ok := gi.Offsets[tp]; !ok {
			tps = append(tps, tp)
		}
	}
	sortTPs(tps)
	byTopic := map[string][]int32{}
	for _, tp := range tps {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	offs := map[string]map[int32]*sluicev1.PartitionOffset{}
	for t, parts := range byTopic {
		offs[t] = g.partitionOffsets(ctx, t, parts, nil)
	}
	for _, tp := range tps {
		pl := &sluicev1.PartitionLag{Topic: tp.Topic, Partition: tp.Partition, CommittedOffset: -1, HighWatermark: -1,
			Lag: -1, MemberId: gi.Owner[tp]}
		if co, ok := gi.Offsets[tp]; ok {
			pl.CommittedOffset = co.Offset
		}
		if po := offs[tp.Topic][tp.Partition]; po != nil {
			pl.HighWatermark = po.GetHighWatermark()
			from := pl.CommittedOffset
			if from < 0 {
				from = po.GetLogStartOffset()
			}
			pl.Lag = max(pl.HighWatermark-from, 0)
		}
		resp.Offsets = append(resp.Offsets, pl)
	}
	return resp, nil
}

func (g *groupService) ResetOffsets(ctx context.Context, req *sluicev1.ResetOffsetsRequest) (*sluicev1.ResetOffsetsResponse, error) {
	if req.GetGroupId() == "" {
		return nil, invalidField("group_id", "required")
	}
	if len(req.GetPartitions()) == 0 {
		return nil, invalidField("partitions", "name at least one topic")
	}
	if req.GetTarget().GetTarget() == nil {
		return nil, invalidField("target", "required")
	}
	c, err := g.coord()
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	// The group must be empty (checked again when the offsets are written).
	gi, err := c.Describe(ctx, req.GetGroupId())
	resp := new(sluicev1.ResetOffsetsResponse)
	if ok, ferr := g.forward(ctx, err, sluicev1.GroupService_ResetOffsets_FullMethodName, req, resp); ok {
		return resp, ferr
	}
	if err == nil && len(gi.Members) > 0 {
		err = coordinator.ErrGroupNotEmpty
	}
	if err != nil && err != coordinator.ErrUnknownGroup {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	var commits []coordinator.OffsetCommit
	for _, tps := range req.GetPartitions() {
		t, ok := g.s.core.md.State().Topic(tps.GetTopic())
		if !ok {
			return nil, g.s.callError(ctx, unknownTopic(tps.GetTopic()))
		}
		parts := tps.GetPartitions()
		if len(parts) == 0 {
			for _, p := range t.Partitions {
				parts = append(parts, p.Index)
			}
		}
		var spec *sluicev1.OffsetSpec
		switch tg := req.GetTarget().GetTarget().(type) {
		case *sluicev1.ResetTarget_Earliest:
			spec = &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}}
		case *sluicev1.ResetTarget_TimestampMs:
			spec = &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_TimestampMs{TimestampMs: tg.TimestampMs}}
		default:
			spec = &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}
		}
		offs := g.partitionOffsets(ctx, t.Name, parts, spec)
		for _, p := range parts {
			if p < 0 || int(p) >= len(t.Partitions) {
				return nil, invalidField("partitions", "topic %q has no partition %d", t.Name, p)
			}
			po := offs[p]
			var off int64
			switch tg := req.GetTarget().GetTarget().(type) {
			case *sluicev1.ResetTarget_Offset:
				if tg.Offset < 0 {
					return nil, invalidField("target.offset", "must not be negative")
				}
				off = tg.Offset
			case *sluicev1.ResetTarget_TimestampMs:
				if po == nil {
					return nil, g.s.callError(ctx, unavailablePartition(t.Name, p))
				}
				off = po.GetOffset()
				if off < 0 { // no record at or after the time: the end
					off = po.GetHighWatermark()
				}
			default:
				if po == nil {
					return nil, g.s.callError(ctx, unavailablePartition(t.Name, p))
				}
				off = po.GetOffset()
			}
			commits = append(commits, coordinator.OffsetCommit{TP: coordinator.TP{Topic: t.Name, Partition: p}, Offset: off})
		}
	}
	if !req.GetDryRun() {
		if err := c.Reset(ctx, req.GetGroupId(), commits); err != nil {
			return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
		}
	}
	for _, o := range commits {
		resp.Offsets = append(resp.Offsets, &sluicev1.CommittedOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset})
	}
	return resp, nil
}

func (g *groupService) DeleteGroup(ctx context.Context, req *sluicev1.DeleteGroupRequest) (*sluicev1.DeleteGroupResponse, error) {
	if req.GetGroupId() == "" {
		return nil, invalidField("group_id", "required")
	}
	c, err := g.coord()
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	err = c.Delete(ctx, req.GetGroupId())
	resp := new(sluicev1.DeleteGroupResponse)
	if ok, ferr := g.forward(ctx, err, sluicev1.GroupService_DeleteGroup_FullMethodName, req, resp); ok {
		return resp, ferr
	}
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	return resp, nil
}
