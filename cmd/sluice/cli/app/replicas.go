package app

import (
	"fmt"
	"strings"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// ReplicaColumns renders a partition's replicas and their lag behind the
// leader (entries, as last reported; "(learner)" marks a replica still
// catching up before it votes) as table cells such as "[1 3 2]" and
// "[0 0 12]". lagging reports whether any replica is behind or a learner.
func ReplicaColumns(p *sluicev1.PartitionDescription) (replicas, lags string, lagging bool) {
	reps := make([]string, 0, len(p.GetReplicas()))
	ls := make([]string, 0, len(p.GetReplicas()))
	for _, r := range p.GetReplicas() {
		reps = append(reps, fmt.Sprint(r.GetNodeId()))
		lag := fmt.Sprint(r.GetLag())
		if !r.GetVoter() {
			lag += "(learner)"
		}
		ls = append(ls, lag)
		lagging = lagging || r.GetLag() > 0 || !r.GetVoter()
	}
	return "[" + strings.Join(reps, " ") + "]", "[" + strings.Join(ls, " ") + "]", lagging
}
