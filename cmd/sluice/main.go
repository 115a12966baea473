// Command sluice is the Sluice binary: `sluice server` runs a node, every other command
// is a client of a running cluster. See `sluice --help`.
package main

import (
	"os"

	"github.com/sluicehq/sluice/cmd/sluice/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
