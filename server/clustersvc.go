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
	for _, t := range st.Topics {
		for _, pi := range t.Partitions {
			p, ok := c.s.core.host.Partition(pi.GroupID)
			if !ok {
				continue // hosted elsewhere: that node reports it
			}
			st := p.Status()
			if st.Leader == 0 {
				resp.LeaderlessPartitions++
			} else if st.IsLeader && st.UnderReplicated() {
				resp.UnderReplicatedPartitions++
			}
		}
	}
	return resp, nil
}

func (c *clusterService) DecommissionNode(context.Context, *sluicev1.DecommissionNodeRequest) (*sluicev1.DecommissionNodeResponse, error) {
	return nil, unsupported("decommissioning a node")
}

func (c *clusterService) ReassignPartition(context.Context, *sluicev1.ReassignPartitionRequest) (*sluicev1.ReassignPartitionResponse, error) {
	return nil, unsupported("reassigning a partition")
}

func (c *clusterService) BalanceLeaders(context.Context, *sluicev1.BalanceLeadersRequest) (*sluicev1.BalanceLeadersResponse, error) {
	return nil, unsupported("balancing leaders")
}
