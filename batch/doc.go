// Package batch owns the record batch wire format: how a sluicev1.RecordBatch is
// encoded by producers, validated and stored by partition leaders, served to consumers
// and decoded by them. It imports only the generated API.
//
// # Two shapes, one set of bytes
//
// A RecordBatch carries its records either as `records` (field 15, repeated Record: what
// grpcurl and generated clients read and write) or as `records_data` (field 16: the same
// field-15 bytes as one byte string, optionally compressed: what the Go client sends).
// Uncompressed `records_data` is byte for byte the encoding of the `records` field.
//
// # Stored form
//
// The stored form of a batch is the protobuf encoding of its RecordBatch without
// base_offset (1) and leader_epoch (12), in a canonical layout written by Normalize:
//
//	record_count     (2)  varint, > 0
//	compression      (3)  varint, NONE (1) .. ZSTD (5), never UNSPECIFIED
//	timestamp_type   (4)  varint, CREATE_TIME (1) or LOG_APPEND_TIME (2)
//	max_timestamp_ms (5)  varint, omitted when 0
//	producer_id      (6)  varint, only for idempotent/transactional batches (> 0)
//	producer_epoch   (7)  varint, only with producer_id, omitted when 0
//	base_sequence    (8)  varint, only with producer_id, omitted when 0
//	transactional    (9)  varint 1, omitted when false
//	control          (10) varint 1, omitted when false (only the server writes it)
//	crc              (11) fixed32, CRC-32C of the records bytes, omitted when 0
//	then either
//	records          (15) one entry per record (tag, length, Record) — compression NONE
//	records_data     (16) exactly one field holding the compressed bytes as sent — otherwise
//
// Header fields appear in increasing field order, each at most once, with proto3's
// zero-omission. A plain batch has no producer: ParseHeader reports producer id, epoch and
// base sequence as -1. The crc always covers the records bytes as stored: the field-15
// entries of an uncompressed batch (which equal the uncompressed records_data a producer
// checksummed) or the compressed records_data.
//
// Serving splices the stored bytes into a response without re-encoding (Splice): the
// bytes become the RecordBatch's unknown fields, and proto.Marshal emits base_offset and
// leader_epoch followed by the stored bytes verbatim. Every protobuf decoder reads that
// as one RecordBatch, so an uncompressed batch reaches a thin client as plain `records`
// and a compressed one reaches the Go client as the `records_data` it produced. Only a
// consumer asking for RECORD_FORMAT_DECOMPRESSED makes the server decompress.
//
// # Compression
//
// GZIP is RFC 1952 (klauspost/compress/gzip), SNAPPY the Snappy block format without
// framing (klauspost/compress/snappy; the server accepts only reference Snappy, no S2
// extensions), LZ4 the LZ4 frame format (pierrec/lz4/v4, 64 KiB blocks), ZSTD the
// Zstandard frame format (klauspost/compress/zstd). Decompression is always bounded:
// Limits.MaxDecompressedBytes for Normalize (default max(4×MaxBytes, 32 MiB)) and
// HardMaxDecompressedBytes (256 MiB) everywhere, so a decompression bomb fails with a
// *TooLargeError after at most that much output. Encoders and decoders are pooled.
//
// # Timestamps
//
// Records carry create time in timestamp_ms; 0 means "not set". Normalize computes
// max_timestamp_ms from the records; a record without a timestamp counts as the time the
// batch was received (Limits.NowMs). Plain records sent by a thin client are stamped
// with that time in the stored bytes (they are encoded by the server anyway);
// records_data is stored as sent, and Records gives a record without a timestamp the
// batch's max_timestamp_ms. Under log-append time (Limits.LogAppendTimeMs) the batch's
// timestamp type is LOG_APPEND_TIME, max_timestamp_ms is the append time, and Records
// gives every record that time.
//
// # Validation
//
// Normalize refuses (ErrInvalid, naming the field) base_offset ≠ 0, control set, an
// unknown codec, both or neither shape, record_count ≤ 0 with records_data,
// transactional without a producer id, a negative epoch or sequence with one; and
// (ErrCorrupt) a crc mismatch, a record count that disagrees with the records found, data
// its codec rejects, or any record that the generated code would not decode as a
// sluicev1.Record (unknown fields, wrong wire types, header keys that are not UTF-8) or
// whose timestamp is negative; and (*TooLargeError) a stored size over Limits.MaxBytes.
// Records are walked with protowire without allocating: Normalize of the records_data
// shape allocates only the stored bytes, whatever the number of records, and does not
// zero them before copying the records in. NormalizeFramed leaves room in front of the
// stored bytes, in the same allocation, for a header of the caller's (the server puts
// the replication entry header there, so the entry is not a second copy).
//
// # Partitioning
//
// KeyPartition places a key where Kafka's default partitioner would:
// toPositive(murmur2(key)) % partitions, with Kafka's murmur2 (seed 0x9747b28c).
//
// # Locking
//
// The package holds no mutable shared state besides sync.Pools of codec readers, writers
// and scratch buffers (safe for concurrent use) and one shared zstd encoder used only
// through EncodeAll, which is safe for concurrent use. A Builder belongs to one goroutine.
// All functions are safe to call concurrently.
package batch
