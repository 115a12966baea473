package cluster

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func FuzzApplyRecord(f *testing.F) {
	seed := []*command{
		{Type: cmdRegisterNode, ClusterID: "c", Node: &NodeInfo{ID: 1, Addr: "a"}},
		{Type: cmdCreateTopic, Topic: "t", TopicID: "id", RF: 1, Replicas: [][]uint64{{1}, {1}}},
		{Type: cmdAlterConfig, Topic: "t", Configs: map[string]string{ConfigRetentionMs: "5"}},
		{Type: cmdAddPartitions, Topic: "t", Replicas: [][]uint64{{1}}},
		{Type: cmdAllocProducerIDs, NodeID: 1, Count: 10},
		{Type: cmdDeleteTopic, Topic: "t"},
	}
	for _, c := range seed {
		b, err := encodeCommand(c, 1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x7a, 0x03, 0x0a, 0x01, 0x7b})
	// A whole history in one batch: nodes, a topic, a move and its end, a
	// decommission.
	mv := []move{{Topic: "m", Partition: 0, Replicas: []uint64{2, 3}}}
	f.Add(encodeCommandsForTest(f, []*command{
		{Type: cmdRegisterNode, ClusterID: "c", Node: &NodeInfo{ID: 1}},
		{Type: cmdRegisterNode, Node: &NodeInfo{ID: 2}},
		{Type: cmdRegisterNode, Node: &NodeInfo{ID: 3}},
		{Type: cmdCreateTopic, Topic: "m", TopicID: "id", RF: 2, Replicas: [][]uint64{{1, 2}, {2, 1}}},
		{Type: cmdReassign, Moves: mv},
		{Type: cmdReassignDone, Moves: mv},
		{Type: cmdDecommission, NodeID: 2, Moves: []move{{Topic: "m", Partition: 0, Replicas: []uint64{3}}, {Topic: "m", Partition: 1, Replicas: []uint64{1, 3}}}},
		{Type: cmdDecommission, NodeID: 1},
		{Type: cmdRemoveNode, NodeID: 2},
		{Type: cmdRemoveNode, NodeID: 1},
		{Type: cmdRegisterNode, Node: &NodeInfo{ID: 1}},
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := decodeCommands(data)
		if err != nil {
			return
		}
		s := newState()
		for _, c := range cmds {
			ns, err := apply(s, c)
			if err != nil && ns != s {
				t.Fatal("rejected command changed the state")
			}
			for _, top := range ns.Topics {
				if err := ValidateConfigs(top.Configs, top.ReplicationFactor); err != nil {
					t.Fatalf("applied state holds an invalid config: %v", err)
				}
				for _, p := range top.Partitions {
					// A decommission without a spare node shrinks by one.
					if n, rf := len(p.Replicas), int(top.ReplicationFactor); n > rf || n < max(rf-1, 1) {
						t.Fatalf("placement %v does not match rf %d", p.Replicas, top.ReplicationFactor)
					}
					if p.Target != nil && (len(p.Target) > int(top.ReplicationFactor) || len(p.Target) == 0) {
						t.Fatalf("target %v does not match rf %d", p.Target, top.ReplicationFactor)
					}
				}
			}
			s = ns
		}
	})
}

// encodeCommandsForTest encodes commands as one stored batch of several
// records.
func encodeCommandsForTest(tb testing.TB, cmds []*command) []byte {
	b := &sluicev1.RecordBatch{RecordCount: int32(len(cmds)), ProducerId: -1, ProducerEpoch: -1, BaseSequence: -1}
	for _, c := range cmds {
		c.V = commandVersion
		v, err := json.Marshal(c)
		if err != nil {
			tb.Fatal(err)
		}
		b.Records = append(b.Records, &sluicev1.Record{Value: v})
	}
	out, err := proto.Marshal(b)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
