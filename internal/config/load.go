package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment variable: data_dir is PDP_DATA_DIR,
// policy.dir is PDP_POLICY_DIR.
const EnvPrefix = "PDP"

// Load reads the configuration: Defaults, then the YAML file at path (if not
// empty), then PDP_* environment variables, then the flags that were set.
// flagKeys maps a flag name to its config key. adjust, when not nil, may
// change the result (the dev mode adds its issuer). The result has per-issuer
// defaults applied and is validated; every problem is named by its path.
func Load(path string, flags *pflag.FlagSet, flagKeys map[string]string, adjust func(*Config) error) (Config, error) {
	v := viper.New()
	setDefaults(v, "", reflect.ValueOf(Defaults()))
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", path, err)
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
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if adjust != nil {
		if err := adjust(&c); err != nil {
			return Config{}, err
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config:\n%w", indent(err))
	}
	return c, nil
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

// indent puts each joined error on its own indented line.
func indent(err error) error {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		lines = append(lines, "  "+l)
	}
	return errors.New(strings.Join(lines, "\n"))
}
