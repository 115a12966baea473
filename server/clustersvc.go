package server

import (
	"context"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

type clusterService struct {
	sluicev1.UnimplementedClusterServiceServer
	s *Server
}

// nodes lists the registered nodes.
func (c *clusterService) nodes(st *cluster.State) []*sluicev1.Node {
	md := c.s.core.md
	voters := map[uint64]bool{}
	for _, v := range md.ControllerVoters() {
		voters[v] = true
	}
	out := make([]*sluicev1.Node, 0, len(st.Nodes))
	for _, id := range st.NodeIDs() {
		n := st.Nodes[id]
		out = append(out, &sluicev1.Node{
			NodeId: int32(id), Address: n.Addr, Rack: n.Rack, Alive: md.Alive(id), ControllerVoter: voters[id],
			Decommissioning: st.Decommissioned[id],
		})
	}
	return out
}

func controllerID(md *cluster.Metadata) int32 {
	if id := md.ControllerID(); id != 0 {
		return int32(id)
	}
	return -1
}

func (c *clusterService) GetMetadata(ctx context.Context, req *sluicev1.GetMetadataRequest) (*sluicev1.GetMetadataResponse, error) {
	md := c.s.core.md
	st := md.State()
	resp := &sluicev1.GetMetadataResponse{ClusterId: st.ClusterID, ControllerId: controllerID(md), Nodes: c.nodes(st)}
	names := req.GetTopics()
	if len(names) == 0 {
		for _, n := range st.TopicNames() {
			if req.GetIncludeInternal() || !cluster.Internal(n) {
				names = append(names, n)
			}
		}
	}
	var view map[uint64]ledPartition
	for _, name := range names {
		t, ok := st.Topics[name]
		if !ok {
			continue
		}
		tm := &sluicev1.TopicMetadata{Name: name, Internal: cluster.Internal(name)}
		for _, pi := range t.Partitions {
			pm := &sluicev1.PartitionMetadata{Partition: pi.Index, Leader: -1}
			for _, r := range pi.Replicas {
				pm.Replicas = append(pm.Replicas, int32(r))
			}
			if p, ok := c.s.core.host.Partition(pi.GroupID); ok {
				if st := p.Status(); st.Leader != 0 {
					pm.Leader = int32(st.Leader)
					pm.LeaderEpoch = int64(st.Term)
				}
			}
			if pm.Leader < 0 { // no replica here: ask the leaders
				if view == nil {
					view = c.s.leaders(ctx)
				}
				if lp, ok := view[pi.GroupID]; ok {
					pm.Leader, pm.LeaderEpoch = int32(lp.Leader), int64(lp.Term)
				}
			}
			tm.Partitions = append(tm.Partitions, pm)
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}

func (c *clusterService) DescribeCluster(ctx context.Context, req *sluicev1.DescribeClusterRequest) (*sluicev1.DescribeClusterResponse, error) {
	md := c.s.core.md
	if !md.IsController() { // the controller knows which nodes are alive
		resp := new(sluicev1.DescribeClusterResponse)
		if ok, err := c.s.forwardTo(ctx, md.ControllerID(), sluicev1.ClusterService_DescribeCluster_FullMethodName, req, resp); ok && err == nil {
			return resp, nil
		}
	}
	st := md.State()
	resp := &sluicev1.DescribeClusterResponse{ClusterId: st.ClusterID, ControllerId: controllerID(md), Nodes: c.nodes(st),
		PartitionCount: int32(st.PartitionCount())}
	resp.UnderReplicatedPartitions, resp.LeaderlessPartitions = c.s.partitionHealth(ctx, st)
	return resp, nil
}

// partitionHealth counts the under-replicated and leaderless partitions
// of the cluster, from every leader's report.
func (s *Server) partitionHealth(ctx context.Context, st *cluster.State) (under, leaderless int32) {
	view := s.leaders(ctx)
	for _, t := range st.Topics {
		for _, pi := range t.Partitions {
			lp, ok := view[pi.GroupID]
			switch {
			case !ok:
				leaderless++
			case lp.Under || len(lp.Replicas) < len(pi.Replicas):
				under++
			}
		}
	}
	return under, leaderless
}

func (c *clusterService) DecommissionNode(ctx context.Context, req *sluicev1.DecommissionNodeRequest) (*sluicev1.DecommissionNodeResponse, error) {
	if req.GetNodeId() <= 0 {
		return nil, invalidField("node_id", "must be positive")
	}
	n, err := c.s.core.md.DecommissionNode(ctx, uint64(req.GetNodeId()))
	if err != nil {
		resp := new(sluicev1.DecommissionNodeResponse)
		if ok, ferr := c.s.toController(ctx, err, sluicev1.ClusterService_DecommissionNode_FullMethodName, req, resp); ok {
			return resp, c.s.callError(ctx, ferr)
		}
		return nil, c.s.callError(ctx, err)
	}
	c.s.logger.InfoContext(ctx, "node decommissioning", "node", req.GetNodeId(), "replicas_to_move", n)
	return &sluicev1.DecommissionNodeResponse{ReplicasToMove: int32(n)}, nil
}

func (c *clusterService) ReassignPartition(ctx context.Context, req *sluicev1.ReassignPartitionRequest) (*sluicev1.ReassignPartitionResponse, error) {
	if len(req.GetReplicas()) == 0 {
		return nil, invalidField("replicas", "must name at least one node")
	}
	replicas := make([]uint64, len(req.GetReplicas()))
	for i, r := range req.GetReplicas() {
		if r <= 0 {
			return nil, invalidField("replicas", "node id %d", r)
		}
		replicas[i] = uint64(r)
	}
	if err := c.s.core.md.ReassignPartition(ctx, req.GetTopic(), req.GetPartition(), replicas); err != nil {
		resp := new(sluicev1.ReassignPartitionResponse)
		if ok, ferr := c.s.toController(ctx, err, sluicev1.ClusterService_ReassignPartition_FullMethodName, req, resp); ok {
			return resp, c.s.callError(ctx, ferr)
		}
		return nil, c.s.callError(ctx, err)
	}
	c.s.logger.InfoContext(ctx, "partition reassigning", "topic", req.GetTopic(), "partition", req.GetPartition(), "replicas", replicas)
	return &sluicev1.ReassignPartitionResponse{}, nil
}

// BalanceLeaders hands leadership to preferred leaders on every node: the
// node called balances what it leads and asks every other node to do so.
func (c *clusterService) BalanceLeaders(ctx context.Context, req *sluicev1.BalanceLeadersRequest) (*sluicev1.BalanceLeadersResponse, error) {
	total := int32(c.s.core.md.BalanceLeaders())
	if forwarded(ctx) {
		return &sluicev1.BalanceLeadersResponse{Transfers: total}, nil
	}
	for _, id := range c.s.core.md.State().NodeIDs() {
		if id == c.s.cfg.NodeID {
			continue
		}
		resp := new(sluicev1.BalanceLeadersResponse)
		if ok, err := c.s.forwardTo(ctx, id, sluicev1.ClusterService_BalanceLeaders_FullMethodName, req, resp); ok && err == nil {
			total += resp.GetTransfers()
		} else if err != nil {
			c.s.logger.WarnContext(ctx, "balancing leaders on a node failed", "node", id, "err", err)
		}
	}
	return &sluicev1.BalanceLeadersResponse{Transfers: total}, nil
}
