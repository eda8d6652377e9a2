package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	opaversion "github.com/open-policy-agent/opa/v1/version"
	"github.com/spf13/cobra"
)

// version is tokenguard's version. A release build sets it with
// -ldflags "-X main.version=v1.2.3"; otherwise it comes from the Go build
// information (the module version, "(devel)" in a source tree).
var version string

// buildInfo says what this binary is: `pdp version`, `pdp --version` and the
// startup banner print it.
type buildInfo struct {
	// Version is tokenguard's version.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, with
	// "-modified" when the tree had uncommitted changes; empty when unknown.
	Revision string `json:"revision,omitempty"`
	// Time is the commit's time (RFC 3339); empty when unknown.
	Time string `json:"time,omitempty"`
	// Go is the Go toolchain that built the binary.
	Go string `json:"go"`
	// OPA is the version of the embedded Open Policy Agent.
	OPA string `json:"opa"`
}

// readBuildInfo gathers the build information of the running binary.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Go: runtime.Version(), OPA: opaversion.Version}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if b.Version == "" {
			b.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && b.Revision != "" {
			b.Revision += "-modified"
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	return b
}

// write prints the build information, one "name: value" a line.
func (b buildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "tokenguard %s\n", b.Version)
	rev, at := b.Revision, b.Time
	if rev == "" {
		rev = "unknown"
	}
	if at == "" {
		at = "unknown"
	}
	fmt.Fprintf(w, "revision:  %s\ncommitted: %s\ngo:        %s\nopa:       %s\n", rev, at, b.Go, b.OPA)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tokenguard's version, VCS revision, and the Go and OPA versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			readBuildInfo().write(cmd.OutOrStdout())
			return nil
		},
	}
}
