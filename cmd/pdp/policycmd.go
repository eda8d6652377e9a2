package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	opacmd "github.com/open-policy-agent/opa/cmd"
	"github.com/spf13/cobra"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/policy"
)

// Exit codes of `pdp policy check`.
const (
	checkValid      = 0 // the server would activate the policy
	checkRefused    = 1 // it would refuse it: configuration errors, compile or test failures, over a size limit
	checkUnreadable = 2 // usage error, or the path cannot be read
)

func newPolicyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Work with policies offline",
	}
	var (
		tests  bool
		format string
		lim    policy.Limits
	)
	check := &cobra.Command{
		Use:   "check DIR|BUNDLE",
		Short: "Check a policy directory or bundle as the server would before activating it; print its configuration errors",
		Long: `Check a policy directory or bundle as the server would before activating it:
the sizes of its files, that its modules compile and define the decision,
that data.tokenguard.config_errors is empty (each error printed as
"path: message") and, with --test, that its own *_test.rego pass.

A .tar.gz file, or a directory with a .manifest, is read as a bundle (its
signature is not checked); any other directory as policy.dir.

Exit status: 0 the policy would be activated, 1 it would be refused,
2 usage error or the path cannot be read.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(cmd, fmt.Errorf("needs one DIR or BUNDLE, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return usageError(cmd, fmt.Errorf("--format %q: must be text or json", format))
			}
			code := checkPolicy(cmd, args[0], lim, tests, format == "json")
			if code != checkValid {
				return &opacmd.ExitError{Exit: code}
			}
			return nil
		},
	}
	check.SetFlagErrorFunc(usageError)
	f := check.Flags()
	f.BoolVar(&tests, "test", false, "run the policy's own *_test.rego too (policy.test_on_load)")
	f.StringVar(&format, "format", "text", "text or json")
	f.Int64Var(&lim.MaxFileBytes, "max-file-bytes", config.DefaultPolicyMaxFileBytes, "policy.max_file_bytes")
	f.Int64Var(&lim.MaxTotalBytes, "max-total-bytes", config.DefaultPolicyMaxTotalBytes, "policy.max_total_bytes")
	c.AddCommand(check)
	return c
}

// usageError reports a usage error and makes it exit status 2.
func usageError(cmd *cobra.Command, err error) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.CommandPath(), err)
	return &opacmd.ExitError{Exit: checkUnreadable}
}

// checkResult is `pdp policy check --format json`'s output.
type checkResult struct {
	// Valid: the server would activate the policy.
	Valid bool `json:"valid"`
	// Revision of the policy (when it could be read).
	Revision string `json:"revision,omitempty"`
	// Errors are its configuration errors.
	Errors []policy.ConfigError `json:"config_errors,omitempty"`
	// Error says why it would be refused or could not be read.
	Error string `json:"error,omitempty"`
}

// checkPolicy checks the policy at path and reports on cmd's output; it
// returns the exit status.
func checkPolicy(cmd *cobra.Command, path string, lim policy.Limits, tests, asJSON bool) int {
	out := cmd.OutOrStdout()
	report := func(code int, res checkResult) int {
		res.Valid = code == checkValid
		if asJSON {
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Fprintln(out, string(b))
			return code
		}
		for _, e := range res.Errors {
			fmt.Fprintln(out, e.String())
		}
		switch {
		case code == checkValid:
			fmt.Fprintf(out, "policy %s is valid (revision %s)\n", path, res.Revision)
		case len(res.Errors) > 0:
			fmt.Fprintf(cmd.ErrOrStderr(), "policy %s would be refused: %d configuration error(s)\n", path, len(res.Errors))
		default:
			fmt.Fprintf(cmd.ErrOrStderr(), "policy %s: %s\n", path, res.Error)
		}
		return code
	}
	set, err := readPolicy(path, lim)
	if err != nil {
		code := checkUnreadable
		if errors.Is(err, policy.ErrRefused) {
			code = checkRefused
		}
		return report(code, checkResult{Error: err.Error()})
	}
	err = policy.NewEngine(nil).Check(cmd.Context(), set, tests)
	res := checkResult{Revision: set.Revision}
	var invalid *policy.ConfigErrorsError
	switch {
	case errors.As(err, &invalid):
		res.Errors = invalid.Errors
		return report(checkRefused, res)
	case err != nil:
		res.Error = err.Error()
		return report(checkRefused, res)
	}
	return report(checkValid, res)
}

// readPolicy reads a policy directory or a bundle (a file, or a directory
// with a .manifest).
func readPolicy(path string, lim policy.Limits) (*policy.Set, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(path, ".manifest")); err != nil {
			return policy.LoadDir(path, lim)
		}
	}
	return policy.ReadBundle("bundle", path, lim)
}

// configErrorLines lists configuration errors one a line, indented.
func configErrorLines(e *policy.ConfigErrorsError) string {
	var b strings.Builder
	for _, c := range e.Errors {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	return strings.TrimRight(b.String(), "\n")
}
