package natsauth

import "strings"

// MaxSubjectBytes bounds a subject pattern granted in a user JWT.
const MaxSubjectBytes = 1024

// validPattern reports whether s is a NATS subject or subject pattern that
// may stand in a permission: tokens separated by '.', none empty, no white
// space, '*' and '>' only as whole tokens and '>' only last.
func validPattern(s string) bool {
	if s == "" || len(s) > MaxSubjectBytes {
		return false
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return false
		case t == ">" && i != len(toks)-1:
			return false
		case t == "*" || t == ">":
		case strings.ContainsAny(t, "*> \t\r\n\f\v\x00"):
			return false
		}
		for _, r := range t {
			if r < 0x20 || r == 0x7f {
				return false
			}
		}
	}
	return true
}

// overlap reports whether some subject matches both patterns a and b (both
// valid): token by token, a wildcard matches any token and '>' any
// non-empty rest.
func overlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i == len(at) || i == len(bt):
			return false
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
			continue
		default:
			return false
		}
	}
}
