package config

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

const envPrefix = "LAMBDALAKE_"

// envAliases are short names for the overrides people set most, matching the
// local stack's scripts.
var envAliases = map[string]string{
	"LAMBDALAKE_S3_ENDPOINT": "lake.s3.endpoint",
	"LAMBDALAKE_REDIS_ADDR":  "redis.addrs",
	"LAMBDALAKE_LAKE":        "lake.url",
}

// applyEnv overrides scalar connection and tuning settings from the
// environment: the key path upper-cased with _ for dots, e.g.
// LAMBDALAKE_KAFKA_BROKERS=a:9092,b:9092 or LAMBDALAKE_LAKE_S3_ENDPOINT.
// Schemas, views and tokens come from the file only.
func applyEnv(d *decoder, c *Config, env func(string) (string, bool)) {
	aliased := map[string]envValue{}
	for name, path := range envAliases {
		if v, ok := env(name); ok {
			aliased[path] = envValue{name: name, value: v}
		}
	}
	walkEnv(d, reflect.ValueOf(c).Elem(), "", env, aliased)
}

type envValue struct{ name, value string }

func walkEnv(d *decoder, v reflect.Value, path string, env func(string) (string, bool), aliased map[string]envValue) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" || (path == "" && (key == "schemas" || key == "views")) {
			continue
		}
		p := join(path, key)
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			walkEnv(d, f, p, env, aliased)
			continue
		}
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() != reflect.String {
			continue // lists of structs (tokens) are file-only
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(p, ".", "_"))
		val, ok := env(name)
		if !ok {
			var a envValue
			if a, ok = aliased[p]; ok {
				name, val = a.name, a.value
			}
		}
		if !ok {
			continue
		}
		var node yaml.Node
		if f.Kind() == reflect.Slice {
			node = yaml.Node{Kind: yaml.SequenceNode}
			for _, s := range strings.Split(val, ",") {
				if s = strings.TrimSpace(s); s != "" {
					node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
				}
			}
		} else {
			node = yaml.Node{Kind: yaml.ScalarNode, Value: val}
			if f.Kind() == reflect.String {
				node.Tag = "!!str"
			}
		}
		before := len(d.errs)
		d.decode(&node, f, name)
		for _, e := range d.errs[before:] {
			e.Msg += " (from environment, overriding " + p + ")"
			e.Line = 0
		}
		delete(d.lines, name)
	}
}
