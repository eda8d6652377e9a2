//go:build integration

package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestIntegrationDockerfileBinary builds pdp with the Dockerfile's exact
// environment and flags (no container engine needed), proves the binary is
// static (no ELF interpreter, no shared libraries: it runs on distroless
// static or scratch) and runs it with an empty environment, as the image
// does.
func TestIntegrationDockerfileBinary(t *testing.T) {
	env, flags := readDockerfile(t).pdpBuild(t)
	bin := filepath.Join(t.TempDir(), "pdp")
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", bin, ".")
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s with %v: %v\n%s", strings.Join(args, " "), env, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	if strings.Contains(strings.Join(flags, " "), "-trimpath") {
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		if strings.Contains(string(data), filepath.Dir(filepath.Dir(wd))+"/internal/") {
			t.Error("the binary holds the build machine's source paths despite -trimpath")
		}
	}

	// An empty environment, as in the image (which sets only PDP_*).
	help := exec.Command(bin, "--help")
	help.Env = []string{}
	out, err := help.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "serve") || !strings.Contains(string(out), "healthcheck") {
		t.Errorf("pdp --help with an empty environment: %v\n%s", err, out)
	}
	ver := exec.Command(bin, "version")
	ver.Env = []string{}
	out, err = ver.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tokenguard ") || !strings.Contains(string(out), "\nopa:       1.") {
		t.Errorf("pdp version with an empty environment: %v\n%s", err, out)
	}
	hc := exec.Command(bin, "healthcheck", "--url", "http://127.0.0.1:1/healthz", "--timeout", "1s")
	hc.Env = []string{}
	if err := hc.Run(); err == nil || hc.ProcessState.ExitCode() != 1 {
		t.Errorf("pdp healthcheck with nothing listening: %v, want exit 1", err)
	}
}
