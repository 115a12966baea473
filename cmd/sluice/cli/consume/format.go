package consume

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Message is one consumed record with its coordinates.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Record    *sluicev1.Record
}

// jsonHeader is a header in --format json output.
type jsonHeader struct {
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	ValueBase64 string `json:"value_base64,omitempty"`
}

// jsonRecord is one line of --format json output. Keys and values that are valid UTF-8
// are strings; others are base64 in the *_base64 field instead.
type jsonRecord struct {
	Topic       string       `json:"topic"`
	Partition   int32        `json:"partition"`
	Offset      int64        `json:"offset"`
	TimestampMs int64        `json:"timestamp_ms"`
	Timestamp   string       `json:"timestamp"`
	Key         *string      `json:"key,omitempty"`
	KeyBase64   string       `json:"key_base64,omitempty"`
	Value       *string      `json:"value,omitempty"`
	ValueBase64 string       `json:"value_base64,omitempty"`
	Headers     []jsonHeader `json:"headers"`
}

func text(b []byte) (*string, string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

// Printer writes messages in one output format.
type Printer interface {
	Print(w io.Writer, m Message) error
}

// NewPrinter parses --format: "text" (the value, one per line), "json" (one JSON object
// per line) or a template with % escapes (see the command's help).
func NewPrinter(format string) (Printer, error) {
	switch format {
	case "", "text":
		return template{verbs: []verb{{kind: 'v'}, {lit: "\n"}}}, nil
	case "json":
		return jsonPrinter{}, nil
	}
	return parseTemplate(format)
}

type jsonPrinter struct{}

func (jsonPrinter) Print(w io.Writer, m Message) error {
	r := m.Record
	out := jsonRecord{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		TimestampMs: r.GetTimestampMs(), Timestamp: app.FormatTime(r.GetTimestampMs()),
		Headers: []jsonHeader{},
	}
	if r.Key != nil || len(r.GetKey()) > 0 {
		out.Key, out.KeyBase64 = text(r.GetKey())
	}
	out.Value, out.ValueBase64 = text(r.GetValue())
	for _, h := range r.GetHeaders() {
		jh := jsonHeader{Key: h.GetKey()}
		if v, b := text(h.GetValue()); v != nil {
			jh.Value = *v
		} else {
			jh.ValueBase64 = b
		}
		out.Headers = append(out.Headers, jh)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

type verb struct {
	kind byte   // 0 = literal
	lit  string // literal text
}

type template struct{ verbs []verb }

const templateHelp = `%v value, %k key, %p partition, %o offset, %t topic, %d timestamp (ms),
%T timestamp (RFC 3339), %h headers (k=v,k=v), %V value length, %K key length, %% a
percent sign; \n, \t and \\ are a newline, a tab and a backslash`

func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.verbs = append(t.verbs, verb{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+1 < len(s):
			i++
			switch v := s[i]; v {
			case '%':
				lit.WriteByte('%')
			case 'v', 'k', 'p', 'o', 't', 'd', 'T', 'h', 'V', 'K':
				flush()
				t.verbs = append(t.verbs, verb{kind: v})
			default:
				return t, fmt.Errorf("--format: unknown escape %%%c; use %s", v, templateHelp)
			}
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case '\\':
				lit.WriteByte('\\')
			default:
				lit.WriteByte('\\')
				lit.WriteByte(s[i])
			}
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	if len(t.verbs) == 0 {
		return t, fmt.Errorf("--format: empty template")
	}
	return t, nil
}

func (t template) Print(w io.Writer, m Message) error {
	var b []byte
	r := m.Record
	for _, v := range t.verbs {
		switch v.kind {
		case 0:
			b = append(b, v.lit...)
		case 'v':
			b = append(b, r.GetValue()...)
		case 'k':
			b = append(b, r.GetKey()...)
		case 'p':
			b = strconv.AppendInt(b, int64(m.Partition), 10)
		case 'o':
			b = strconv.AppendInt(b, m.Offset, 10)
		case 't':
			b = append(b, m.Topic...)
		case 'd':
			b = strconv.AppendInt(b, r.GetTimestampMs(), 10)
		case 'T':
			b = append(b, app.FormatTime(r.GetTimestampMs())...)
		case 'V':
			b = strconv.AppendInt(b, int64(len(r.GetValue())), 10)
		case 'K':
			b = strconv.AppendInt(b, int64(len(r.GetKey())), 10)
		case 'h':
			for i, h := range r.GetHeaders() {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, h.GetKey()...)
				b = append(b, '=')
				b = append(b, h.GetValue()...)
			}
		}
	}
	_, err := w.Write(b)
	return err
}
