package natsauth

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// BenchmarkAuthorize answers one authorization request (what a connect
// costs the PDP) with 3, 30 and 300 NATS destinations in the table: the
// connect decision, then one decision per destination and operation the
// entry names.
func BenchmarkAuthorize(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("destinations=%d", 3*n), func(b *testing.B) {
			saved := rigDestinations
			defer func() { rigDestinations = saved }()
			var table []map[string]any
			for i := range n {
				for _, d := range saved[:3] {
					e := map[string]any{}
					for k, v := range d {
						e[k] = v
					}
					e["name"] = fmt.Sprintf("%s %d", d["name"], i)
					e["destination"] = fmt.Sprintf("t%d.%s", i, d["destination"])
					table = append(table, e)
				}
			}
			rigDestinations = table
			r := newRig(b, rigOptions{})
			serverKey, _ := nkeys.CreateServer()
			tok := r.mint(b, map[string]any{"scope": "orders:write orders:status"})
			data := []byte(signedRequest(b, serverKey, func(c *jwt.AuthorizationRequestClaims) {
				c.ConnectOptions = jwt.ConnectOptions{Token: tok}
			}))
			before := r.svc.counts.grantDecisions.Load()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				resp, err := r.svc.Authorize(context.Background(), data, "")
				if err != nil {
					b.Fatal(err)
				}
				ac, err := jwt.DecodeAuthorizationResponseClaims(string(resp))
				if err != nil || ac.Error != "" {
					b.Fatalf("refused: %v %s", err, ac.Error)
				}
				r.svc.conns.remove(connKey{server: ac.Audience, cid: 7})
			}
			b.ReportMetric(float64(r.svc.counts.grantDecisions.Load()-before)/float64(b.N), "decisions/op")
		})
	}
}
