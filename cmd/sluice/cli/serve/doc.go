// Package serve implements `sluice server`: it builds a server.Config from flags,
// SLUICE_* environment variables and a YAML file (in that order of precedence, over
// server.DefaultConfig), sets up logging, runs the node and shuts it down on a signal.
//
// Every exported field of server.Config with a plain type (string, integers, bool,
// time.Duration, []string) is a setting: the field list is read by reflection, so a field
// the server adds is settable at once under a derived name (NodeID -> --node-id,
// SLUICE_NODE_ID, node_id) and can be given a nicer name and help text in the table in
// settings.go.
//
// LOCKING: none. Settings are loaded on the command's goroutine before the server starts;
// the signal goroutine only cancels contexts.
package serve
