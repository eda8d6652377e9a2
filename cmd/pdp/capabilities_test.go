package main

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// TestCapabilitiesFileIsCurrent fails when rego/capabilities.json no longer
// matches `pdp opa capabilities --current` (OPA's built-ins plus the
// project's): stock `opa test --capabilities` would then check the policies
// against a stale list. Regenerate with `go tool task capabilities`.
func TestCapabilitiesFileIsCurrent(t *testing.T) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"opa", "capabilities", "--current"})
	stdout := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r)
		done <- b.Bytes()
	}()
	err = root.Execute()
	w.Close()
	os.Stdout = stdout
	printed := append(out.Bytes(), <-done...)
	if err != nil {
		t.Fatalf("pdp opa capabilities --current: %v", err)
	}
	file, err := os.ReadFile("../../rego/capabilities.json")
	if err != nil {
		t.Fatalf("read rego/capabilities.json: %v", err)
	}
	var want, got any
	if err := json.Unmarshal(printed, &want); err != nil {
		t.Fatalf("capabilities output is not JSON: %v", err)
	}
	if err := json.Unmarshal(file, &got); err != nil {
		t.Fatalf("rego/capabilities.json is not JSON: %v", err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatal("rego/capabilities.json is stale: run `go tool task capabilities`")
	}
}
