package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

// zeroIs passes a configured duration to a component whose options read
// zero as "the default": a configured 0 means zero, so it is passed as the
// component's own word for none.
func zeroIs(d, none time.Duration) time.Duration {
	if d == 0 {
		return none
	}
	return d
}

// withNoIssuerHint adds to a configuration without issuers how to get
// going: the dev mode, or a config file naming the authorization server.
func withNoIssuerHint(err error, dev bool) error {
	if dev || !errors.Is(err, config.ErrNoIssuers) {
		return err
	}
	return fmt.Errorf(`%w

No issuer is configured, so no token could be verified. To try tokenguard
with its built-in dev issuer, run:

  pdp serve --dev

or name your authorization server in a config file (issuers: with issuer,
jwks_uri and audiences) and run: pdp serve --config pdp.yaml`, err)
}

// issuerNames are the configured issuers' iss values.
func issuerNames(is []config.Issuer) []string {
	out := make([]string, 0, len(is))
	for _, i := range is {
		out = append(out, i.Issuer)
	}
	return out
}
