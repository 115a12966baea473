package server

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/coordinator"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// groupError maps a coordinator error to the API's; other errors pass
// through to toAPIError.
func (s *Server) groupError(group string, err error) error {
	if err == nil {
		return nil
	}
	var (
		se *coordinator.StaleEpochError
		nc *coordinator.NotCoordinatorError
	)
	md := map[string]string{"group": group}
	switch {
	case errors.As(err, &se):
		md["member_id"] = se.Member
		md["member_epoch"] = itoa(se.Epoch)
		md["current_epoch"] = itoa(se.CurrentEpoch)
		return newAPIError(codes.FailedPrecondition, sluicev1.ErrorReason_ERROR_REASON_STALE_MEMBER_EPOCH, md,
			"stale member epoch %d (current %d): %s; rejoin", se.Epoch, se.CurrentEpoch, se.Reason)
	case errors.As(err, &nc):
		if nc.Leader != 0 {
			md["coordinator"] = itoa(nc.Leader)
			if addr := s.nodeAddr(nc.Leader); addr != "" {
				md["coordinator_address"] = addr
			}
		}
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NOT_COORDINATOR, md,
			"this node does not coordinate group %q", group)
	case errors.Is(err, coordinator.ErrLoading):
		// This node will coordinate the group in a moment: retry here.
		md["coordinator"] = itoa(s.cfg.NodeID)
		if addr := s.nodeAddr(s.cfg.NodeID); addr != "" {
			md["coordinator_address"] = addr
		}
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NOT_COORDINATOR, md,
			"the coordinator of group %q is loading it; retry shortly", group)
	case errors.Is(err, coordinator.ErrUnknownGroup):
		return newAPIError(codes.NotFound, sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_GROUP, md, "group %q does not exist", group)
	case errors.Is(err, coordinator.ErrUnknownMember):
		return newAPIError(codes.NotFound, sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_MEMBER, md,
			"the member is not in group %q (it left, timed out or was replaced); rejoin", group)
	case errors.Is(err, coordinator.ErrFenced):
		md["replaced"] = "true"
		return newAPIError(codes.FailedPrecondition, sluicev1.ErrorReason_ERROR_REASON_STALE_MEMBER_EPOCH, md,
			"a newer stream joined group %q as this member", group)
	case errors.Is(err, coordinator.ErrGroupNotEmpty):
		return newAPIError(codes.FailedPrecondition, sluicev1.ErrorReason_ERROR_REASON_GROUP_NOT_EMPTY, md,
			"group %q has members", group)
	case errors.Is(err, coordinator.ErrInvalid):
		return newAPIError(codes.InvalidArgument, sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST, md, "%s", trimPrefix(err.Error()))
	case errors.Is(err, coordinator.ErrClosed):
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, nil, "the node is shutting down")
	}
	return err
}

// sortTPs sorts partitions by topic, then partition.
func sortTPs(tps []coordinator.TP) {
	slices.SortFunc(tps, func(a, b coordinator.TP) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
}

func unknownTopic(topic string) error { return &cluster.UnknownTopicError{Topic: topic} }

// unavailablePartition: the partition's offsets could not be read.
func unavailablePartition(topic string, p int32) error {
	return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_LEADER_NOT_AVAILABLE,
		map[string]string{"topic": topic, "partition": itoa(p)}, "the offsets of %s/%d cannot be read right now", topic, p)
}
