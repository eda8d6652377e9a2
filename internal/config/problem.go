package config

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration, named by its config path
// (issuers[0].audiences) and, when the setting came from a file, by the
// file and line that hold it.
type Problem struct {
	// Path is the setting's config path.
	Path string
	// File and Line locate the setting (or its closest enclosing one) in
	// the config file; empty and 0 when unknown.
	File string
	Line int
	// Msg says what is wrong, and what would be right.
	Msg string
}

func (p *Problem) Error() string {
	where := ""
	if p.File != "" && p.Line > 0 {
		where = fmt.Sprintf("%s:%d: ", p.File, p.Line)
	}
	if p.Path == "" {
		return where + p.Msg
	}
	return where + p.Path + ": " + p.Msg
}

// Problems lists the problems err holds (a Problem, or errors joined with
// errors.Join); an error that is no Problem is returned as one with no path.
func Problems(err error) []*Problem {
	if err == nil {
		return nil
	}
	var p *Problem
	if errors.As(err, &p) && p == err {
		return []*Problem{p}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Problem
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	if errors.As(err, &p) {
		return []*Problem{p}
	}
	return []*Problem{{Msg: err.Error()}}
}

// ErrNoIssuers is the problem of a configuration that names no issuer.
var ErrNoIssuers = errors.New("at least one issuer is required")

// Invalid is the error of a configuration with problems: all of them, one
// a line.
type Invalid struct {
	Problems []*Problem
}

func (e *Invalid) Error() string {
	var b strings.Builder
	b.WriteString("invalid config:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(strings.ReplaceAll(p.Error(), "\n", "\n  "))
	}
	return b.String()
}

// Is lets errors.Is(err, ErrNoIssuers) tell a configuration without
// issuers (pdp serve then suggests --dev).
func (e *Invalid) Is(target error) bool {
	if target != ErrNoIssuers {
		return false
	}
	for _, p := range e.Problems {
		if p.Path == "issuers" && p.Msg == ErrNoIssuers.Error() {
			return true
		}
	}
	return false
}
