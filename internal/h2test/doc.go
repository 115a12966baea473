// Package h2test records the HTTP/2 frames of gRPC client connections, for
// tests of connection settings that show only on the wire (flow control,
// pings).
package h2test
