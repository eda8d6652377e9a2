package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var durationType = reflect.TypeFor[time.Duration]()
var byteSizeType = reflect.TypeFor[ByteSize]()

// zeroRefused are the settings of list items whose zero value Load used to
// replace with a default: an explicit 0 is refused, so that no setting
// silently means something else than it says. Leaving the setting out
// still gives the default.
var zeroRefused = map[string]string{
	"issuers[].jwks_refresh":            "must be at least 1m (leave it out for the default 5m)",
	"issuers[].introspection.cache_ttl": "0 would not turn caching off: give a positive TTL up to 1h (leave it out for the default 1m)",
	"issuers[].introspection.timeout":   "must be positive, up to 30s (leave it out for the default 2s)",
	"policy.bundles[].poll_min":         "must be positive (leave it out for the default 10s)",
	"ssf.transmitters[].poll_interval":  "must be at least 1s (leave it out for the default 30s)",
}

// checkYAML reads a config file and checks every setting's type against
// Config before any is decoded, so that all problems are named at once with
// their line: a value of the wrong type, a single value where a list is
// expected, an unknown key, an explicit 0 that would have meant a default.
// It returns the file without the settings it refused (so that the rest can
// still be decoded and validated), the line of every setting, and the
// problems.
func checkYAML(file string, data []byte) (clean []byte, lines map[string]int, problems []*Problem, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, nil, err
	}
	w := &yamlChecker{file: file, lines: map[string]int{}}
	if len(doc.Content) == 0 {
		return data, w.lines, nil, nil
	}
	if !w.check(doc.Content[0], reflect.TypeFor[Config](), "") {
		return nil, w.lines, w.problems, nil
	}
	clean, err = yaml.Marshal(&doc)
	if err != nil {
		return nil, nil, nil, err
	}
	return clean, w.lines, w.problems, nil
}

type yamlChecker struct {
	file     string
	lines    map[string]int
	problems []*Problem
}

func (w *yamlChecker) bad(n *yaml.Node, path, format string, args ...any) bool {
	w.problems = append(w.problems, &Problem{Path: path, File: w.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
	return false
}

// check reports whether n fits t; a mapping keeps only the keys that fit.
func (w *yamlChecker) check(n *yaml.Node, t reflect.Type, path string) bool {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true // no value: the default
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := path
	if name == "" {
		name = "the configuration"
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			return w.bad(n, path, "expects a duration (e.g. 100ms), not %s", kindOf(n))
		}
		var d time.Duration
		switch n.Tag {
		case "!!int", "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil || f != 0 {
				return w.bad(n, path, "%s is not a duration: give its unit (e.g. %sms or %ss)", n.Value, n.Value, n.Value)
			}
		case "!!str":
			var err error
			if d, err = time.ParseDuration(n.Value); err != nil {
				return w.bad(n, path, "%q is not a duration (e.g. 100ms)", n.Value)
			}
		default:
			return w.bad(n, path, "%q is not a duration (e.g. 100ms)", n.Value)
		}
		if d == 0 {
			if msg, ok := zeroRefused[generic(path)]; ok {
				return w.bad(n, path, "0 is refused: %s", msg)
			}
		}
		return true
	case t == byteSizeType:
		if n.Kind != yaml.ScalarNode {
			return w.bad(n, path, "expects a byte size (e.g. 64MiB), not %s", kindOf(n))
		}
		if _, err := ParseByteSize(n.Value); err != nil {
			return w.bad(n, path, "%q is not a byte size (e.g. 64MiB): %v", n.Value, err)
		}
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return w.bad(n, path, "expects a mapping of settings, not %s", kindOf(n))
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			if key := t.Field(i).Tag.Get("mapstructure"); key != "" && key != "-" {
				fields[key] = t.Field(i).Type
			}
		}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			w.lines[p] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				w.bad(k, p, "unknown setting in %s", name)
				continue
			}
			if w.check(val, ft, p) {
				kept = append(kept, k, val)
			}
		}
		n.Content = kept
		return true
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode {
				return w.bad(n, path, "expects a list, not the single value %q: write [%s] or one \"- %s\" line per item", n.Value, n.Value, n.Value)
			}
			return w.bad(n, path, "expects a list, not %s", kindOf(n))
		}
		ok := true
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = e.Line
			ok = w.check(e, t.Elem(), p) && ok
		}
		return ok
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return w.bad(n, path, "expects a single value, not %s", kindOf(n))
		}
		return true
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return w.bad(n, path, "%s is not true or false", show(n))
		}
		return true
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return w.bad(n, path, "%s is not a whole number", show(n))
		}
		if _, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err != nil {
			return w.bad(n, path, "%s is not a whole number of 64 bits", n.Value)
		}
		return true
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			return w.bad(n, path, "%s is not a number", show(n))
		}
		if f, err := strconv.ParseFloat(n.Value, 64); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return w.bad(n, path, "%s is not a finite number", n.Value)
		}
		return true
	}
	return true
}

// generic is a path without its list indices: issuers[2].jwks_refresh is
// issuers[].jwks_refresh.
func generic(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
			b.WriteString("[]")
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return show(n)
}

func show(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kindOf(n)
	}
	return strconv.Quote(n.Value)
}
