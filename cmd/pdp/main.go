// Command pdp is tokenguard, an OAuth 2.0 runtime guardrail service: the
// policy decision point every gateway asks "may this token do this, right
// now?".
//
//	pdp serve [--config file] [--dev]   run the decision API
//	pdp opa ...                         OPA's CLI with tokenguard's built-ins (test, eval, check, build, ...)
//	pdp store backup|restore FILE       back up or restore the state store
//	pdp policy check DIR|BUNDLE         check a policy as the server would before activating it
//	pdp replay --policy P --decisions F re-evaluate logged decisions against a candidate policy
//	pdp check --token-file F --request R  ask a running PDP about a token; exit 0 allow, 1 deny, 2 error
//	pdp version                         print the version, VCS revision, Go and OPA versions
//	pdp healthcheck [--url URL]         GET /healthz; exit 0 or 1 (the container's health check)
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	opacmd "github.com/open-policy-agent/opa/cmd"
	"github.com/spf13/cobra"

	// The pdp.* Rego built-ins register themselves at init, for the server
	// and for `pdp opa` alike.
	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/store"
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
	// --version prints what `pdp version` prints.
	root.Version = readBuildInfo().Version
	root.SetVersionTemplate("{{versionText}}")
	root.AddCommand(newServeCommand())
	root.AddCommand(newOPACommand())
	root.AddCommand(newRevokeCommand())
	root.AddCommand(newConfigCommand())
	root.AddCommand(newStoreCommand())
	root.AddCommand(newPolicyCommand())
	root.AddCommand(newReplayCommand())
	root.AddCommand(newExplainCommand())
	root.AddCommand(newCheckCommand())
	root.AddCommand(newVersionCommand())
	plainHelp(root)
	root.AddCommand(newHealthcheckCommand())
	return root
}

// newOPACommand mounts OPA's own CLI under "pdp opa". The project's Rego
// built-ins are registered at init, so `pdp opa test rego/` and
// `pdp opa capabilities --current` know them. They read an empty store,
// or with --data-dir that directory's store, read-only.
func newOPACommand() *cobra.Command {
	var dataDir string
	var opened *store.Bolt
	c := &cobra.Command{
		Use:   "opa",
		Short: "OPA's command line (test, eval, check, bench, build, capabilities, ...) with tokenguard's built-ins",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if dataDir == "" {
				builtins.SetStore(builtins.Empty)
				return nil
			}
			st, err := store.OpenReadOnly(dataDir, time.Second)
			if err != nil {
				return fmt.Errorf("--data-dir: %w (a running server holds its store: read a backup, pdp store backup)", err)
			}
			opened = st
			builtins.SetStore(st)
			return nil
		},
		PersistentPostRunE: func(*cobra.Command, []string) error {
			builtins.SetStore(nil)
			if opened != nil {
				return opened.Close()
			}
			return nil
		},
	}
	c.PersistentFlags().StringVar(&dataDir, "data-dir", "",
		"the data dir whose store the pdp.* built-ins read, read-only (default: an empty store)")
	// The brand names what the texts are about: OPA's bundles, OPA's
	// capabilities. The commands are run as `pdp opa ...` (see plainHelp).
	return opacmd.Command(c, "OPA")
}
