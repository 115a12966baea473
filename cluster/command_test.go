package cluster

import (
	"testing"
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
					if len(p.Replicas) != int(top.ReplicationFactor) {
						t.Fatalf("placement %v does not match rf %d", p.Replicas, top.ReplicationFactor)
					}
				}
			}
			s = ns
		}
	})
}
