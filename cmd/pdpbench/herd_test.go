package main

import (
	"testing"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestHerdKind(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    vegeta.Result
		want string
	}{
		{"ok/an allow", vegeta.Result{Code: 200, Body: []byte(`{"allow":true,"status":200}`)}, "200"},
		{"ok/an overloaded deny is the decision's 503", vegeta.Result{Code: 200, Body: []byte(`{"allow":false,"status":503}`)}, "503"},
		{"ok/a token deny", vegeta.Result{Code: 200, Body: []byte(`{"allow":false,"status":401}`)}, "401"},
		{"ok/a policy error is the answer's 500", vegeta.Result{Code: 500, Body: []byte(`{}`)}, "500"},
		{"ok/no answer", vegeta.Result{Error: "connection refused"}, "error"},
		{"ok/an unlisted status", vegeta.Result{Code: 200, Body: []byte(`{"allow":false,"status":429}`)}, "other"},
		{"ok/not a decision", vegeta.Result{Code: 200, Body: []byte(`nope`)}, "other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := herdKind(&tt.r); got != tt.want {
				t.Errorf("herdKind = %s, want %s", got, tt.want)
			}
		})
	}
}
