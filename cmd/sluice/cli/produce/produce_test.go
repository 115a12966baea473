package produce

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadLines(t *testing.T) {
	out := make(chan []byte, 10)
	if err := readLines(context.Background(), strings.NewReader("a\r\nb\n\nlast"), 1<<10, out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range out {
		got = append(got, string(l))
	}
	if strings.Join(got, "|") != "a|b||last" {
		t.Fatalf("lines %q", got)
	}

	out = make(chan []byte, 10)
	err := readLines(context.Background(), strings.NewReader(strings.Repeat("x", 100)+"\n"), 10, out)
	if err == nil || !strings.Contains(err.Error(), "--max-line-bytes") {
		t.Fatalf("long line: %v", err)
	}
}

func TestParseHeaders(t *testing.T) {
	hs, err := parseHeaders([]string{"a=1", "b=", "c=x=y"})
	if err != nil || len(hs) != 3 || string(hs[2].GetValue()) != "x=y" || len(hs[1].GetValue()) != 0 {
		t.Fatalf("%v %v", hs, err)
	}
	for _, bad := range []string{"novalue", "=v"} {
		if _, err := parseHeaders([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
