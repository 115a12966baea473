package consume

import (
	"io"
	"testing"
)

// FuzzFormat feeds arbitrary --format templates to the parser and prints a record with
// what it accepts: never a panic.
func FuzzFormat(f *testing.F) {
	for _, seed := range []string{"text", "json", `%k=%v\n`, "%", `\`, "%%%", `%T %h %K %V %d %t %p %o`, "%z"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, format string) {
		p, err := NewPrinter(format)
		if err != nil {
			return
		}
		if err := p.Print(io.Discard, msg()); err != nil {
			t.Fatal(err)
		}
	})
}
