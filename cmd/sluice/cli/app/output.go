package app

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// PrintJSON writes v as indented JSON followed by a newline.
func (g *Globals) PrintJSON(v any) error {
	enc := json.NewEncoder(g.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var protoJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// ProtoValue renders a protobuf message in the protobuf JSON mapping with the .proto field
// names (snake_case; 64-bit integers are strings, as the mapping requires), ready to nest
// in a value passed to PrintJSON.
func ProtoValue(m proto.Message) json.RawMessage {
	b, err := protoJSON.Marshal(m)
	if err != nil {
		return json.RawMessage(fmt.Sprintf("{\"error\":%q}", err.Error()))
	}
	return b
}

// PrintProto writes one protobuf message as indented JSON (see ProtoValue).
func (g *Globals) PrintProto(m proto.Message) error {
	return g.PrintJSON(ProtoValue(m))
}

// PrintProtos writes protobuf messages as a JSON array (see ProtoValue).
func PrintProtos[M proto.Message](g *Globals, ms []M) error {
	vals := make([]json.RawMessage, len(ms))
	for i, m := range ms {
		vals[i] = ProtoValue(m)
	}
	return g.PrintJSON(vals)
}

// Table writes aligned columns; call Flush when done.
type Table struct{ tw *tabwriter.Writer }

// NewTable starts a table with the given header row.
func NewTable(w io.Writer, header ...any) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.Row(header...)
	}
	return t
}

// Row writes one row.
func (t *Table) Row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprint(t.tw, "\n")
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }
