// Package cli assembles the sluice command tree (cobra, noun/verb like rpk: one package
// per noun under cli/, one file per verb) and runs it. Commands return errors (cobra
// RunE); Main renders an error with its reason (app.Describe) and turns it into an exit
// status: 0 on success, 1 when a command failed, 2 for bad flags or arguments. Nothing
// below Main exits the process.
//
// Client commands get a context that ends on the first SIGINT or SIGTERM; `sluice
// server` handles its signals itself (package serve).
//
// LOCKING: none here; see the packages of the commands.
package cli
