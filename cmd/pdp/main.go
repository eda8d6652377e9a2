// Command pdp is tokenguard, an OAuth 2.0 runtime guardrail service: the
// policy decision point every gateway asks "may this token do this, right
// now?".
//
//	pdp serve [--config file] [--dev]   run the decision API
//	pdp opa ...                         OPA's CLI with tokenguard's built-ins (test, eval, check, build, ...)
//	pdp store backup|restore FILE       back up or restore the state store
//	pdp policy check DIR|BUNDLE         check a policy as the server would before activating it
//	pdp healthcheck [--url URL]         GET /healthz; exit 0 or 1 (the container's health check)
package main

import (
	"errors"
	"fmt"
	"os"

	opacmd "github.com/open-policy-agent/opa/cmd"
	"github.com/spf13/cobra"

	// The pdp.* Rego built-ins register themselves at init, for the server
	// and for `pdp opa` alike.
	_ "github.com/tokenguard/pdp/internal/builtins"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var exit *opacmd.ExitError
		if errors.As(err, &exit) {
			return exit.Exit
		}
		fmt.Fprintln(os.Stderr, "pdp:", err)
		return 1
	}
	return 0
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "pdp",
		Short:         "tokenguard: OAuth 2.0 runtime guardrails as a policy decision point",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand())
	root.AddCommand(newOPACommand())
	root.AddCommand(newRevokeCommand())
	root.AddCommand(newConfigCommand())
	root.AddCommand(newStoreCommand())
	root.AddCommand(newPolicyCommand())
	root.AddCommand(newHealthcheckCommand())
	return root
}

// newOPACommand mounts OPA's own CLI under "pdp opa". The project's Rego
// built-ins are registered at init, so `pdp opa test rego/` and
// `pdp opa capabilities --current` know them.
func newOPACommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "opa",
		Short: "OPA's command line (test, eval, check, bench, build, capabilities, ...) with tokenguard's built-ins",
	}
	return opacmd.Command(c, "pdp opa")
}
