package main

import (
	"os"
	"testing"
)

// The bundled sample must keep showing both paths: 200 lines that parse
// as combined and 2 that go to the dead-letter topic.
func TestSampleCounts(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/sample/access.log")
	if err != nil {
		t.Fatal(err)
	}
	valid, invalid, err := countValid(raw)
	if err != nil {
		t.Fatal(err)
	}
	if valid != 200 || invalid != 2 {
		t.Errorf("sample: %d valid and %d invalid lines, want 200 and 2", valid, invalid)
	}
}
