package app

import (
	"testing"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func TestReplicaColumns(t *testing.T) {
	p := &sluicev1.PartitionDescription{Replicas: []*sluicev1.ReplicaStatus{
		{NodeId: 1, Leader: true, Voter: true},
		{NodeId: 3, Voter: true},
		{NodeId: 2, Lag: 12, Voter: true},
	}}
	reps, lags, lagging := ReplicaColumns(p)
	if reps != "[1 3 2]" || lags != "[0 0 12]" || !lagging {
		t.Fatalf("got %q %q %v", reps, lags, lagging)
	}
	p.Replicas[2].Lag = 0
	if _, lags, lagging := ReplicaColumns(p); lags != "[0 0 0]" || lagging {
		t.Fatalf("caught up: %q %v", lags, lagging)
	}
	p.Replicas = append(p.Replicas, &sluicev1.ReplicaStatus{NodeId: 4})
	if reps, lags, lagging := ReplicaColumns(p); reps != "[1 3 2 4]" || lags != "[0 0 0 0(learner)]" || !lagging {
		t.Fatalf("learner: %q %q %v", reps, lags, lagging)
	}
}
