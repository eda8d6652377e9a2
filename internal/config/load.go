package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment variable: data_dir is PDP_DATA_DIR,
// policy.dir is PDP_POLICY_DIR.
const EnvPrefix = "PDP"

// MaxFileBytes bounds a config file.
const MaxFileBytes = 1 << 20

// Load reads the configuration: Defaults, then the YAML file at path (if not
// empty), then PDP_* environment variables, then the flags that were set.
// flagKeys maps a flag name to its config key. adjust, when not nil, may
// change the result (the dev mode adds its issuer). The result has per-issuer
// defaults applied and is validated. The error is an *Invalid that lists
// every problem at once, each named by its path and, for settings from the
// file, its line.
func Load(path string, flags *pflag.FlagSet, flagKeys map[string]string, adjust func(*Config) error) (Config, error) {
	return load(path, flags, flagKeys, adjust, true, false)
}

// LoadAndCheckFiles is Load that also checks that every file and directory
// the configuration names exists and can be read (CheckFiles).
func LoadAndCheckFiles(path string, flags *pflag.FlagSet, flagKeys map[string]string, adjust func(*Config) error) (Config, error) {
	return load(path, flags, flagKeys, adjust, true, true)
}

// Read is Load without Validate: the configuration as the sources give it,
// defaults applied. Its error lists only settings that could not be read
// (a value of the wrong type, an unknown key).
func Read(path string, flags *pflag.FlagSet, flagKeys map[string]string, adjust func(*Config) error) (Config, error) {
	return load(path, flags, flagKeys, adjust, false, false)
}

func load(path string, flags *pflag.FlagSet, flagKeys map[string]string, adjust func(*Config) error, validate, files bool) (Config, error) {
	v := viper.New()
	setDefaults(v, "", reflect.ValueOf(Defaults()))
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	var problems []*Problem
	var lines map[string]int
	if path != "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json", "":
			data, err := readFile(path)
			if err != nil {
				return Config{}, fmt.Errorf("read config %s: %w", path, err)
			}
			clean, ls, ps, err := checkYAML(path, data)
			if err != nil {
				return Config{}, fmt.Errorf("read config %s: %w", path, err)
			}
			lines, problems = ls, ps
			v.SetConfigType("yaml")
			if err := v.ReadConfig(bytes.NewReader(clean)); err != nil {
				return Config{}, fmt.Errorf("read config %s: %w", path, err)
			}
		default:
			v.SetConfigFile(path)
			if err := v.ReadInConfig(); err != nil {
				return Config{}, fmt.Errorf("read config %s: %w", path, err)
			}
		}
	}
	for name, key := range flagKeys {
		if f := flags.Lookup(name); f != nil {
			if err := v.BindPFlag(key, f); err != nil {
				return Config{}, fmt.Errorf("bind flag --%s: %w", name, err)
			}
		}
	}
	var c Config
	err := v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.TextUnmarshallerHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		// What the file check did not catch: the environment and flags.
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if adjust != nil {
		if err := adjust(&c); err != nil {
			return Config{}, err
		}
	}
	c.ApplyDefaults()
	if validate {
		problems = append(problems, unlessNamed(problems, Problems(c.Validate()))...)
	}
	if files {
		problems = append(problems, unlessNamed(problems, Problems(c.CheckFiles()))...)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			if p.Line == 0 && lines != nil {
				p.File, p.Line = path, lineOf(lines, p.Path)
			}
		}
		return c, &Invalid{Problems: problems}
	}
	return c, nil
}

// unlessNamed drops the problems of settings that already have one: a value
// the file check refused is left out, and Validate would only complain that
// it is missing.
func unlessNamed(have, more []*Problem) []*Problem {
	var out []*Problem
	for _, m := range more {
		dup := false
		for _, h := range have {
			if h.Path != "" && (m.Path == h.Path || strings.HasPrefix(m.Path, h.Path+".") || strings.HasPrefix(m.Path, h.Path+"[")) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, m)
		}
	}
	return out
}

// lineOf is the line of path in the file, or of its closest enclosing
// setting there; 0 when none is in the file.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	return data, nil
}

// setDefaults registers every field of Defaults() with viper, so that the
// environment can override any of them and there is one place for defaults.
func setDefaults(v *viper.Viper, prefix string, val reflect.Value) {
	t := val.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("mapstructure")
		if key == "" || key == "-" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		fv := val.Field(i)
		if fv.Kind() == reflect.Struct {
			setDefaults(v, key, fv)
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}
