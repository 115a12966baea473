package clients

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Admin manages topics and reads cluster metadata. Its calls go to any broker (the
// server forwards where needed) and return the API's own messages. It is safe for
// concurrent use.
type Admin struct {
	cfg config
	cl  *cluster
}

// NewAdmin creates an admin client. It connects lazily.
func NewAdmin(opts ...AdminOpt) (*Admin, error) {
	cfg := defaults()
	for _, o := range opts {
		o.applyAdmin(&cfg)
	}
	if len(cfg.brokers) == 0 {
		return nil, errors.New("sluice: no brokers configured")
	}
	return &Admin{cfg: cfg, cl: newCluster(&cfg)}, nil
}

// Close closes the admin client's connections.
func (a *Admin) Close() error { return a.cl.close() }

func (a *Admin) admin(ctx context.Context, fn func(context.Context, sluicev1.AdminServiceClient) error) error {
	return a.cl.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		return fn(ctx, sluicev1.NewAdminServiceClient(cc))
	})
}

// TopicSpec describes a topic to create. Zero Partitions or ReplicationFactor take the
// cluster defaults.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int32
	Configs           map[string]string
	ValidateOnly      bool
}

// CreateTopic creates a topic. An existing topic fails with ErrTopicExists.
func (a *Admin) CreateTopic(ctx context.Context, spec TopicSpec) (*sluicev1.TopicDescription, error) {
	var resp *sluicev1.CreateTopicResponse
	err := a.admin(ctx, func(ctx context.Context, c sluicev1.AdminServiceClient) (err error) {
		resp, err = c.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: spec.Name, Partitions: spec.Partitions,
			ReplicationFactor: spec.ReplicationFactor, Configs: spec.Configs, ValidateOnly: spec.ValidateOnly})
		return err
	})
	return resp.GetTopic(), err
}

// DeleteTopic deletes a topic and its data.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	return a.admin(ctx, func(ctx context.Context, c sluicev1.AdminServiceClient) error {
		_, err := c.DeleteTopic(ctx, &sluicev1.DeleteTopicRequest{Name: name})
		return err
	})
}

// ListTopics lists topics sorted by name; internal ones only when asked.
func (a *Admin) ListTopics(ctx context.Context, includeInternal bool) ([]*sluicev1.TopicSummary, error) {
	var resp *sluicev1.ListTopicsResponse
	err := a.admin(ctx, func(ctx context.Context, c sluicev1.AdminServiceClient) (err error) {
		resp, err = c.ListTopics(ctx, &sluicev1.ListTopicsRequest{IncludeInternal: includeInternal})
		return err
	})
	return resp.GetTopics(), err
}

// DescribeTopic returns a topic's partitions, replicas and configuration.
func (a *Admin) DescribeTopic(ctx context.Context, name string) (*sluicev1.TopicDescription, error) {
	var resp *sluicev1.DescribeTopicResponse
	err := a.admin(ctx, func(ctx context.Context, c sluicev1.AdminServiceClient) (err error) {
		resp, err = c.DescribeTopic(ctx, &sluicev1.DescribeTopicRequest{Name: name})
		return err
	})
	return resp.GetTopic(), err
}

// AddPartitions raises a topic's partition count to total.
func (a *Admin) AddPartitions(ctx context.Context, name string, total int32) (*sluicev1.TopicDescription, error) {
	var resp *sluicev1.AddPartitionsResponse
	err := a.admin(ctx, func(ctx context.Context, c sluicev1.AdminServiceClient) (err error) {
		resp, err = c.AddPartitions(ctx, &sluicev1.AddPartitionsRequest{Name: name, TotalPartitions: total})
		return err
	})
	return resp.GetTopic(), err
}

// AlterTopicConfig sets and resets configuration keys; it returns every key's effective
// value afterwards.
func (a *Admin) AlterTopicConfig(ctx context.Context, name string, set map[string]string, reset ...string) ([]*sluicev1.TopicConfig, error) {
	var resp *sluicev1.AlterTopicConfigResponse
	err := a.admin(ctx, func(ctx context.Context, c sluicev1.AdminServiceClient) (err error) {
		resp, err = c.AlterTopicConfig(ctx, &sluicev1.AlterTopicConfigRequest{Name: name, Set: set, Reset_: reset})
		return err
	})
	return resp.GetConfigs(), err
}

// ListOffsets resolves o (AtStart, AtEnd or AfterTime; At is returned as the latest)
// for partitions of topic, all of them when none are given. Per-partition failures are
// in each PartitionOffset's Error.
func (a *Admin) ListOffsets(ctx context.Context, topic string, o Offset, partitions ...int32) ([]*sluicev1.PartitionOffset, error) {
	return listOffsets(ctx, a.cl, topic, o, false, partitions)
}

// DeleteRecords moves partitions' log start offsets to the given offsets (-1: the high
// watermark), discarding older records.
func (a *Admin) DeleteRecords(ctx context.Context, topic string, before map[int32]int64) ([]*sluicev1.DeletedRecords, error) {
	var resp *sluicev1.DeleteRecordsResponse
	err := a.admin(ctx, func(ctx context.Context, c sluicev1.AdminServiceClient) (err error) {
		resp, err = c.DeleteRecords(ctx, &sluicev1.DeleteRecordsRequest{Topic: topic, BeforeOffsets: before})
		return err
	})
	return resp.GetPartitions(), err
}

// Metadata returns nodes and the partition leaders of topics (all topics when none are
// given).
func (a *Admin) Metadata(ctx context.Context, topics ...string) (*sluicev1.GetMetadataResponse, error) {
	return a.cl.refresh(ctx, topics...)
}

// DescribeCluster returns the cluster id, controller and nodes.
func (a *Admin) DescribeCluster(ctx context.Context) (*sluicev1.DescribeClusterResponse, error) {
	var resp *sluicev1.DescribeClusterResponse
	err := a.cl.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = sluicev1.NewClusterServiceClient(cc).DescribeCluster(ctx, &sluicev1.DescribeClusterRequest{})
		return err
	})
	return resp, err
}
