package server

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/replication/grpctransport"
)

// quorumMember is one entry of Config.ControllerQuorum.
type quorumMember struct {
	id   uint64
	addr string // internal listener
}

// parseQuorum parses "id@host:port" entries.
func parseQuorum(entries []string) ([]quorumMember, error) {
	var out []quorumMember
	for _, e := range entries {
		idStr, addr, ok := strings.Cut(strings.TrimSpace(e), "@")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if !ok || err != nil || id == 0 || id > 1<<31-1 {
			return nil, fmt.Errorf("server: controller quorum entry %q: want id@host:port", e)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("server: controller quorum entry %q: %w", e, err)
		}
		if slices.ContainsFunc(out, func(m quorumMember) bool { return m.id == id }) {
			return nil, fmt.Errorf("server: controller quorum lists node %d twice", id)
		}
		out = append(out, quorumMember{id: id, addr: addr})
	}
	return out, nil
}

// newRaftTransport is the node-to-node Raft transport of a node in a
// cluster of several processes: it reaches the controller voters at their
// quorum addresses and every other node at the internal address it
// registered in the cluster metadata (or, while a joining node opens, at
// the addresses the controller answered).
func (s *Server) newRaftTransport(quorum []quorumMember) (*grpctransport.Transport, error) {
	static := map[uint64]string{}
	for _, m := range quorum {
		static[m.id] = m.addr
	}
	return grpctransport.New(grpctransport.Config{
		NodeID: s.cfg.NodeID,
		Resolve: func(node uint64) (string, bool) {
			if a, ok := static[node]; ok {
				return a, true
			}
			if a, ok := s.joined.get(node); ok && s.opened.Load() == nil {
				return a, true
			}
			if c := s.opened.Load(); c != nil {
				if n, ok := c.md.State().Nodes[node]; ok && n.InternalAddr != "" {
					return n.InternalAddr, true
				}
			}
			return "", false
		},
		Logger: s.logger.With("component", "transport"),
	})
}
