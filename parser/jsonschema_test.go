package parser

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestJSONSchemaValidatesEvents: every golden JSON event (every format and
// escape real nginx wrote) is valid against its format's JSON Schema
// (draft 2020-12, checked by santhosh-tekuri/jsonschema), and an event with
// a field of the wrong type or an unknown field is not.
func TestJSONSchemaValidatesEvents(t *testing.T) {
	for _, g := range goldenLogs {
		t.Run(g.log, func(t *testing.T) {
			p := compileFromConf(t, g.format)
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(p.Schema().JSONSchema()))
			if err != nil {
				t.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			if err := c.AddResource("event.json", doc); err != nil {
				t.Fatal(err)
			}
			sch, err := c.Compile("event.json")
			if err != nil {
				t.Fatalf("the JSON Schema does not compile: %v", err)
			}
			data, err := os.ReadFile(filepath.Join("testdata/golden", g.log+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			lines, _ := readLines(data)
			for i, l := range lines {
				ev, err := jsonschema.UnmarshalJSON(bytes.NewReader(l))
				if err != nil {
					t.Fatal(err)
				}
				if err := sch.Validate(ev); err != nil {
					t.Fatalf("event %d is not valid: %v\n%s", i+1, err, l)
				}
			}
			var ev map[string]any
			_ = json.Unmarshal(lines[0], &ev)
			ev["log_offset"] = "12"
			if sch.Validate(ev) == nil {
				t.Fatal("log_offset as a string passed")
			}
			delete(ev, "log_offset")
			if sch.Validate(ev) == nil {
				t.Fatal("an event without log_offset passed")
			}
			ev["log_offset"], ev["no_such_field"] = 1.0, "x"
			if sch.Validate(ev) == nil {
				t.Fatal("an unknown field passed")
			}
		})
	}
}
