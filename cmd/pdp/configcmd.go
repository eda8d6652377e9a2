package main

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/pdp/internal/config"
)

func newConfigCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Check or show the configuration",
	}
	var file string
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check a configuration; print every problem with its path and exit non-zero",
		Long: `Check a configuration as pdp serve would read it (file, PDP_* environment,
flags) and print every problem at once: each names the setting's path and,
for a setting from the file, its line. Every file and directory the
configuration names must exist and be readable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := config.LoadAndCheckFiles(file, cmd.Flags(), serveFlags, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return nil
		},
	}
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (defaults, file, environment, flags) with secrets redacted",
		Long: `Print the effective configuration (defaults, file, environment, flags) with
secrets redacted. Without a file it prints the defaults. A configuration
that would not start pdp serve is printed all the same, with its problems
on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Read(file, cmd.Flags(), serveFlags, nil)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "# pdp serve would refuse this configuration (pdp config validate):\n%s\n", err)
			}
			out, err := yaml.Marshal(redacted(reflect.ValueOf(cfg)))
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	for _, sub := range []*cobra.Command{validate, print} {
		sub.Flags().StringVar(&file, "config", "", "YAML config file")
		addServeFlags(sub)
		c.AddCommand(sub)
	}
	return c
}

// redacted turns the config into plain maps keyed like the YAML file, with
// credentials in URLs (user information, query strings) replaced. Secrets
// themselves never sit in the config: only the files that hold them.
func redacted(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return redacted(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			key := t.Field(i).Tag.Get("mapstructure")
			if key == "" || key == "-" {
				continue
			}
			out[key] = redacted(v.Field(i))
		}
		return out
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = redacted(v.Index(i))
		}
		return out
	case reflect.String:
		return redactURL(v.String())
	case reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			return time.Duration(v.Int()).String()
		}
		if v.Type() == reflect.TypeFor[config.ByteSize]() {
			return config.ByteSize(v.Int()).String()
		}
		return v.Int()
	default:
		return v.Interface()
	}
}

func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "REDACTED"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}
