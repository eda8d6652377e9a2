package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() {
	cobra.AddTemplateFunc("flagUsages", flagUsages)
	cobra.AddTemplateFunc("versionText", func() string {
		var b bytes.Buffer
		readBuildInfo().write(&b)
		return b.String()
	})
}

// plainHelp makes the help of every command under root read right:
// boolean flags are listed as --flag, not --flag[=true|false] (which pflag
// prints), and OPA's examples name the command as it is run here,
// "pdp opa build", not "opa build".
func plainHelp(root *cobra.Command) {
	var walk func(c *cobra.Command, underOPA bool)
	walk = func(c *cobra.Command, underOPA bool) {
		t := c.UsageTemplate()
		t = strings.ReplaceAll(t, ".LocalFlags.FlagUsages", "flagUsages .LocalFlags")
		t = strings.ReplaceAll(t, ".InheritedFlags.FlagUsages", "flagUsages .InheritedFlags")
		c.SetUsageTemplate(t)
		if underOPA {
			c.Long = opaExamples(c.Long)
			c.Example = opaExamples(c.Example)
		}
		for _, sub := range c.Commands() {
			walk(sub, underOPA || sub.Name() == "opa" && c == root)
		}
	}
	walk(root, false)
}

// opaExamples turns the shell examples of OPA's help ("$ opa eval ...",
// "opa run ...") into the commands that run them here.
func opaExamples(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " \t")
		lead := l[:len(l)-len(trimmed)]
		switch {
		case strings.HasPrefix(trimmed, "$ opa "):
			lines[i] = lead + "$ pdp opa " + strings.TrimPrefix(trimmed, "$ opa ")
		case strings.HasPrefix(trimmed, "opa ") && lead != "":
			lines[i] = lead + "pdp opa " + strings.TrimPrefix(trimmed, "opa ")
		}
	}
	return strings.Join(lines, "\n")
}

// flagUsages is pflag's FlagUsages without the "[=true|false]" it adds to
// boolean flags: a boolean flag is given as --flag (or --flag=false).
func flagUsages(fs *pflag.FlagSet) string {
	type row struct{ left, usage string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		left := "      --" + f.Name
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		varname, usage := pflag.UnquoteUsage(f)
		isBool := f.Value.Type() == "bool"
		if varname != "" && !isBool {
			left += " " + varname
		}
		if f.NoOptDefVal != "" && !(isBool && f.NoOptDefVal == "true") && f.Value.Type() != "count" {
			left += fmt.Sprintf("[=%s]", f.NoOptDefVal)
		}
		if d := f.DefValue; !zeroDefault(f.Value.Type(), d) {
			if f.Value.Type() == "string" {
				usage += fmt.Sprintf(" (default %q)", d)
			} else {
				usage += fmt.Sprintf(" (default %s)", d)
			}
		}
		if f.Deprecated != "" {
			usage += fmt.Sprintf(" (DEPRECATED: %s)", f.Deprecated)
		}
		width = max(width, len(left))
		rows = append(rows, row{left, usage})
	})
	var b strings.Builder
	for _, r := range rows {
		pad := strings.Repeat(" ", width-len(r.left)+3)
		usage := strings.ReplaceAll(r.usage, "\n", "\n"+strings.Repeat(" ", width+3))
		b.WriteString(r.left + pad + usage + "\n")
	}
	return b.String()
}

// zeroDefault reports whether a flag's default goes unsaid, as pflag does.
func zeroDefault(typ, d string) bool {
	switch d {
	case "", "false", "0", "[]", "<nil>", "0s", "map[]":
		return true
	}
	return typ == "count" && d == "0"
}
