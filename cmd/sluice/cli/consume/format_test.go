package consume

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func msg() Message {
	return Message{Topic: "t", Partition: 2, Offset: 41, Record: &sluicev1.Record{
		Key: []byte("k"), Value: []byte("v"), TimestampMs: 1700000000000,
		Headers: []*sluicev1.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte{0xff}}},
	}}
}

func TestTemplate(t *testing.T) {
	p, err := NewPrinter(`%t/%p/%o %k=%v [%h] %d %T %K %V 100%%\n`)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Print(&b, msg()); err != nil {
		t.Fatal(err)
	}
	want := "t/2/41 k=v [a=1,b=\xff] 1700000000000 2023-11-14T22:13:20.000Z 1 1 100%\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	if _, err := NewPrinter("%q"); err == nil {
		t.Fatal("unknown escape accepted")
	}
}

func TestJSONLine(t *testing.T) {
	p, _ := NewPrinter("json")
	var b bytes.Buffer
	if err := p.Print(&b, msg()); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["key"] != "k" || got["value"] != "v" || got["offset"] != 41.0 || got["partition"] != 2.0 {
		t.Fatalf("got %v", got)
	}
	hs := got["headers"].([]any)
	if hs[1].(map[string]any)["value_base64"] != "/w==" {
		t.Fatalf("binary header: %v", hs[1])
	}
}

func TestParseFrom(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	for in, check := range map[string]func(start) bool{
		"beginning":             func(s start) bool { return s.spec.GetEarliest() },
		"end":                   func(s start) bool { return s.spec.GetLatest() },
		"42":                    func(s start) bool { return s.spec == nil && s.offset == 42 },
		"@1700000000000":        func(s start) bool { return s.spec.GetTimestampMs() == 1700000000000 },
		"@2023-11-14T22:13:20Z": func(s start) bool { return s.spec.GetTimestampMs() == 1700000000000 },
		"2023-11-14T22:13:20Z":  func(s start) bool { return s.spec.GetTimestampMs() == 1700000000000 },
		"@-1s":                  func(s start) bool { return s.spec.GetTimestampMs() == 999_999_000 },
	} {
		s, err := parseFrom(in, now)
		if err != nil || !check(s) {
			t.Errorf("parseFrom(%q) = %+v, %v", in, s, err)
		}
	}
	for _, bad := range []string{"", "-5", "soon", "@later"} {
		if _, err := parseFrom(bad, now); err == nil {
			t.Errorf("parseFrom(%q) accepted", bad)
		}
	}
}
